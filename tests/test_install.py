"""Installs that work as installed: a wheel built from the checkout (nothing written into the tree)
builds the web app offline, and a device venv holding only tflite-runtime, NumPy 1 and OpenCV
(`pip install 'edgedigits[device]'`) reads docs/example.jpg.

These need pip to reach the package index (setuptools for the build; the device's packages); without
it they skip and say so. The wheel and the device venv are built once per session.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.conftest import ROOT, run_cli

RUNTIME = ROOT / "deploy" / "web" / "node_modules" / "onnxruntime-web" / "dist"
SKIP_DIRS = {".git", ".venv", "runs", "out", "node_modules", "__pycache__", ".pytest_cache", "build", "dist"}


def _pip(*args, cwd=None, timeout=600, python=sys.executable):
    return subprocess.run([str(python), "-m", "pip", *args, "--disable-pip-version-check"], capture_output=True,
                          text=True, cwd=cwd, timeout=timeout)


def _skip_if_offline(proc, what):
    text = proc.stdout + proc.stderr
    if proc.returncode and any(s in text for s in ("No matching distribution", "Could not find a version",
                                                   "connection", "Connection", "Network is unreachable")):
        pytest.skip(f"{what}: pip cannot reach the package index ({text.strip().splitlines()[-1][:200]})")
    assert proc.returncode == 0, text[-3000:]


@pytest.fixture(scope="session")
def wheel(tmp_path_factory) -> Path:
    """A wheel of a copy of the checkout (with the web runtime that `make system-deps` installs)."""
    if not (RUNTIME / "ort-wasm-simd-threaded.wasm").is_file():
        pytest.skip(f"{RUNTIME}: the web runtime is not installed (make system-deps runs npm ci)")
    tmp = tmp_path_factory.mktemp("wheel")
    src = tmp / "src"
    shutil.copytree(ROOT, src, ignore=lambda d, names: [n for n in names if n in SKIP_DIRS or n.endswith(".egg-info")])
    for f in RUNTIME.parent.rglob("*"):  # the pinned runtime files only, not the whole of node_modules
        if f.is_file() and (f.parent == RUNTIME.parent or f.name.startswith("ort")):
            dst = src / f.relative_to(ROOT)
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(f, dst)
    before = sorted(p.relative_to(src).as_posix() for p in src.rglob("*"))
    proc = _pip("wheel", str(src), "--no-deps", "-w", str(tmp / "dist"), cwd=tmp)
    _skip_if_offline(proc, "building the wheel")
    after = sorted(p.relative_to(src).as_posix() for p in src.rglob("*"))
    assert after == before, f"the build wrote into the source tree: {sorted(set(after) - set(before))[:10]}"
    return next((tmp / "dist").glob("edgedigits-*.whl"))


def test_wheel_builds_the_web_app_offline(wheel, tmp_path):
    names = zipfile.ZipFile(wheel).namelist()
    assert "edgedigits/deploy/web/node_modules/onnxruntime-web/dist/ort-wasm-simd-threaded.wasm" in names
    assert "edgedigits/deploy/models/standard/standard.int8.onnx" in names
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)  # the installed package, as pip lays it out
    code = ("import sys, edgedigits; assert edgedigits.__file__.startswith(sys.argv[1]), edgedigits.__file__\n"
            "from edgedigits.cli import main; sys.exit(main(['deploy', '--target', 'web', '--out', sys.argv[2]]))")
    env = {**os.environ, "PYTHONPATH": str(site), "PATH": str(Path(sys.executable).parent),  # no npm, no node
           "HOME": str(tmp_path / "home"), "EDGEDIGITS_DATA": str(tmp_path / "cache")}
    proc = subprocess.run([sys.executable, "-c", code, str(site), str(tmp_path / "app")], capture_output=True,
                          text=True, timeout=120, env=env, cwd=tmp_path)  # not the checkout: its edgedigits/ would win
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert (tmp_path / "app" / "runtime" / "ort-wasm-simd-threaded.wasm").stat().st_size > 1e6
    assert not (tmp_path / "cache").exists()  # nothing fetched into the cache


@pytest.fixture(scope="session")
def device_venv(wheel, tmp_path_factory) -> Path:
    """A venv with `pip install 'edgedigits[device]'`: tflite-runtime, numpy<2, OpenCV, and nothing else
    of ours (no TensorFlow, no ONNX Runtime, no ai-edge-litert)."""
    if sys.version_info >= (3, 12):
        pytest.skip("tflite-runtime 2.14 has wheels for Python 3.8 to 3.11 only")
    venv = tmp_path_factory.mktemp("device") / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    proc = _pip("install", "-q", f"{wheel}[device]", python=venv / "bin" / "python")
    _skip_if_offline(proc, "installing edgedigits[device]")
    return venv


def test_device_install_reads_the_example_and_explains_a_numpy_mismatch(device_venv):
    py = device_venv / "bin" / "python"
    listed = _pip("list", "--format", "json", python=py)
    have = {p["name"].lower(): p["version"] for p in json.loads(listed.stdout)}
    assert "tflite-runtime" in have and have["numpy"].startswith("1.")
    assert not {"tensorflow", "onnxruntime", "ai-edge-litert", "keras"} & set(have), sorted(have)
    cmd = [str(device_venv / "bin" / "edgedigits"), "deploy", "--source", str(ROOT / "docs" / "example.jpg"), "--headless"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    line = json.loads(proc.stdout.splitlines()[0])
    code, out, err = run_cli("deploy", "--source", str(ROOT / "docs" / "example.jpg"), "--headless")  # ai-edge-litert
    reference = json.loads(out.splitlines()[0])
    assert len(line["digits"]) == 4 and line["text"] == reference["text"], (line, reference)  # "2026"
    assert [d["name"] for d in line["digits"]] == [str(d["label"]) for d in line["digits"]]
    # NumPy 2 under tflite-runtime 2.14: one line that says what to do, not a traceback
    _skip_if_offline(_pip("install", "-q", "numpy>=2", python=py), "installing numpy 2")
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "tflite_runtime is installed but cannot load" in proc.stderr and "numpy<2" in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr and "_ARRAY_API" not in proc.stderr, proc.stderr


def test_convert_in_a_deploy_only_install_names_the_extra(tmp_path, shipped):
    from tests.deploy.test_runners import BLOCK_TF

    code = BLOCK_TF + "from edgedigits.cli import main\nsys.exit(main(sys.argv[1:]))"
    proc = subprocess.run([sys.executable, "-c", code, "convert", str(shipped[0]), "--out", str(tmp_path / "o")],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert "pip install 'edgedigits[convert]'" in proc.stderr and "Traceback" not in proc.stderr, proc.stderr
    assert "tensorflow, keras, tf2onnx" in proc.stderr
