"""The app models (convert/mobile.py) in the client an Android, iOS or web app uses: MediaPipe Tasks'
ImageClassifier, in a venv of its own (cached in ~/.cache/edgedigits-test-venvs; skips, saying why,
where mediapipe cannot be installed). MNIST test digits are drawn as an app passes them: RGB, dark ink
on light paper."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from edgedigits.deploy.runners import load_runner
from edgedigits.manifest import load_manifest

VENVS = Path.home() / ".cache" / "edgedigits-test-venvs"
CLASSIFY = Path(__file__).with_name("mediapipe_classify.py")


@pytest.fixture(scope="session")
def mediapipe_python() -> Path:
    venv = VENVS / "mediapipe"
    python = venv / "bin" / "python"
    if not python.is_file() or subprocess.run([str(python), "-c", "import mediapipe"], capture_output=True).returncode:
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True, timeout=120)
        proc = subprocess.run([str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check", "mediapipe"],
                              capture_output=True, text=True, timeout=900)
        if proc.returncode:
            pytest.skip(f"mediapipe cannot be installed here: {(proc.stderr or proc.stdout).strip().splitlines()[-1][:200]}")
    return python


def test_mediapipe_image_classifier_reads_the_app_models(small_converted, test_digits, mediapipe_python, tmp_path):
    m = load_manifest(small_converted)
    x, y = test_digits
    rgb = np.repeat((255 - x)[..., None], 3, axis=-1)  # (N, 28, 28, 3) uint8, dark on light
    np.savez(tmp_path / "digits.npz", images=rgb)
    for fmt in ("tflite_app_uint8", "tflite_app_fp32"):
        entry = m.artifact(fmt)
        assert entry["status"] == "passed" and entry["inputs"][0]["shape"][1:] == [28, 28, 3]
        path = small_converted / entry["file"]
        proc = subprocess.run([str(mediapipe_python), str(CLASSIFY), str(path), str(tmp_path / "digits.npz")],
                              capture_output=True, text=True, timeout=600)
        assert proc.returncode == 0, proc.stderr[-2000:]
        got = json.loads(proc.stdout)
        index = np.array([g[0] for g in got])
        assert [g[1] for g in got] == [m.data["labels"][i] for i in index]  # names from the metadata's labels
        ours = load_runner(path)(x).argmax(1)  # the same file through deploy's LiteRT runner
        assert np.mean(index == ours) >= 0.99, fmt
        assert np.mean(index == y) >= np.mean(ours == y) - 0.003, fmt


def test_the_plain_int8_model_is_refused_by_mediapipe(small_converted, mediapipe_python, tmp_path):
    """Why the app rows exist: the digit models keep their contract (int8, one grey channel)."""
    np.savez(tmp_path / "d.npz", images=np.zeros((1, 28, 28, 3), np.uint8))
    proc = subprocess.run([str(mediapipe_python), str(CLASSIFY), str(small_converted / "tiny.int8.tflite"),
                           str(tmp_path / "d.npz")], capture_output=True, text=True, timeout=600)
    assert proc.returncode != 0 and "got INT8" in proc.stderr
