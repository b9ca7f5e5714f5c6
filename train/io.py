"""Loading .keras models safely, with errors that say what is wrong with the file; saving them whole."""

from __future__ import annotations

import io
import re
import zipfile
from pathlib import Path
from typing import Callable

from edgedigits.atomic import atomic_write_bytes
from edgedigits.contract import INPUT_SHAPE, LABELS
from edgedigits.errors import EdgeDigitsError


class _Buffer(io.BytesIO):
    """A file in memory that Keras' savers take where they want a path: they check the name's suffix
    (`str(path)`), then write into any BytesIO."""

    def __init__(self, name: str):
        super().__init__()
        self.name = name

    def __str__(self) -> str:
        return self.name


def save_keras(path: Path, save: Callable[[io.BytesIO], object]) -> Path:
    """`save(file)` (`model.save`, `model.save_weights`) into memory, then onto `path` whole.

    h5py writing straight onto a full disk prints a traceback for every object it closes and can end
    the process with a segfault; built in memory (a few MB for these models), only a plain write meets
    the disk, and a disk without room is one line with the bytes needed, the earlier file kept."""
    buf = _Buffer(Path(path).name)
    save(buf)
    return atomic_write_bytes(path, buf.getvalue())


def load_keras_model(path: str | Path):
    """Load a .keras file in safe mode (no Lambda layers, no arbitrary code)."""
    path = Path(path)
    if not path.is_file():
        raise EdgeDigitsError(f"{path}: no such model file")
    if path.suffix != ".keras" or not zipfile.is_zipfile(path):
        raise EdgeDigitsError(f"{path}: not a Keras model (.keras zip archive); save one with model.save('m.keras')")
    import os

    if os.environ.get("KERAS_BACKEND", "tensorflow") == "tensorflow":
        from edgedigits.quiet import import_tensorflow

        import_tensorflow()  # before Keras imports it, without TensorFlow's start-up chatter
    import keras  # after the cheap checks: a wrong file fails in milliseconds, not after TensorFlow loads

    try:
        model = keras.saving.load_model(path, safe_mode=True, compile=False)
    except Exception as e:  # Keras raises many types here; all mean the same to the user
        raise EdgeDigitsError(f"{path}: cannot load as a Keras model: {_why(e)}") from None
    inputs, outputs = getattr(model, "inputs", None) or [], getattr(model, "outputs", None) or []
    shapes = [tuple(t.shape) for t in inputs], [tuple(t.shape) for t in outputs]
    if [s[1:] for s in shapes[0]] != [INPUT_SHAPE] or [s[1:] for s in shapes[1]] != [(len(LABELS),)]:  # the contract
        raise EdgeDigitsError(f"{path}: not a digit model: inputs {shapes[0]}, outputs {shapes[1]}; expected "
                              f"one (N, 28, 28, 1) input and one (N, 10) output")
    return model


def _why(e: Exception) -> str:
    """What Keras' refusal means, in one line: its messages are long and name internals."""
    text = str(e)
    if "`Lambda` layer" in text:
        return "it contains a Lambda layer, which cannot be loaded safely or converted; rebuild it without one"
    if "Python lambda" in text:
        return "it holds a serialized Python function, which safe mode refuses to run"
    unknown = re.search(r"Could not locate (?:class|function) '([^']+)'", text)
    if unknown:
        where = re.search(r"'module': '([^']+)', 'class_name': '" + re.escape(unknown[1]), text)
        name = f"{where[1]}.{unknown[1]}" if where else unknown[1]
        return f"it names '{name}', which is not a Keras layer or function (refused in safe mode)"
    if "Non-modeling APIs" in text:
        return "it calls a Keras function that is not a layer or operation (refused in safe mode)"
    return (text.strip().splitlines() or [type(e).__name__])[0][:300]
