"""Shared fixtures: real files, real models, real runtimes. Nothing here is mocked."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

# The Ctrl-C tests send SIGINT to the commands they start, as a terminal would. A test run started in
# the background of a script inherits SIGINT ignored, and so would every command it starts (Python then
# keeps it ignored: no KeyboardInterrupt, the command runs on). Its children start as from a terminal.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)

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


# JAX runs in tests: XLA's optimizations off. They test what is trained where, not its speed, and a
# run compiles in two thirds of the time (a tiny model's 2 epochs: 39 s -> 32 s on 2 cores)
QUICK_XLA = "--xla_backend_optimization_level=0 --xla_llvm_disable_expensive_passes=true"


def run_cli(*args: str, env: dict | None = None, timeout: int = 600, cwd: Path | None = None):
    """The real `edgedigits` command in a subprocess: (exit code, stdout, stderr)."""
    proc = subprocess.run([sys.executable, "-m", "edgedigits", *args], capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, **(env or {})}, cwd=cwd)
    return proc.returncode, proc.stdout, proc.stderr


def run_clis(*commands: list[str], timeout: int = 600) -> list[tuple[int, str, str]]:
    """Several `edgedigits` commands at once, each in its own subprocess: [(exit code, stdout, stderr)]."""
    procs = [subprocess.Popen([sys.executable, "-m", "edgedigits", *args], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, env=dict(os.environ)) for args in commands]
    results = []
    for p in procs:
        out, err = p.communicate(timeout=timeout)
        results.append((p.returncode, out, err))
    return results


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


def built_once(tmp_path_factory, name: str, build) -> Path:
    """A session fixture's folder, built by `build(path)` once for the whole run: under pytest-xdist
    (`make test` runs the files on several workers) the first worker to ask builds it while the others
    wait on a lock, then all read the same folder."""
    import fcntl

    root = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        root = root.parent  # shared by the workers of this run
    path, done = root / name, root / f"{name}.done"
    with open(root / f"{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not done.exists():
            import shutil

            shutil.rmtree(path, ignore_errors=True)
            path.mkdir(parents=True)
            build(path)
            done.touch()
    return path


@pytest.fixture(scope="session")
def small_run(tmp_path_factory) -> Path:
    """A real training run of the tiny model on part of the bundled sample: a run folder."""
    from edgedigits.train.trainer import TrainConfig, train

    def build(path):
        train(TrainConfig(model="tiny", data="sample", epochs=3, limit=3000, batch_size=64, patience=5,
                          learning_rate=5e-3), path / "tiny", say=lambda *_: None)

    return built_once(tmp_path_factory, "run", build) / "tiny"


# The small run's model converts at this tolerance, `make demo`'s: 5 of the 500 check digits. A model of 3
# epochs on 3,000 digits (about 95%) answers near-ties on many digits, and which of them int8 flips depends
# on the CPU that trained it: onnx_int8 measured +0.2 points against Keras on one Xeon, -0.4 on an AMD EPYC
# (2 digits), with the same code. The product's own 0.3 holds for the shipped models (their manifests, 6,000
# validation digits; tests/deploy/test_runners.py reads their int8 files against Keras).
SMALL_TOLERANCE_PP = 1.0


@pytest.fixture(scope="session")
def small_converted(small_run, tmp_path_factory) -> Path:
    """The small run's model converted to every format, with a manifest, each checked against Keras."""
    from edgedigits.convert.convert import ConvertConfig, convert

    def build(path):
        convert(small_run / "model.keras", path, ConvertConfig(data="sample", calibration_size=100,
                                                               tolerance_pp=SMALL_TOLERANCE_PP), say=lambda *_: None)

    return built_once(tmp_path_factory, "converted", build)


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
