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
    return venv / "bin" / "python"


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
        assert inp["name"] == "digits" and inp["content"]["content_properties"]["color_space"] == "GRAYSCALE"
        assert inp["process_units"][0]["options"] == {"mean": [0.0], "std": [255.0]}  # x = pixel / 255
        assert out["name"] == "probabilities" and out["associated_files"][0]["type"] == "TENSOR_AXIS_LABELS"
        assert "MNIST" in md["description"] and "CC BY-SA 3.0" in md["license"]  # trained on the bundled sample
        # the file still runs, and its tensors carry the same names
        runner = load_runner(path)
        assert runner.interpreter.get_input_details()[0]["name"] == "digits"
        assert runner.interpreter.get_output_details()[0]["name"] == "probabilities"
