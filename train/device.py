"""Pick the Keras backend and the device before Keras is imported.

A GPU is used whenever one is visible: TensorFlow's, or JAX's or PyTorch's on a machine where
TensorFlow has no GPU support; JAX's when it sees several (only JAX trains on several, distribute.py).
Mixed precision is switched on for GPUs only.
"""

from __future__ import annotations

import importlib.util
import os

from edgedigits.errors import EdgeDigitsError

BACKENDS = ("tensorflow", "jax", "torch")


def _installed(name: str) -> bool:
    return importlib.util.find_spec(name) is not None


def gpu_name(backend: str) -> str | None:
    """The first GPU this backend can see, or None. Imports the backend."""
    try:
        if backend == "tensorflow":
            from edgedigits.quiet import import_tensorflow

            tf = import_tensorflow()  # no cuInit/oneDNN chatter on a machine without a GPU

            gpus = tf.config.list_physical_devices("GPU")
            if gpus:
                details = tf.config.experimental.get_device_details(gpus[0])
                return details.get("device_name", gpus[0].name)
        elif backend == "jax":
            import jax

            gpus = [d for d in jax.devices() if d.platform == "gpu"]
            if gpus:
                return gpus[0].device_kind
        elif backend == "torch":
            import torch

            if torch.cuda.is_available():
                return torch.cuda.get_device_name(0)
    except Exception:  # a broken GPU install falls back to the CPU
        return None
    return None


def choose_backend(requested: str | None) -> tuple[str, str | None]:
    requested = requested or os.environ.get("KERAS_BACKEND")
    if requested:
        if requested not in BACKENDS:
            raise EdgeDigitsError(f"unknown backend '{requested}'; choose one of: {', '.join(BACKENDS)}")
        if not _installed(requested):
            raise EdgeDigitsError(f"backend '{requested}' is not installed (pip install {requested})")
        return requested, gpu_name(requested)
    installed = [b for b in BACKENDS if _installed(b)]
    if not installed:
        raise EdgeDigitsError("no Keras backend installed: pip install 'edgedigits[train]'")
    if "jax" in installed and jax_gpu_count() > 1:  # only JAX trains on all of them (distribute.py)
        return "jax", gpu_name("jax")
    for b in installed:
        name = gpu_name(b)
        if name:
            return b, name
    return installed[0], None


def jax_gpu_count() -> int:
    try:
        import jax

        return sum(d.platform == "gpu" for d in jax.local_devices())
    except Exception:  # a broken GPU install: no GPU
        return 0


def setup(requested: str | None = None) -> tuple[str, str, bool]:
    """Set KERAS_BACKEND and the dtype policy. Returns (backend, device description, mixed precision)."""
    backend, gpu = choose_backend(requested)
    os.environ["KERAS_BACKEND"] = backend
    import keras

    if keras.backend.backend() != backend:
        raise EdgeDigitsError(f"Keras was already imported with the '{keras.backend.backend()}' backend; "
                              f"set KERAS_BACKEND={backend} before starting")
    if gpu:
        keras.mixed_precision.set_global_policy("mixed_float16")
        return backend, f"GPU ({gpu})", True
    import platform

    return backend, f"CPU ({platform.processor() or platform.machine()}, {os.cpu_count()} cores)", False
