"""Keep a command's output to what the user asked for.

TensorFlow, its converter and LiteRT write start-up chatter from C++ straight to file descriptor 2,
before (or regardless of) any Python or environment setting: absl's "All log messages before
absl::InitializeLog()", oneDNN and "Could not find cuda drivers" at import, "failed call to cuInit"
at device discovery on a machine without a GPU, "fully_quantize: 0, inference_type: 6" from the
converter, "INFO: Created TensorFlow Lite XNNPACK delegate" from every interpreter. `filtered_stderr`
sends fd 2 to a temporary file around such a call and passes on every line that is not one of these,
so a real warning or error still reaches the user. Use it around short calls only: what is written
inside the block appears when it ends.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
import tempfile
import warnings

NOISE = re.compile("|".join([
    r"WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR",
    r"I\d{4} [\d:. ]+\d+ \S+\.cc:\d+\]",  # absl INFO lines (oneDNN, cuda drivers, CPU features, loader)
    r"[WE]\d{4} [\d:. ]+\d+ (cuda_\w+|cudart_stub|gpu_device|dso_loader)\.cc:\d+\]",  # no GPU here: not news
    r"fully_quantize: \d+, inference_type: \d+",
    r"INFO: Created TensorFlow Lite XNNPACK delegate",
    r"INFO: Initialized TensorFlow Lite runtime",
]))


@contextlib.contextmanager
def filtered_stderr():
    """Run the block with fd 2 captured; afterwards write back every line that is not NOISE."""
    sys.stderr.flush()
    try:
        saved = os.dup(2)
    except OSError:  # no fd 2 (a detached process): nothing to filter
        yield
        return
    with tempfile.TemporaryFile() as tmp:
        os.dup2(tmp.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            tmp.seek(0)
            kept = [ln for ln in tmp.read().decode(errors="replace").splitlines(keepends=True)
                    if ln.strip() and not NOISE.match(ln)]
            if kept:
                sys.stderr.write("".join(kept))
                sys.stderr.flush()


def import_tensorflow():
    """`import tensorflow` and its device discovery (where cuInit runs), without the chatter.
    Returns the module. Call it before Keras is imported with the TensorFlow backend."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    already = "tensorflow" in sys.modules
    with filtered_stderr():
        import tensorflow as tf

        if not already:
            tf.config.list_physical_devices()
    with contextlib.suppress(ImportError):  # TensorFlow's Python side logs through absl
        import absl.logging

        absl.logging.set_verbosity(absl.logging.ERROR)
    # tf.lite.Interpreter's deprecation (the quantization debugger uses it) is TensorFlow's own business
    warnings.filterwarnings("ignore", message=r"(?s).*tf\.lite\.Interpreter is deprecated")
    return tf
