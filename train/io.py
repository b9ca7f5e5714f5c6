"""Loading .keras models safely, with errors that say what is wrong with the file."""

from __future__ import annotations

import zipfile
from pathlib import Path

from edgedigits.errors import EdgeDigitsError


def load_keras_model(path: str | Path):
    """Load a .keras file in safe mode (no Lambda layers, no arbitrary code)."""
    import os

    if os.environ.get("KERAS_BACKEND", "tensorflow") == "tensorflow":
        from edgedigits.quiet import import_tensorflow

        import_tensorflow()  # before Keras imports it, without TensorFlow's start-up chatter
    import keras

    path = Path(path)
    if not path.is_file():
        raise EdgeDigitsError(f"{path}: no such model file")
    if path.suffix != ".keras" or not zipfile.is_zipfile(path):
        raise EdgeDigitsError(f"{path}: not a Keras model (.keras zip archive); save one with model.save('m.keras')")
    try:
        return keras.saving.load_model(path, safe_mode=True, compile=False)
    except Exception as e:  # Keras raises many types here; all mean the same to the user
        msg = str(e).splitlines()[0] if str(e) else type(e).__name__
        if "lambda" in str(e).lower():
            msg = "it contains a Lambda layer, which cannot be loaded safely or converted; rebuild it without one"
        raise EdgeDigitsError(f"{path}: cannot load as a Keras model: {msg}") from None
