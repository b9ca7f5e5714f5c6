"""Standard TFLite metadata in every .tflite file: what Android Studio's model binding, the Task Library
and tflite-support's MetadataDisplayer read.

A ModelMetadata flatbuffer (tensorflow_lite_support/metadata/metadata_schema.fbs, file identifier
"M001") goes into the model's `metadata` list under the name TFLITE_METADATA, and labels.txt is
packed after the model as a zip, as tflite-support's MetadataPopulator does. tflite-support itself
cannot be installed beside TensorFlow (it pins protobuf < 4), so the tables are built here with the
flatbuffers builder, slot by slot in the schema's field order; tests/convert read them back with
tflite-support's MetadataDisplayer in a venv of its own.

    input  "digits":        image, grayscale, 28x28; normalization mean 0, std 255 (x = pixel / 255)
    output "probabilities": feature, 10 values in [0, 1]; labels.txt as TENSOR_AXIS_LABELS
"""

from __future__ import annotations

import io
import zipfile

METADATA_NAME = "TFLITE_METADATA"
MIN_PARSER_VERSION = "1.0.0"  # every field used here exists since metadata schema 1.0.0
LABELS_FILE = "labels.txt"
# enums and union tags of metadata_schema.fbs
RGB, GRAYSCALE = 1, 2
FEATURE_PROPERTIES, IMAGE_PROPERTIES = 1, 2
NORMALIZATION_OPTIONS = 1
TENSOR_AXIS_LABELS = 2


def _table(b, slots: list[tuple[str, int, object]]) -> int:
    """One table: slots as (kind, slot, value) with kind 'off' (an offset), 'u8', 'i8' or 'u32'."""
    b.StartObject(max(s for _, s, _ in slots) + 1)
    for kind, slot, value in slots:
        if value is None:
            continue
        {"off": b.PrependUOffsetTRelativeSlot, "u8": b.PrependUint8Slot, "i8": b.PrependInt8Slot,
         "u32": b.PrependUint32Slot}[kind](slot, value, 0)
    return b.EndObject()


def _offsets(b, offsets: list[int]) -> int:
    b.StartVector(4, len(offsets), 4)
    for off in reversed(offsets):
        b.PrependUOffsetTRelative(off)
    return b.EndVector()


def _floats(b, values: list[float]) -> int:
    b.StartVector(4, len(values), 4)
    for v in reversed(values):
        b.PrependFloat32(v)
    return b.EndVector()


def _stats(b, lo: float, hi: float) -> int:
    mx, mn = _floats(b, [hi]), _floats(b, [lo])
    return _table(b, [("off", 0, mx), ("off", 1, mn)])


GREY_INPUT = "28x28 grayscale image, white on black (MNIST convention); x = pixel / 255"


def metadata_buffer(model_name: str, labels: list[str], description: str, licence: str, version: str, *,
                    color_space: int = GRAYSCALE, normalization: tuple[float, float] | None = (0.0, 255.0),
                    input_description: str = GREY_INPUT, input_range: tuple[float, float] = (0.0, 1.0),
                    side: int = 28) -> bytes:
    """The ModelMetadata flatbuffer for a side x side image classifier with len(labels) outputs: by default
    the 28x28 grayscale digit model (x = (pixel - 0) / 255); the app models (mobile.py) pass 112x112 RGB,
    and their float file normalization (0, 1) (raw pixels: the /255 is in the graph), their uint8 file none."""
    import flatbuffers

    b = flatbuffers.Builder(1024)
    s = b.CreateString
    # input: an image, normalized as x = (pixel - mean) / std
    size = _table(b, [("u32", 0, side), ("u32", 1, side)])
    image = _table(b, [("i8", 0, color_space), ("off", 1, size)])
    in_content = _table(b, [("u8", 0, IMAGE_PROPERTIES), ("off", 1, image)])
    units = []
    if normalization:
        norm = _table(b, [("off", 0, _floats(b, [normalization[0]])), ("off", 1, _floats(b, [normalization[1]]))])
        units = [_table(b, [("u8", 0, NORMALIZATION_OPTIONS), ("off", 1, norm)])]
    inp = _table(b, [("off", 0, s("digits")), ("off", 1, s(input_description)), ("off", 3, in_content),
                     ("off", 4, _offsets(b, units) if units else None), ("off", 5, _stats(b, *input_range))])
    # output: one probability per class, named by labels.txt
    feature = _table(b, [("off", 0, None)])
    out_content = _table(b, [("u8", 0, FEATURE_PROPERTIES), ("off", 1, feature)])
    label_file = _table(b, [("off", 0, s(LABELS_FILE)), ("off", 1, s("class names, one per line, in output order")),
                            ("i8", 2, TENSOR_AXIS_LABELS)])
    out = _table(b, [("off", 0, s("probabilities")),
                     ("off", 1, s(f"softmax probabilities of the {len(labels)} classes in {LABELS_FILE}")),
                     ("off", 3, out_content), ("off", 5, _stats(b, 0.0, 1.0)),
                     ("off", 6, _offsets(b, [label_file]))])
    graph = _table(b, [("off", 0, s(model_name)), ("off", 2, _offsets(b, [inp])), ("off", 3, _offsets(b, [out]))])
    root = _table(b, [("off", 0, s(model_name)), ("off", 1, s(description)), ("off", 2, s(version)),
                      ("off", 3, _offsets(b, [graph])), ("off", 4, s("edgedigits")),
                      ("off", 5, s(licence) if licence else None), ("off", 7, s(MIN_PARSER_VERSION))])
    b.Finish(root, file_identifier=b"M001")
    return bytes(b.Output())


def add_metadata(model: bytes, metadata: bytes, labels: list[str]) -> bytes:
    """The model with `metadata` under TFLITE_METADATA (replacing any) and labels.txt packed after it."""
    from tensorflow.lite.tools import flatbuffer_utils as fb
    from tensorflow.lite.python import schema_py_generated as schema

    m = fb.read_model_from_bytearray(bytearray(model))
    buf = schema.BufferT()
    buf.data = list(metadata)
    m.metadata = [e for e in (m.metadata or []) if e.name != METADATA_NAME.encode()]
    m.buffers.append(buf)
    entry = schema.MetadataT()
    entry.name, entry.buffer = METADATA_NAME.encode(), len(m.buffers) - 1
    m.metadata.append(entry)
    packed = io.BytesIO(bytes(fb.convert_object_to_bytearray(m)))
    packed.seek(0, io.SEEK_END)
    with zipfile.ZipFile(packed, "a") as z:  # appended after the flatbuffer, which ignores what follows it
        z.writestr(LABELS_FILE, "\n".join(labels) + "\n")
    return packed.getvalue()
