"""The TFLite metadata convert writes, read back by the standard tool: tflite-support's
MetadataDisplayer, in a venv of its own (tflite-support pins protobuf < 4, which TensorFlow cannot
share). Skips, saying why, where pip cannot reach the index or there is no wheel for this Python."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from edgedigits.manifest import load_manifest
from edgedigits.deploy.runners import load_runner

SHOW = """
import json, sys
from tflite_support import metadata
out = {}
for path in sys.argv[1:]:
    d = metadata.MetadataDisplayer.with_model_file(path)
    out[path] = {"metadata": json.loads(d.get_metadata_json()), "files": d.get_packed_associated_file_list(),
                 "labels": d.get_associated_file_buffer("labels.txt").decode().splitlines()}
print(json.dumps(out))
"""


@pytest.fixture(scope="session")
def displayer(tmp_path_factory):
    venv = tmp_path_factory.mktemp("tflite-support") / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    proc = subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "--disable-pip-version-check",
                           "tflite-support==0.4.4"], capture_output=True, text=True, timeout=600)
    if proc.returncode:
        pytest.skip(f"tflite-support cannot be installed here: {(proc.stderr or proc.stdout).strip().splitlines()[-1][:200]}")
    python = venv / "bin" / "python"
    proc = subprocess.run([str(python), "-c", "from tflite_support import metadata"], capture_output=True, text=True,
                          timeout=120)
    if proc.returncode and "libusb" in proc.stderr:  # its native module links libusb-1.0.so.0
        pytest.skip("tflite-support cannot load: libusb-1.0.so.0 is missing (`make system-deps`, or "
                    "apt-get install libusb-1.0-0)")
    assert proc.returncode == 0, proc.stderr[-2000:]
    return python


def test_every_tflite_file_carries_standard_metadata(small_converted, displayer):
    m = load_manifest(small_converted)
    files = [str(m.file(a)) for a in m.artifacts if a.get("file", "").endswith(".tflite")]
    assert len(files) >= 4
    proc = subprocess.run([str(displayer), "-c", SHOW, *files], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    shown = json.loads(proc.stdout)
    for path in files:
        md, packed = shown[path]["metadata"], shown[path]
        assert packed["files"] == ["labels.txt"] and packed["labels"] == m.data["labels"]
        graph = md["subgraph_metadata"][0]
        inp, out = graph["input_tensor_metadata"][0], graph["output_tensor_metadata"][0]
        side = 112 if ".app." in path else 28  # the size the metadata gives is the input tensor's
        assert inp["content"]["content_properties"]["default_size"] == {"width": side, "height": side}
        assert f"Classifies a {side}x{side} " in md["description"]
        assert list(load_runner(path).interpreter.get_input_details()[0]["shape"][1:3]) == [side, side]
        if ".app." in path:  # RGB pixels 0..255: float32 normalized by (p - 0) / 1, uint8 taken as it is
            assert inp["name"] == "digits" and inp["content"]["content_properties"]["color_space"] == "RGB"
            assert inp.get("process_units", [{}])[0].get("options") == (
                {"mean": [0.0], "std": [1.0]} if ".fp32." in path else None)
        else:
            assert inp["name"] == "digits" and inp["content"]["content_properties"]["color_space"] == "GRAYSCALE"
            assert inp["process_units"][0]["options"] == {"mean": [0.0], "std": [255.0]}  # x = pixel / 255
        assert out["name"] == "probabilities" and out["associated_files"][0]["type"] == "TENSOR_AXIS_LABELS"
        assert "MNIST" in md["description"] and "CC BY-SA 3.0" in md["license"]  # trained on the bundled sample
        # the file still runs, and its tensors carry the same names
        runner = load_runner(path)
        assert runner.interpreter.get_input_details()[0]["name"] == "digits"
        assert runner.interpreter.get_output_details()[0]["name"] == "probabilities"


def test_a_model_with_only_its_card_carries_the_data_licence(tmp_path):
    """The shipped models keep their model card, not their run's config.json: the licence of the data
    comes from the card's "Licence of the data" line into the TFLite metadata and the ONNX metadata."""
    import shutil

    import onnx

    from edgedigits.convert.convert import ConvertConfig, convert
    from edgedigits.deploy import shipped_manifest

    shipped = shipped_manifest("tiny").parent
    (tmp_path / "m").mkdir()
    shutil.copy(shipped / "tiny.keras", tmp_path / "m" / "model.keras")
    shutil.copy(shipped.parents[2] / "train" / "pretrained" / "tiny" / "model_card.md", tmp_path / "m")
    manifest, ok = convert(tmp_path / "m" / "model.keras", tmp_path / "c", ConvertConfig(
        formats=["tflite_fp32", "onnx_fp32"], data="sample", check_limit=100, quiet=True), say=lambda *_: None)
    assert ok
    assert b"training data: MNIST (LeCun, Cortes, Burges), CC BY-SA 3.0" in (tmp_path / "c" / "tiny.fp32.tflite").read_bytes()
    meta = {p.key: p.value for p in onnx.load(str(tmp_path / "c" / "tiny.fp32.onnx")).metadata_props}
    assert meta["data_licence"] == "CC BY-SA 3.0"
