"""The one table of export formats. It drives convert's choices, file names and checks, the benchmark's
rows, which artifact each deploy target runs and falls back to, and which formats the web app can run.
Adding a format is one row here and one `export_<format>()` in convert/export.py, listed in its
EXPORTS (checked against this table when convert is imported). It sits below the
stages (edgedigits.formats) because convert writes what it lists and deploy reads by it.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Format:
    name: str  # CLI choice and manifest key
    suffix: str  # file name: <model><suffix>
    precision: str  # weights / activations
    runtime: str  # what runs it: "litert" or "onnxruntime"
    devices: str  # where it is meant to run
    needs: str = ""  # a format whose artifact this one is made from
    default_for: tuple[str, ...] = ()  # deploy targets that run this format unless --format says otherwise
    fallback: str = ""  # the format to run instead when this one's hardware is missing (--fallback cpu)
    web: bool = False  # runs in the phone web app (ONNX Runtime Web)


FORMATS: dict[str, Format] = {f.name: f for f in [
    Format("tflite_fp32", ".fp32.tflite", "float32", "litert", "CPU; phone GPU delegate"),
    Format("tflite_fp16", ".fp16.tflite", "float16 weights, float32 compute on CPU", "litert",
           "phone GPU delegate"),
    Format("tflite_dynamic", ".dynamic.tflite", "int8 weights, float activations", "litert", "CPU"),
    Format("tflite_int8", ".int8.tflite", "int8 weights and activations, int8 in/out", "litert",
           "CPU (XNNPACK), phone NPU, microcontrollers", default_for=("cpu",)),
    Format("onnx_fp32", ".fp32.onnx", "float32", "onnxruntime", "CPU; other execution providers",
           default_for=("onnx",), web=True),
    Format("onnx_int8", ".int8.onnx", "int8 QDQ weights and activations, float32 in/out", "onnxruntime", "CPU",
           needs="onnx_fp32", default_for=("web",), web=True),
    Format("edgetpu", "_edgetpu.tflite", "int8, batch 1, compiled for the Edge TPU", "litert+edgetpu",
           "Coral Edge TPU (USB, PCIe, Dev Board)", needs="tflite_int8",
           default_for=("edgetpu",), fallback="tflite_int8"),
    # for an app: a crop as RGB (N, 112, 112, 3), dark on light; grey, inversion, contrast inside (convert/mobile.py)
    Format("tflite_app_uint8", ".app.uint8.tflite", "int8 inside; RGB uint8 pixels in, uint8 scores out",
           "litert", "Android, iOS, web apps: MediaPipe / Task Library ImageClassifier"),
    Format("tflite_app_fp32", ".app.fp32.tflite", "float32; RGB pixels 0..255 in (float32), float32 out", "litert",
           "Android, iOS, web apps: MediaPipe / Task Library ImageClassifier"),
]}
TARGETS = {t: f.name for f in FORMATS.values() for t in f.default_for}  # deploy target -> its default format


def resolve(names: list[str] | None) -> list[Format]:
    """The formats to build, in table order, with the ones they are made from added."""
    from edgedigits.errors import EdgeDigitsError

    wanted = set(names or FORMATS)
    unknown = wanted - set(FORMATS)
    if unknown:
        raise EdgeDigitsError(f"unknown format(s) {', '.join(sorted(unknown))}; choose from {', '.join(FORMATS)}")
    for name in list(wanted):
        if FORMATS[name].needs:
            wanted.add(FORMATS[name].needs)
    return [f for f in FORMATS.values() if f.name in wanted]
