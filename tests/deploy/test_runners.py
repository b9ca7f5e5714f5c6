import subprocess
import sys

import numpy as np
import pytest

from edgedigits.manifest import load_manifest
from edgedigits.deploy.runners import DelegateError, from_manifest, load_edgetpu_delegate, load_runner
from edgedigits.errors import EdgeDigitsError


def test_shipped_int8_tflite_and_onnx_agree_with_keras(shipped, test_digits):
    import keras

    keras_path, manifest = shipped
    x, y = test_digits
    ref = keras.saving.load_model(keras_path, safe_mode=True).predict((x / 255.0).astype("float32")[..., None],
                                                                       verbose=0)
    assert np.mean(ref.argmax(1) == y) > 0.985
    for target, fmt in (("cpu", None), ("onnx", None), ("onnx", "onnx_int8"), ("cpu", "tflite_fp32")):
        probs = from_manifest(manifest, target, fmt=fmt)(x)
        assert probs.shape == (len(x), 10) and np.allclose(probs.sum(1), 1, atol=0.02)
        agree = np.mean(probs.argmax(1) == ref.argmax(1))
        assert agree >= 0.99, (target, fmt, agree)
        assert np.mean(probs.argmax(1) == y) > 0.98


def test_batched_equals_one_at_a_time(shipped, test_digits):
    x = test_digits[0][:20]
    runner = from_manifest(shipped[1], "cpu")
    batch = runner(x)
    single = np.concatenate([runner(x[i:i + 1]) for i in range(len(x))])
    np.testing.assert_array_equal(batch, single)
    assert runner(x[0]).shape == (1, 10)  # one (28, 28) digit


def test_bad_digits_are_refused_clearly(shipped):
    runner = from_manifest(shipped[1], "cpu")
    with pytest.raises(EdgeDigitsError, match=r"expected digits of shape \(N, 28, 28\) and dtype uint8, got \(2, 32, 32\)"):
        runner(np.zeros((2, 32, 32), np.uint8))


def test_edgetpu_delegate_missing_says_how_to_install():
    with pytest.raises(DelegateError, match=r"libedgetpu\.so\.1.*apt-get install libedgetpu1-std.*--fallback cpu"):
        load_edgetpu_delegate("usb")


def test_edgetpu_target_error_and_cpu_fallback(shipped, test_digits):
    manifest = shipped[1]
    with pytest.raises(DelegateError, match="Edge TPU"):
        from_manifest(manifest, "edgetpu")
    said = []
    runner = from_manifest(manifest, "edgetpu", fallback="cpu", say=said.append)
    assert "falling back to the CPU with the plain int8 model" in said[0]
    m = load_manifest(manifest)
    assert runner.path.name == m.artifact("tflite_int8")["file"]
    assert runner(test_digits[0][:5]).shape == (5, 10)


def test_edgetpu_cli_fallback(shipped, tmp_path):
    from tests.conftest import run_cli

    import cv2

    cv2.imwrite(str(tmp_path / "blank.png"), np.full((120, 160, 3), 230, np.uint8))
    code, out, err = run_cli("deploy", "--target", "edgetpu", "--source", str(tmp_path / "blank.png"), "--headless")
    assert code == 2 and "Edge TPU" in err and "--fallback cpu" in err and "Traceback" not in err
    code, out, err = run_cli("deploy", "--target", "edgetpu", "--fallback", "cpu", "--source",
                             str(tmp_path / "blank.png"), "--headless")
    assert code == 0, err
    assert "falling back to the CPU" in err and '"digits": []' in out


def test_unknown_model_files(tmp_path):
    with pytest.raises(EdgeDigitsError, match="model file not found"):
        load_runner(tmp_path / "x.tflite")
    (tmp_path / "x.bin").write_bytes(b"1")
    with pytest.raises(EdgeDigitsError, match="unknown model type '.bin'"):
        load_runner(tmp_path / "x.bin")
    (tmp_path / "bad.tflite").write_bytes(b"not a flatbuffer at all")
    with pytest.raises(EdgeDigitsError, match="bad.tflite: LiteRT cannot load it"):
        load_runner(tmp_path / "bad.tflite")
    (tmp_path / "bad.onnx").write_bytes(b"nope")
    with pytest.raises(EdgeDigitsError, match="bad.onnx: ONNX Runtime cannot load it"):
        load_runner(tmp_path / "bad.onnx")


BLOCK_TF = """
import importlib.abc, sys
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in ('tensorflow', 'keras', 'tf_keras', 'tf2onnx'):
            raise ImportError(f'{name} is not on this device')
sys.meta_path.insert(0, Block())
"""


def test_deploy_runs_without_tensorflow(shipped, tmp_path):
    """What a device has: LiteRT, ONNX Runtime, OpenCV, NumPy. TensorFlow cannot even be imported."""
    code = BLOCK_TF + f"""
import numpy as np
from edgedigits.deploy import camera, preprocess, sources, cli
from edgedigits.deploy.runners import from_manifest
from edgedigits.train.data import load_sample
from edgedigits.tools.scenes import make_scene
ds = load_sample()
for target in ('cpu', 'onnx'):
    r = from_manifest({str(shipped[1])!r}, target)
    assert (r(ds.test.images[:50]).argmax(1) == ds.test.labels[:50]).mean() > 0.95
frame, truth = make_scene(np.random.default_rng(0), (ds.test.images, ds.test.labels))
rec = camera.recognize(frame, r)
assert len(rec.digits) == len(truth), (rec.digits, truth)
print('ok', sorted(m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'keras')))
"""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip().endswith("ok []")


def test_the_manifest_row_not_the_file_name_chooses_the_runtime(tmp_path, test_digits):
    """A manifest's files may be named anything: each runs in the runtime of its format's row."""
    import json
    import shutil

    from edgedigits.deploy import shipped_manifest

    folder = tmp_path / "renamed"
    shutil.copytree(shipped_manifest("tiny").parent, folder)
    m = json.loads((folder / "manifest.json").read_text())
    for a in m["artifacts"]:
        if a["format"] in ("onnx_fp32", "tflite_int8"):
            (folder / a["file"]).rename(folder / f"{a['format']}.model")
            a["file"] = f"{a['format']}.model"
    (folder / "manifest.json").write_text(json.dumps(m))
    x, y = test_digits
    onnx, litert = from_manifest(folder, "onnx"), from_manifest(folder, "cpu")
    assert onnx.name == "onnxruntime" and litert.name == "litert"
    assert np.mean(onnx(x).argmax(1) == y) > 0.98 and np.mean(litert(x).argmax(1) == y) > 0.98
    with pytest.raises(EdgeDigitsError, match=r"tflite_int8\.model: unknown model type '\.model'"):
        load_runner(folder / "tflite_int8.model")  # without a manifest there is no row: the suffix must say


def test_every_format_row_has_its_export_function(monkeypatch):
    from edgedigits.convert import export as X
    from edgedigits.formats import FORMATS, Format

    assert set(X.EXPORTS) == set(FORMATS)
    assert all(fn.__name__ == f"export_{name}" for name, fn in X.EXPORTS.items())
    monkeypatch.setitem(FORMATS, "tflite_int4", Format("tflite_int4", ".int4.tflite", "int4", "litert", "CPU"))
    with pytest.raises(ImportError, match=r"rows without an export \['tflite_int4'\]"):
        X._check_exports()
