"""One function per format in formats.FORMATS: `export_<format>(ctx, out) -> Path`.

Each writes exactly the file `out` (the orchestrator passes a temporary name and renames it once
complete) and imports TensorFlow or ONNX inside, so importing this module stays light.
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edgedigits.atomic import atomic_write
from edgedigits.contract import INPUT_SHAPE, LABELS
from edgedigits.errors import EdgeDigitsError
from edgedigits.quiet import filtered_stderr

ONNX_OPSET = 17
# tf2onnx writes opsets up to 18; per-channel int8 (QuantizeLinear's axis) needs 13
ONNX_OPSETS = range(13, 19)


@dataclass
class ExportContext:
    model: object  # the source keras.Model
    calibration: np.ndarray  # (N, 28, 28, 1) float32 in [0, 1], from the training split
    workdir: Path  # scratch space, removed afterwards
    opset: int = ONNX_OPSET
    int8_io: str = "int8"  # "int8" or "uint8": the dtype of the full-integer model's input and output
    metadata: dict = field(default_factory=dict)  # labels and preprocessing contract, for ONNX
    artifacts: dict = field(default_factory=dict)  # format name -> Path already written
    reports: dict = field(default_factory=dict)  # format name -> extra findings (the Edge TPU report)
    _saved: dict = field(default_factory=dict)

    def saved_model(self, batch: int | None = None) -> str:
        """A SavedModel of the Keras model, exported once per batch size (None: dynamic batch)."""
        if batch not in self._saved:
            import keras

            path = self.workdir / f"saved_model_b{batch or 'N'}"
            self.model.export(str(path), format="tf_saved_model", verbose=False,
                              input_signature=[keras.InputSpec(shape=(batch, *INPUT_SHAPE), dtype="float32")])
            self._saved[batch] = str(path)
        return self._saved[batch]

    def representative(self, batch: int = 1):
        """Calibration digits for full-integer quantization, one batch at a time."""
        def gen():
            for i in range(0, len(self.calibration), batch):
                yield [self.calibration[i:i + batch]]
        return gen


def _tflite_converter(ctx: ExportContext, batch: int | None = None):
    import tensorflow as tf

    return tf.lite.TFLiteConverter.from_saved_model(ctx.saved_model(batch))


INPUT_NAME, OUTPUT_NAME, BATCH_DIM = "digits", "probabilities", "batch"  # tensor names in every exported file


def _convert(conv) -> bytes:
    """conv.convert(), without the converter's "fully_quantize: 0, inference_type: 6" on fd 2, with
    the input and output tensors named."""
    with filtered_stderr():
        return name_tflite_tensors(conv.convert())


def name_tflite_tensors(data: bytes) -> bytes:
    """Rename the model's input and output tensors (the converter calls them serving_default_args_0:0
    and StatefulPartitionedCall_1:0) and its signature's keys to INPUT_NAME and OUTPUT_NAME, through
    the flatbuffer object API that TensorFlow ships (tensorflow/lite/tools/flatbuffer_utils.py)."""
    from tensorflow.lite.tools import flatbuffer_utils as fb

    model = fb.read_model_from_bytearray(bytearray(data))
    graph = model.subgraphs[0]
    if len(graph.inputs) != 1 or len(graph.outputs) != 1:
        return data  # not the one-in, one-out classifier this names
    graph.tensors[graph.inputs[0]].name = INPUT_NAME.encode()
    graph.tensors[graph.outputs[0]].name = OUTPUT_NAME.encode()
    for sig in model.signatureDefs or []:
        if len(sig.inputs) == 1 and len(sig.outputs) == 1:
            sig.inputs[0].name, sig.outputs[0].name = INPUT_NAME.encode(), OUTPUT_NAME.encode()
    return bytes(fb.convert_object_to_bytearray(model))


def _write(out: Path, data: bytes, ctx: ExportContext, **image) -> Path:
    """Write a .tflite with its standard metadata (labels, normalization, descriptions: tflite_metadata.py);
    `image`: metadata_buffer's input options (the app models' RGB input)."""
    from edgedigits import __version__
    from edgedigits.convert import tflite_metadata as TM

    labels = list(ctx.metadata.get("labels") or LABELS)
    name = getattr(ctx.model, "name", "model")
    data_name = ctx.metadata.get("data_name", "")
    meta = TM.metadata_buffer(
        f"edgedigits {name}", labels,
        f"Classifies a {image.get('side', 28)}x{image.get('side', 28)} {'RGB' if image else 'grayscale'} image "
        f"into {len(labels)} classes "
        f"({', '.join(labels[:3])}, ...)."
        + (f" Trained on {data_name}." if data_name else ""),
        f"training data: {data_name}, {ctx.metadata['data_licence']}" if ctx.metadata.get("data_licence") else "",
        __version__, **image)
    return atomic_write(out, lambda tmp: tmp.write_bytes(TM.add_metadata(data, meta, labels)))


def export_tflite_fp32(ctx: ExportContext, out: Path) -> Path:
    return _write(out, _convert(_tflite_converter(ctx)), ctx)


def export_tflite_fp16(ctx: ExportContext, out: Path) -> Path:
    import tensorflow as tf

    conv = _tflite_converter(ctx)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.target_spec.supported_types = [tf.float16]
    return _write(out, _convert(conv), ctx)


def export_tflite_dynamic(ctx: ExportContext, out: Path) -> Path:
    import tensorflow as tf

    conv = _tflite_converter(ctx)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]  # no representative data: int8 weights only
    return _write(out, _convert(conv), ctx)


def int8_converter(ctx: ExportContext, batch: int | None = None):
    """Full-integer quantization: int8 weights (per channel) and activations calibrated on the
    representative set; only int8 builtin ops, so a float op fails the conversion instead of
    silently staying float."""
    import tensorflow as tf

    conv = _tflite_converter(ctx, batch)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.representative_dataset = ctx.representative()
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    io = {"int8": tf.int8, "uint8": tf.uint8}[ctx.int8_io]
    conv.inference_input_type = io
    conv.inference_output_type = io
    return conv


def export_tflite_int8(ctx: ExportContext, out: Path) -> Path:
    try:
        return _write(out, _convert(int8_converter(ctx)), ctx)
    except Exception as e:  # the converter raises ConverterError and friends, with a long log
        raise EdgeDigitsError(f"full-integer quantization failed: {first_line(e)}") from None


def export_edgetpu(ctx: ExportContext, out: Path) -> Path:
    """The int8 model with batch 1 and static shapes, as the Edge TPU needs; compiled when the
    compiler is installed (see edgetpu.py). The plain int8 model stays beside it for the CPU."""
    from edgedigits.convert import edgetpu

    ready = _write(out.with_name(out.name.replace("_edgetpu.tflite", ".edgetpu-ready.tflite")),
                   _convert(int8_converter(ctx, batch=1)), ctx)
    ctx.reports["edgetpu"] = edgetpu.report(ready, out)
    return out if ctx.reports["edgetpu"].compiled else ready


def export_onnx_fp32(ctx: ExportContext, out: Path) -> Path:
    """tf2onnx from the SavedModel's serving function (tf2onnx.convert.from_keras fails under Keras 3)."""
    import onnx
    import tensorflow as tf
    import tf2onnx

    loaded = tf.saved_model.load(ctx.saved_model())
    spec = (tf.TensorSpec((None, *INPUT_SHAPE), tf.float32, name=INPUT_NAME),)
    try:
        proto, _ = tf2onnx.convert.from_function(tf.function(lambda x: loaded.serve(x)),
                                                 input_signature=spec, opset=ctx.opset)
    except Exception as e:
        raise EdgeDigitsError(f"tf2onnx could not convert the model (opset {ctx.opset}): {first_line(e)}") from None
    _rename_output(proto, OUTPUT_NAME)
    _flatten_pooled(proto)
    _name_batch(proto)
    _set_metadata(proto, ctx.metadata)
    onnx.checker.check_model(proto, full_check=True)
    return atomic_write(out, lambda tmp: onnx.save(proto, str(tmp)))


def export_onnx_int8(ctx: ExportContext, out: Path) -> Path:
    """ONNX Runtime static quantization: QDQ, signed int8 weights (per channel) and activations,
    calibrated on the same representative digits as TFLite.

    Weights use 7 bits (reduce_range, q in -64..64): on x86 CPUs without VNNI (AVX2 only, e.g. Haswell
    to Skylake client) ONNX Runtime runs int8 convolutions with vpmaddubsw, which adds two u8 x s8
    products into an int16 that saturates (2 x 255 x 127 > 32767). With 8-bit weights the same file gave
    other answers there than on a VNNI CPU (tiny, 300 test digits: 92.3% top-1 agreement with float32
    under `qemu-x86_64 -cpu Haswell`, 99.3% on this Xeon); with 7 bits 98.7% on both, bit for bit."""
    import onnx
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.batches = iter([{INPUT_NAME: ctx.calibration[i:i + 32]} for i in range(0, len(ctx.calibration), 32)])

        def get_next(self):
            return next(self.batches, None)

    src = ctx.artifacts["onnx_fp32"]
    pre = ctx.workdir / "onnx_pre.onnx"
    quant_pre_process(str(src), str(pre), skip_symbolic_shape=True)
    quantized = ctx.workdir / "onnx_int8.onnx"
    quantize_static(str(pre), str(quantized), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                    reduce_range=True, activation_type=QuantType.QInt8, weight_type=QuantType.QInt8)
    proto = onnx.load(str(quantized))
    _name_batch(proto)
    _set_metadata(proto, ctx.metadata)
    onnx.checker.check_model(proto)
    return atomic_write(out, lambda tmp: onnx.save(proto, str(tmp)))


def _rename_output(proto, name: str) -> None:
    old = proto.graph.output[0].name
    for node in proto.graph.node:
        node.output[:] = [name if o == old else o for o in node.output]
    proto.graph.output[0].name = name


def _flatten_pooled(proto) -> None:
    """GlobalAveragePool's (N, C, 1, 1) -> (N, C) as Flatten(axis=1) instead of tf2onnx's Squeeze(axes=[2, 3]):
    the same values, but OpenCV DNN's classic importer squeezes (N, C, 1, 1) to (N, 1, C) for N > 1, so
    OpenCV 5's classic engine answered wrong from batch 2 on (fp32: 12% at batch 64, 100% at batch 1)."""
    from onnx import helper

    made_by = {o: n for n in proto.graph.node for o in n.output}
    for i, node in enumerate(list(proto.graph.node)):
        source = made_by.get(node.input[0]) if node.input else None
        if node.op_type != "Squeeze" or source is None or source.op_type != "GlobalAveragePool":
            continue
        proto.graph.node.remove(node)
        proto.graph.node.insert(i, helper.make_node("Flatten", [node.input[0]], list(node.output), name=node.name,
                                                    axis=1))
    used = {i for n in proto.graph.node for i in n.input}
    keep = [t for t in proto.graph.initializer if t.name in used]  # Squeeze's axes, now unused
    del proto.graph.initializer[:]
    proto.graph.initializer.extend(keep)


def _name_batch(proto) -> None:
    """The batch dimension of the input and output is named BATCH_DIM (tf2onnx calls it unk__53)."""
    for v in [*proto.graph.input, *proto.graph.output]:
        dim = v.type.tensor_type.shape.dim[0]
        if not dim.HasField("dim_value"):
            dim.dim_param = BATCH_DIM


def _set_metadata(proto, metadata: dict) -> None:
    del proto.metadata_props[:]
    for key, value in metadata.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value if isinstance(value, str) else json.dumps(value)


def first_line(e: Exception) -> str:
    lines = [ln for ln in str(e).splitlines() if ln.strip()]
    errors = [ln for ln in lines if "error" in ln.lower()]
    return (errors or lines or [type(e).__name__])[0].strip()[:400]


def new_workdir(folder: Path | None = None) -> tempfile.TemporaryDirectory:
    """Scratch space, inside `folder` when given (the conversion's own new folder: a killed run leaves
    nothing in /tmp, and what it leaves beside the output goes on the next run)."""
    return tempfile.TemporaryDirectory(prefix=".work-" if folder else "edgedigits-convert-", dir=folder)


# the app models' rows (RGB in, for MediaPipe and the Task Library): their own module, one idea
from edgedigits.convert.mobile import export_tflite_app_fp32, export_tflite_app_uint8  # noqa: E402

# each row of the format table (edgedigits.formats) -> the function that writes it: (ctx, out) -> the file
EXPORTS = {
    "tflite_fp32": export_tflite_fp32, "tflite_fp16": export_tflite_fp16, "tflite_dynamic": export_tflite_dynamic,
    "tflite_int8": export_tflite_int8, "onnx_fp32": export_onnx_fp32, "onnx_int8": export_onnx_int8,
    "edgetpu": export_edgetpu, "tflite_app_uint8": export_tflite_app_uint8, "tflite_app_fp32": export_tflite_app_fp32,
}


def _check_exports() -> None:
    from edgedigits.formats import FORMATS

    if set(EXPORTS) != set(FORMATS):
        raise ImportError(f"convert/export.py EXPORTS and the format table differ: rows without an export "
                          f"{sorted(set(FORMATS) - set(EXPORTS))}, exports without a row {sorted(set(EXPORTS) - set(FORMATS))}")


_check_exports()
