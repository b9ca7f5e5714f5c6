"""Light runners: a converted model as a function `(N, 28, 28) uint8 digits -> (N, 10) probabilities`.

Never imports TensorFlow: a device carries only LiteRT (ai-edge-litert, or the older tflite-runtime)
and ONNX Runtime. Quantization of inputs and outputs is handled here, from the model's own tensors.

    runner = load_runner("model.int8.tflite", threads=1)
    probs = runner(digits)                  # digits: (N, 28, 28) uint8, white on black
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgedigits.contract import APP_SIZE, LABELS, app_image, check_digits, dequantize, quantize, to_float
from edgedigits.errors import EdgeDigitsError
from edgedigits.formats import FORMATS, TARGETS
from edgedigits.manifest import Manifest, load_manifest
from edgedigits.quiet import filtered_stderr

EDGETPU_LIBRARY = {"Linux": "libedgetpu.so.1", "Darwin": "libedgetpu.1.dylib", "Windows": "edgetpu.dll"}
EDGETPU_INSTALL = ("install the Edge TPU runtime (Debian/Ubuntu: `apt-get install libedgetpu1-std` from "
                   "Coral's package repository; see https://coral.ai/docs/accelerator/get-started/) "
                   "and plug in the Coral device")


class RuntimeMissing(EdgeDigitsError):
    """The runtime a model needs is not installed."""


class DelegateError(EdgeDigitsError):
    """A hardware delegate (Edge TPU) could not be loaded."""


DEVICE_INSTALL = "pip install 'edgedigits[device]' (tflite-runtime with numpy<2 and OpenCV)"


def litert():
    """The LiteRT interpreter module: ai-edge-litert, else tflite-runtime.

    An installed runtime that cannot load (tflite-runtime 2.14 is built against NumPy 1; under NumPy 2
    its import prints "_ARRAY_API not found" and fails) is a one-line RuntimeMissing, not a traceback."""
    import contextlib
    import importlib
    import importlib.util
    import io

    broken = []
    for name in ("ai_edge_litert", "tflite_runtime"):
        try:
            if importlib.util.find_spec(name) is None:
                continue
        except (ImportError, ValueError):
            continue
        if name == "tflite_runtime" and _numpy_major() >= 2 and _version("tflite-runtime") < (2, 15):
            # it imports, then fails inside Interpreter() with a SystemError after "_ARRAY_API not found"
            broken.append(f"tflite_runtime is installed but cannot load (tflite-runtime "
                          f"{'.'.join(map(str, _version('tflite-runtime')))} was built for NumPy 1 and this is "
                          f"NumPy {np.__version__}): pip install 'numpy<2' (or {DEVICE_INSTALL})")
            continue
        chatter = io.StringIO()
        try:
            with contextlib.redirect_stderr(chatter):  # NumPy's long ABI warning: summed up below
                return importlib.import_module(f"{name}.interpreter")
        except (ImportError, AttributeError) as e:
            why = str(e).splitlines()[0] if str(e) else type(e).__name__
            if "_ARRAY_API" in chatter.getvalue() or "NumPy 1.x" in chatter.getvalue() or "numpy" in why.lower():
                why = (f"it was built for NumPy 1 and this is NumPy {np.__version__}: pip install 'numpy<2'"
                       f" (or {DEVICE_INSTALL})")
            broken.append(f"{name} is installed but cannot load ({why})")
    if broken:
        raise RuntimeMissing("; ".join(broken))
    raise RuntimeMissing("no LiteRT runtime: pip install ai-edge-litert "
                         f"(or, on a device, {DEVICE_INSTALL})")


def _numpy_major() -> int:
    return int(np.__version__.split(".")[0])


def _version(dist: str) -> tuple[int, ...]:
    from importlib import metadata

    try:
        return tuple(int(p) for p in metadata.version(dist).split(".")[:2] if p.isdigit())
    except metadata.PackageNotFoundError:
        return (0,)


@dataclass
class TFLiteRunner:
    path: Path
    threads: int = 1
    delegate: str | None = None  # "edgetpu"
    device: str | None = None  # Edge TPU: "usb", "pci", "usb:0", "pci:1", or None for any
    name: str = "litert"
    classes: int = 10  # outputs per digit (the verifier has 2)

    def __post_init__(self):
        it = litert()
        delegates = [load_edgetpu_delegate(self.device)] if self.delegate == "edgetpu" else None
        try:
            self.interpreter = it.Interpreter(model_path=str(self.path), num_threads=self.threads,
                                              experimental_delegates=delegates)
        except (ValueError, SystemError) as e:
            raise EdgeDigitsError(f"{self.path}: LiteRT cannot load it: {str(e).splitlines()[0]}") from None
        self._inp = self.interpreter.get_input_details()[0]
        self._out = self.interpreter.get_output_details()[0]
        _check_contract(self.path, list(self._inp["shape_signature"]), list(self._out["shape_signature"]), self.classes)
        self.dynamic_batch = int(self._inp["shape_signature"][0]) == -1
        self.input_dtype = np.dtype(self._inp["dtype"])
        self._batch = int(self._inp["shape"][0])
        # an app model (convert/mobile.py) takes RGB pixels 0..255, dark on light, as a phone passes them
        self.app = int(self._inp["shape_signature"][-1]) == 3
        self._lut = None
        if self.input_dtype in (np.int8, np.uint8):
            # every pixel 0..255 quantized once: a table lookup per frame instead of float math
            pixels = np.arange(256, dtype=np.float32) / (1 if self.app else 255)
            self._lut = quantize(pixels, *self._inp["quantization"], self.input_dtype)
        with filtered_stderr():  # the first allocation applies XNNPACK and announces it on fd 2
            self.interpreter.allocate_tensors()

    def _resize(self, n: int) -> None:
        if n != self._batch:
            shape = [n, APP_SIZE, APP_SIZE, 3] if self.app else [n, 28, 28, 1]
            self.interpreter.resize_tensor_input(self._inp["index"], shape)
            self.interpreter.allocate_tensors()
            self._batch = n

    def _run(self, x: np.ndarray) -> np.ndarray:
        self.interpreter.set_tensor(self._inp["index"], x)
        self.interpreter.invoke()
        return self.interpreter.get_tensor(self._out["index"])

    def __call__(self, digits: np.ndarray) -> np.ndarray:
        if self.app:  # the digit as an app passes it: (N, 112, 112, 3) RGB, dark ink on light paper
            rgb = app_image(digits)
            x = self._lut[rgb] if self._lut is not None else rgb.astype(np.float32)
        elif self._lut is not None:
            x = self._lut[check_digits(digits)][..., None]
        else:
            x = to_float(digits)
        if self.dynamic_batch:
            self._resize(len(x))
            y = self._run(x)
        else:  # static batch (Edge TPU models): one at a time
            y = np.concatenate([self._run(x[i:i + 1]) for i in range(len(x))]) if len(x) else \
                np.zeros((0, self.classes), self._out["dtype"])
        if np.dtype(self._out["dtype"]) in (np.int8, np.uint8):
            y = dequantize(y, *self._out["quantization"])
        return y.astype(np.float32, copy=False)


@dataclass
class OnnxRunner:
    path: Path
    threads: int = 1
    providers: tuple[str, ...] | None = None  # default: the CPU
    name: str = "onnxruntime"
    classes: int = 10

    def __post_init__(self):
        try:
            import onnxruntime as ort
        except ImportError:
            raise RuntimeMissing("ONNX Runtime is not installed: pip install onnxruntime") from None
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = self.threads
        opts.inter_op_num_threads = 1
        opts.log_severity_level = 3
        available = ort.get_available_providers()
        providers = [p for p in (self.providers or ["CPUExecutionProvider"]) if p in available]
        try:
            self.session = ort.InferenceSession(str(self.path), opts, providers=providers)
        except Exception as e:  # ONNX Runtime raises its own exception types
            raise EdgeDigitsError(f"{self.path}: ONNX Runtime cannot load it: {str(e).splitlines()[0]}") from None
        _check_contract(self.path, self.session.get_inputs()[0].shape, self.session.get_outputs()[0].shape,
                        self.classes)
        self._inp = self.session.get_inputs()[0].name
        self._out = self.session.get_outputs()[0].name

    def __call__(self, digits: np.ndarray) -> np.ndarray:
        return self.session.run([self._out], {self._inp: to_float(digits)})[0]


def _check_contract(path: Path, inp: list, out: list, classes: int = 10) -> None:
    """A digit model takes (N, 28, 28, 1) (an app model (N, 112, 112, 3)) and gives (N, 10); anything else
    would fail on the first frame."""
    shape = [int(v) if isinstance(v, (int, np.integer)) else -1 for v in inp[1:]]
    if shape not in ([28, 28, 1], [APP_SIZE, APP_SIZE, 3]) or not len(out) or out[-1] != classes:
        raise EdgeDigitsError(f"{path}: not a digit model: input {list(inp)}, output {list(out)}; expected "
                              f"(N, 28, 28, 1) in (an app model: (N, {APP_SIZE}, {APP_SIZE}, 3)) and (N, {classes}) out")


VERIFIER = Path(__file__).parent / "models" / "verifier"  # the shipped digit verifier (train/verifier.py)
VERIFIER_FILES = {"litert": "verifier.fp32.tflite", "onnxruntime": "verifier.fp32.onnx"}


class Verifier:
    """`(N, 28, 28) uint8 digits -> (N,) probability that each is one digit`: the camera pipeline's
    judge of what is a digit (deploy/group.py). Runs on the CPU with the runtime of the model it
    serves: LiteRT beside a .tflite model, also an Edge TPU one; ONNX Runtime beside an .onnx. Both
    files hold the same float32 weights, which the web app runs too, so every target decides alike
    (their probabilities differ by less than 1e-6). Float32 and not int8: on a CPU without int8
    dot-product instructions (AVX2 alone) XNNPACK ran the int8 file at half the speed (a batch of 5:
    0.50 against 0.27 ms, 2026-12-07), and its probabilities differed from the web app's."""

    def __init__(self, runtime: str = "litert", threads: int = 1, folder: Path = VERIFIER):
        path = Path(folder) / VERIFIER_FILES["onnxruntime" if runtime == "onnxruntime" else "litert"]
        if not path.is_file():
            raise EdgeDigitsError(f"{path}: the digit verifier is missing (reinstall edgedigits, or "
                                  f"run `python -m edgedigits.train.verifier --out {Path(folder)}`)")
        self.path, self.threads = path, threads
        self.runner = OnnxRunner(path, threads, classes=2) if runtime == "onnxruntime" else \
            TFLiteRunner(path, threads, classes=2)
        self._sized = {}  # LiteRT: one interpreter per batch size up to BATCH (each allocated once)

    BATCH = 32

    def _litert(self, n: int):
        if n not in self._sized:
            self._sized[n] = TFLiteRunner(self.path, self.threads, classes=2)
        return self._sized[n]

    def __call__(self, digits: np.ndarray) -> np.ndarray:
        digits = check_digits(digits)
        if not len(digits):
            return np.zeros(0, np.float32)
        if isinstance(self.runner, OnnxRunner):
            return self.runner(digits)[:, 1]
        # LiteRT reallocates its tensors whenever the batch size changes (a millisecond, more than the
        # model itself): an interpreter per size, in chunks of at most BATCH
        if len(digits) <= self.BATCH:  # (a frame's groups, nearly always)
            return self._litert(len(digits))(digits)[:, 1]
        return np.concatenate([self._litert(len(c))(c)[:, 1] for c in
                               np.array_split(digits, -(-len(digits) // self.BATCH))])


def _no_verifier(runner):
    runner.verify = None
    return runner


def attach_verifier(runner, labels, threads: int = 1):
    """Give a digit model's runner the verifier (runner.verify); a model of other classes gets none."""
    if [str(v) for v in labels] == LABELS:
        runner.verify = Verifier(runner.name if runner.name == "onnxruntime" else "litert", threads)
    else:
        runner.verify = None
    return runner


def load_edgetpu_delegate(device: str | None = None):
    """The Edge TPU delegate, or a DelegateError saying what is missing and how to get it."""
    import platform

    lib = EDGETPU_LIBRARY.get(platform.system(), "libedgetpu.so.1")
    options = {"device": device} if device else {}
    try:
        return litert().load_delegate(lib, options)
    except (ValueError, OSError) as e:
        why = str(e)
        if "Failed to load delegate" in why or "cannot open" in why or "No such file" in why:
            what = f"the Edge TPU library {lib} is not installed or not found"
        else:
            what = f"no Edge TPU device{' ' + repr(device) if device else ''} was found"
        raise DelegateError(f"cannot use the Edge TPU: {what} ({why.strip()}). To fix: {EDGETPU_INSTALL}; "
                            f"or run with --fallback cpu to use the plain int8 model on the CPU") from None


RUNTIMES = {f.runtime for f in FORMATS.values()}  # what a format row's `runtime` may name


def open_runner(path: str | os.PathLike, runtime: str, threads: int = 1, target: str = "cpu",
                device: str | None = None):
    """The runner for a model file in the runtime its format row names (edgedigits.formats): "litert",
    "litert+edgetpu" (the Edge TPU delegate when the target is edgetpu) or "onnxruntime"."""
    path = Path(path)
    if not path.is_file():
        raise EdgeDigitsError(f"{path}: model file not found")
    if runtime == "onnxruntime":
        return OnnxRunner(path, threads, None if target in ("cpu", "onnx") else (target,))
    if runtime in ("litert", "litert+edgetpu"):
        return TFLiteRunner(path, threads, delegate="edgetpu" if target == "edgetpu" else None, device=device)
    raise EdgeDigitsError(f"{path}: unknown runtime '{runtime}'; a format row names one of {sorted(RUNTIMES)}")


def load_runner(path: str | os.PathLike, threads: int = 1, target: str = "cpu", device: str | None = None):
    """A runner for a model file that comes without a manifest (no format row to say its runtime): a
    .tflite file runs in LiteRT, an .onnx file in ONNX Runtime. From a manifest, use from_manifest."""
    path = Path(path)
    runtime = {".tflite": "litert", ".onnx": "onnxruntime"}.get(path.suffix)
    if runtime is None and path.is_file():
        raise EdgeDigitsError(f"{path}: unknown model type '{path.suffix}'; expected .tflite or .onnx")
    return open_runner(path, runtime or "litert", threads, target, device)


def _row(m: Manifest, entry: dict):
    """The format table's row for a manifest entry: the runner is chosen by it, never by the file's name."""
    if entry["format"] not in FORMATS:
        raise EdgeDigitsError(f"{m.path}: artifact format '{entry['format']}' is not one this edgedigits knows "
                              f"({', '.join(FORMATS)}); upgrade edgedigits or convert again")
    return FORMATS[entry["format"]]


def from_manifest(manifest, target: str = "cpu", threads: int = 1, device: str | None = None,
                  fallback: str | None = None, fmt: str | None = None, say=print, verifier: bool = True):
    """The runner for a target from a converted model's manifest (a path or a loaded Manifest).

    Each target runs its format of the format table (edgedigits.formats) unless `fmt` names another.
    With fallback="cpu", a missing Edge TPU (library, device, or compiled model) falls back to the
    format the table names as its fallback (the plain int8 model of the same manifest), and says so.
    A model of the digits 0-9 gets the digit verifier (runner.verify: the camera pipeline segments by
    recognition, deploy/group.py), unless `verifier` is False; else runner.verify is None (the
    geometric rules alone).
    """
    m = manifest if isinstance(manifest, Manifest) else load_manifest(manifest)
    runs = {t: f for t, f in TARGETS.items() if t != "web"}  # the web app runs in a browser, not here
    if target not in runs:
        raise EdgeDigitsError(f"unknown target '{target}'; choose one of: {', '.join(runs)}")
    entry = m.artifact(fmt or runs[target])
    try:
        if entry["status"] == "export_failed":
            raise EdgeDigitsError(f"{m.path}: the '{entry['format']}' artifact failed to export: {entry.get('reason')}")
        if target == "edgetpu" and not (entry.get("details") or {}).get("compiled"):
            raise DelegateError(f"{m.path}: the Edge TPU model {entry['file']} is not compiled for the Edge TPU "
                                f"(edgetpu_compiler was not installed at conversion); or run with --fallback cpu")
        runner = open_runner(m.file(entry), _row(m, entry).runtime, threads, target, device)
    except (DelegateError, RuntimeMissing) as e:
        if fallback != "cpu" or target == "cpu":
            raise
        plain = FORMATS[entry["format"]].fallback or TARGETS["cpu"]
        say(f"notice: {e}\nnotice: falling back to the CPU with the plain int8 model ({plain})")
        runner = open_runner(m.file(m.artifact(plain)), FORMATS[plain].runtime, threads, "cpu")
    runner.labels = [str(v) for v in m.data["labels"]]  # class names, in output order
    return attach_verifier(runner, runner.labels, threads) if verifier else _no_verifier(runner)
