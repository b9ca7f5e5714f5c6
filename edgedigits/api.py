"""The Python API: one function per CLI command, with the command's defaults (each stage's config
dataclass holds them once). Heavy libraries load inside the function that needs them.

    from edgedigits import api

    run = api.train("sample", model="tiny", epochs=3)                  # -> run folder
    manifest = api.convert(run / "model.keras", "out/tiny", data="sample")
    runner = api.load_runner(manifest)                                  # (N, 28, 28) uint8 -> (N, 10)
    preds = api.predict(manifest, "test.csv")                           # -> Predictions
    preds.write("submission.csv", kaggle=True)
    report = api.benchmark(manifest, data="sample", runs=100)           # -> the benchmark's report

(The functions live here rather than on the package itself: `edgedigits.train` and
`edgedigits.convert` are the stages' sub-packages.)
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from edgedigits.errors import EdgeDigitsError


class ConvertFailed(EdgeDigitsError):
    """An artifact failed its export or its check; the manifest (written all the same) says which."""

    def __init__(self, message: str, manifest: Path):
        super().__init__(message)
        self.manifest = manifest


def train(data: str | os.PathLike = "auto", model: str = "standard", out: str | os.PathLike | None = None, *,
          labels: list[str] | None = None, resume: bool = False, say=print, **options) -> Path:
    """Train `model` on `data` (any `--data` source) into a run folder, which it returns. `options` are
    TrainConfig's fields (epochs, batch_size, learning_rate, augment, limit, seed, init_from, ...);
    `labels` the class names (default: the data's own)."""
    from edgedigits.atomic import folder_lock
    from edgedigits.train.trainer import TrainConfig
    from edgedigits.train.trainer import train as run_training

    cfg = TrainConfig(model=model, data=str(data), **options)
    if labels:
        from edgedigits.train.data import check_class_names

        cfg.labels = check_class_names(labels, "labels")
    out = Path(out) if out else Path("runs/train") / f"{model}-{time.strftime('%Y%m%d-%H%M%S')}"
    out.parent.mkdir(parents=True, exist_ok=True)
    with folder_lock(out, "out"):  # a second run into this folder is refused, as on the command line
        run_training(cfg, out, resume=resume, say=say)
    return out


def convert(model: str | os.PathLike, out: str | os.PathLike, *, formats: list[str] | None = None,
            data: str = "auto", say=print, **options) -> Path:
    """Convert a .keras model to `formats` (default: all), check each, and return the manifest's path.
    `options` are ConvertConfig's fields (tolerance_pp, calibration_size, int8_io, quiet, ...).
    Raises ConvertFailed (with .manifest) when an artifact fails its export or check."""
    from edgedigits.convert.cli import require_convert_libraries
    from edgedigits.convert.convert import ConvertConfig, check_config
    from edgedigits.convert.convert import convert as run_convert

    require_convert_libraries()
    cfg = _config(ConvertConfig, formats=formats, data=data, **options)
    check_config(Path(model), cfg)  # as the CLI checks its options: before any work
    manifest, ok = run_convert(Path(model), Path(out), cfg, say=say)
    if not ok:
        raise ConvertFailed(f"{manifest}: an artifact failed its export or its check (see its 'status')", manifest)
    return manifest


def _config(cls, **options):
    """A stage's config dataclass from keyword options; an unknown one is an EdgeDigitsError naming the valid."""
    import dataclasses

    fields = [f.name for f in dataclasses.fields(cls)]
    unknown = sorted(set(options) - set(fields))
    if unknown:
        raise EdgeDigitsError(f"unknown option(s) {', '.join(unknown)}; {cls.__name__} has: {', '.join(fields)}")
    return cls(**options)


def load_runner(model: str | os.PathLike = "standard", target: str = "cpu", *, fmt: str | None = None,
                threads: int = 1, say=print):
    """A runner `(N, 28, 28) uint8 -> (N, 10) float32` for a manifest (or its folder), a shipped model's
    name, a .tflite, .onnx or .keras file; its class names are `runner.labels`."""
    from edgedigits.deploy.predict import load_model

    runner, labels, _ = load_model(model, target, fmt, threads, say)
    runner.labels = labels
    return runner


def predict(model, data, **options):
    """Predictions of `model` (as load_runner takes it) on `data` (any `--data` source, a flat folder of
    images, or a train.data.Digits). See edgedigits.deploy.predict.predict for the options."""
    from edgedigits.deploy.predict import predict as run_predict

    return run_predict(model, data, **options)


def benchmark(manifest: str | os.PathLike = "standard", *, quiet: bool = False, say=print, **options) -> dict:
    """Accuracy and latency of the Keras model and every artifact of a manifest (or a shipped model's
    name), each row in a fresh process. `options` are BenchConfig's fields (data, runs, threads, limit,
    ...); quiet: no progress bar. Returns the report that `edgedigits benchmark --json` writes."""
    import tempfile

    from edgedigits.deploy import shipped_manifest
    from edgedigits.tools.benchmark import BenchConfig
    from edgedigits.tools.benchmark import benchmark as run_benchmark

    path = shipped_manifest(str(manifest)) if str(manifest) in ("standard", "tiny") else Path(manifest)
    with tempfile.TemporaryDirectory(prefix="edgedigits-bench-") as work:
        return run_benchmark(path, BenchConfig(**options), Path(work), say=say, quiet=quiet)
