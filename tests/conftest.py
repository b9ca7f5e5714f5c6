"""Shared fixtures: real files, real models, real runtimes. Nothing here is mocked."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

ROOT = Path(__file__).resolve().parents[1]
SHARED_MNIST = ROOT.parent / "shared" / "data" / "mnist"
PHOTOS = ROOT.parent / "shared" / "data" / "photos"  # real phone photos (CI and developers have ../shared)


def photo_labels(folder: str) -> list[tuple[str, str]]:
    """(filename, label) of ../shared/data/photos/<folder>; skips the test where ../shared is absent (a
    user's clone). The photos are read there, never copied into the repository."""
    import csv

    path = PHOTOS / folder / "labels.csv"
    if not path.is_file():
        pytest.skip(f"{path} not present: the real-photo tests need ../shared/data/photos beside the checkout")
    with open(path, newline="") as f:
        return [(r["filename"], r.get("label") or "") for r in csv.DictReader(f)]  # no label: no digit


def run_cli(*args: str, env: dict | None = None, timeout: int = 600, cwd: Path | None = None):
    """The real `edgedigits` command in a subprocess: (exit code, stdout, stderr)."""
    proc = subprocess.run([sys.executable, "-m", "edgedigits", *args], capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, **(env or {})}, cwd=cwd)
    return proc.returncode, proc.stdout, proc.stderr


@pytest.fixture(scope="session")
def mnist_dir() -> Path:
    """The four canonical MNIST files (CI and developers have ../shared; a user's clone may not)."""
    if not (SHARED_MNIST / "train-images-idx3-ubyte.gz").is_file():
        pytest.skip(f"{SHARED_MNIST} not present")
    return SHARED_MNIST


@pytest.fixture(scope="session")
def sample():
    from edgedigits.train.data import load_sample

    return load_sample()


@pytest.fixture(scope="session")
def small_run(tmp_path_factory) -> Path:
    """A real training run of the tiny model on part of the bundled sample: a run folder."""
    from edgedigits.train.trainer import TrainConfig, train

    out = tmp_path_factory.mktemp("run") / "tiny"
    train(TrainConfig(model="tiny", data="sample", epochs=3, limit=3000, batch_size=64, patience=5,
                      learning_rate=5e-3), out, say=lambda *_: None)
    return out


@pytest.fixture(scope="session")
def small_converted(small_run, tmp_path_factory) -> Path:
    """The small run's model converted to every format, with a manifest. Checked at the product's own
    tolerance (ConvertConfig's default, 0.3 points against Keras on the 500 held-out digits; measured:
    int8 +0.6, onnx_int8 +0.2, the float formats 0.0), so a test asserting status 'passed' fails when a
    format loses accuracy the product would refuse."""
    from edgedigits.convert.convert import ConvertConfig, convert

    out = tmp_path_factory.mktemp("converted")
    convert(small_run / "model.keras", out, ConvertConfig(data="sample", calibration_size=100), say=lambda *_: None)
    return out


@pytest.fixture(scope="session")
def shipped():
    """The shipped pretrained 'standard' model, converted: (keras path, manifest path)."""
    from edgedigits.deploy import shipped_manifest

    m = shipped_manifest("standard")
    assert m.is_file(), f"{m}: the shipped model bundle is missing"
    return m.parent / "standard.keras", m


@pytest.fixture(scope="session")
def test_digits(sample):
    """Real MNIST test digits (the bundled sample's test part, never trained on)."""
    return sample.test.images, sample.test.labels.astype(np.int64)
