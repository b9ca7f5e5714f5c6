import hashlib
import json
import re
import shutil

import numpy as np
import pytest

from edgedigits.formats import FORMATS
from edgedigits.tools.benchmark import gates
from tests.conftest import ROOT, run_cli

ROW_KEYS = {"format", "file", "precision", "runtime", "status", "reason", "size_bytes", "load_ms",
            "first_inference_ms", "p50_ms", "p95_ms", "p99_ms", "throughput", "accuracy", "baseline_rss_mb",
            "loaded_rss_mb", "end_rss_mb", "peak_rss_mb", "runtime_mb", "agreement", "delta_pp", "speedup_vs_keras"}


@pytest.fixture(scope="module")
def report(small_converted, tmp_path_factory):
    out = tmp_path_factory.mktemp("bench")
    code, stdout, err = run_cli("benchmark", str(small_converted), "--data", "sample", "--limit", "300",
                                "--runs", "40", "--json", str(out / "b.json"), "--markdown", str(out / "b.md"),
                                "--plot", str(out / "b.png"))
    assert code == 0, err
    return json.loads((out / "b.json").read_text()), stdout, out


def test_every_row_present_with_sane_figures(report):
    rep, stdout, _ = report
    assert [r["format"] for r in rep["rows"]] == ["keras"] + list(FORMATS)
    assert rep["digits"] == 300 and rep["threads"] == 1 and rep["schema_version"] == 1
    for r in rep["rows"]:
        if r["format"] == "edgetpu":
            assert r["status"] == "skipped"
            continue
        assert set(r) == ROW_KEYS, set(r) ^ ROW_KEYS
        assert 0 < r["p50_ms"] <= r["p95_ms"] <= r["p99_ms"], r
        assert r["load_ms"] > 0 and r["first_inference_ms"] > 0 and r["peak_rss_mb"] > 0
        assert all(v > 0 for v in r["throughput"].values()) and r["size_bytes"] > 0
    keras = rep["rows"][0]
    assert keras["agreement"] == 1.0 and keras["delta_pp"] == 0 and keras["speedup_vs_keras"] == 1
    for r in rep["rows"][1:]:
        if r["status"] != "passed":
            continue
        # a whole number of the 300 digits right; delta_pp is that against the Keras row; float32 gives
        # Keras's answers; quantized formats within 1 point here (3 digits: the 0.3-point promise is on
        # the convert check's digits, measured: onnx_int8 -0.67, tflite_int8 +0.33 on these)
        assert round(300 * r["accuracy"]) == pytest.approx(300 * r["accuracy"], abs=1e-6), r
        assert r["delta_pp"] == pytest.approx(100 * (r["accuracy"] - keras["accuracy"])), r
        # the app models see each digit grown and contrast stretched (convert/mobile.py), which moves this
        # weak 3-epoch model more: measured -1.67 points (5 digits of 300); the shipped standard: -0.04 on 10,000.
        # That model's own training differs by CPU: on an AMD EPYC of 2026-12-08 tflite_app_uint8 agreed
        # with Keras on 284 of 300 (0.947), 1 point more accurate
        app = r["format"].startswith("tflite_app")
        if r["precision"].startswith("float32") and not app:
            assert r["agreement"] == 1.0 and r["accuracy"] == keras["accuracy"], r
        assert abs(r["delta_pp"]) <= (2.5 if app else 1.0) + 1e-9 and r["agreement"] >= (0.93 if app else 0.98), r
    assert "p50 ms" in stdout and "tflite_int8" in stdout
    assert rep["options"] == {"threads": 1, "runs": 40, "warmup": 50, "batches": [32, 256], "data": "sample",
                              "limit": 300, "target": "cpu"}


def test_keras_row_accuracy_is_the_models_own(report, small_converted, sample):
    """The Keras row's accuracy recomputed here from the model file, on the digits the benchmark takes."""
    import keras

    from edgedigits.train.data import stratified

    test = stratified(sample.test, 300, seed=3)
    model = keras.saving.load_model(small_converted / "tiny.keras", safe_mode=True)
    pred = model.predict((test.images / 255.0).astype("float32")[..., None], verbose=0).argmax(1)
    assert report[0]["rows"][0]["accuracy"] == pytest.approx(float(np.mean(pred == test.labels)), abs=1e-9)


def test_each_runtime_reports_its_own_memory(report):
    """Measured in each worker against its own baseline, not inherited from the parent (ru_maxrss is):
    TensorFlow, ONNX Runtime and LiteRT cannot all cost the same."""
    rows = {r["format"]: r for r in report[0]["rows"]}
    keras, onnx, litert = rows["keras"]["runtime_mb"], rows["onnx_fp32"]["runtime_mb"], rows["tflite_fp32"]["runtime_mb"]
    assert len({round(keras), round(onnx), round(litert)}) == 3, (keras, onnx, litert)
    assert keras > 100 > litert > 0 and onnx > 0, (keras, onnx, litert)  # TensorFlow is hundreds of MB
    for r in rows.values():
        if "runtime_mb" in r:
            assert r["baseline_rss_mb"] < r["loaded_rss_mb"] <= r["peak_rss_mb"], r


def test_markdown_and_plot_written(report):
    _, _, out = report
    md = (out / "b.md").read_text()
    assert md.count("\n| ") >= 8 and "Machine:" in md and "onnxruntime" in md
    from edgedigits.tools.benchmark import cpu_name
    assert f"Machine: {cpu_name()}, " in md  # which CPU: int8's speed depends on its instructions (VNNI)
    assert (out / "b.png").read_bytes()[:4] == b"\x89PNG"


def test_plot_labels_do_not_overlap(tmp_path):
    """The shipped model's report: nine formats, seven at one accuracy, four of them within 0.4 ms."""
    from edgedigits.tools.benchmark import plot

    boxes = plot(json.loads((ROOT / "docs" / "benchmark-standard.json").read_text()), tmp_path / "p.png")
    assert len(boxes) == 9
    for i, (x, y, w, h) in enumerate(boxes):
        for (x2, y2, w2, h2) in boxes[i + 1:]:
            assert x + w <= x2 or x2 + w2 <= x or y + h <= y2 or y2 + h2 <= y, (boxes[i], (x2, y2, w2, h2))


def test_gates(report):
    rep = report[0]
    assert gates(rep, None, None, None) == []
    assert gates(rep, 0.0, 100.0, rep) == []  # against itself: no regression
    fails = gates(rep, 101.0, None, None)
    assert len(fails) == sum("accuracy" in r for r in rep["rows"]) == 9 and "below --min-accuracy 101.0%" in fails[0]
    better = json.loads(json.dumps(rep))
    for r in better["rows"]:
        if "accuracy" in r:
            r["accuracy"] += 0.01
        if r.get("speedup_vs_keras") and r["format"] != "keras":
            r["speedup_vs_keras"] *= 3
    fails = gates(rep, None, None, better)
    assert any("accuracy fell" in f for f in fails) and any("slower" in f for f in fails)


def test_gate_failure_exits_1_after_the_table(small_converted, tmp_path):
    code, stdout, err = run_cli("benchmark", str(small_converted), "--data", "sample", "--limit", "100", "--runs", "10",
                                "--min-accuracy", "101")
    assert code == 1
    assert "tflite_int8" in stdout and "gate failed: tflite_int8: accuracy" in err


def test_broken_artifact_and_missing_runtime_reported_in_their_rows(small_converted, tmp_path):
    folder = tmp_path / "m"
    shutil.copytree(small_converted, folder)
    manifest = json.loads((folder / "manifest.json").read_text())
    broken = folder / "tiny.fp16.tflite"
    broken.write_bytes(b"TFL3 broken on purpose")
    for a in manifest["artifacts"]:
        if a["format"] == "tflite_fp16":
            a["sha256"] = hashlib.sha256(broken.read_bytes()).hexdigest()
    (folder / "manifest.json").write_text(json.dumps(manifest))
    fake = tmp_path / "no_ort"
    fake.mkdir()
    (fake / "onnxruntime.py").write_text("raise ImportError('onnxruntime is not installed on this device')\n")
    code, stdout, err = run_cli("benchmark", str(folder), "--data", "sample", "--limit", "100", "--runs", "10",
                                "--json", str(tmp_path / "b.json"), env={"PYTHONPATH": str(fake)})
    assert code == 0, err
    rows = {r["format"]: r for r in json.loads((tmp_path / "b.json").read_text())["rows"]}
    assert rows["tflite_fp16"]["status"] == "run_failed" and "LiteRT cannot load it" in rows["tflite_fp16"]["reason"]
    for fmt in ("onnx_fp32", "onnx_int8"):
        assert rows[fmt]["status"] == "run_failed" and "ONNX Runtime is not installed" in rows[fmt]["reason"]
    assert rows["tflite_int8"]["status"] == "passed" and rows["tflite_int8"]["accuracy"] > 0.5


def test_edgetpu_target_without_a_device_skips(small_converted):
    code, stdout, err = run_cli("benchmark", str(small_converted), "--data", "sample", "--limit", "50", "--runs", "5",
                                "--target", "edgetpu")
    assert code == 0, err
    # converted without edgetpu_compiler, the file is .edgetpu-ready: timed, it would be the CPU called "edgetpu"
    assert "edgetpu" in stdout and "not compiled for the Edge TPU" in stdout
    assert "tflite_int8" in stdout


@pytest.mark.parametrize("args, refused", [
    (["web", "--threads", "2"], "--threads does not apply"),
    (["web", "--runs", "10", "--target", "cpu"], "--runs, --target do not apply"),
    (["camera", "--runs", "10"], "--runs does not apply"),
    (["camera", "--plot", "x.png"], "--plot does not apply"),
])
def test_options_that_do_not_apply_are_refused(args, refused):
    code, stdout, err = run_cli("benchmark", *args)
    assert code == 2 and refused in err and len(err.strip().splitlines()) == 1, (code, err)


def test_a_model_trained_on_other_digits_is_not_benchmarked_on_these_by_default(small_converted, tmp_path):
    folder = tmp_path / "m"
    shutil.copytree(small_converted, folder)
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["source"]["training_data"].update(data_source="Fashion-MNIST", data_sha256="0" * 64)
    (folder / "manifest.json").write_text(json.dumps(manifest))
    code, stdout, err = run_cli("benchmark", str(folder), "--runs", "5")
    assert code == 2 and "trained on Fashion-MNIST" in err and "--data" in err, (stdout, err)


HOSTILE = "<img src=x onerror=alert(1)> a|b `c`"


def _rendered_table(md: str):
    """The Markdown as a GFM viewer renders it (HTML allowed): its HTML, and the cells of each table row."""
    markdown_it = pytest.importorskip("markdown_it")
    page = markdown_it.MarkdownIt("commonmark", {"html": True}).enable("table").render(md)
    rows = [len(re.findall(r"<t[dh][ >]", row.split("</tr>")[0])) for row in page.split("<tr>")[1:]]
    return page, rows


def test_markdown_shows_what_the_user_named_as_text():
    """A model, a data source or a failure's reason holding HTML, `|` or backticks: shown as text, and
    every table row keeps its columns."""
    from edgedigits.tools import benchmark, photo_bench

    row = {"format": "onnx_int8", "status": "error", "reason": HOSTILE, "size_bytes": 1000}
    report = {"model": HOSTILE, "digits": 10, "data": HOSTILE, "runs": 1, "threads": 1, "rows": [row],
              "libraries": {"onnxruntime": HOSTILE}, "created": "today",
              "machine": {"processor": HOSTILE, "cpus": 2, "platform": HOSTILE}}
    page, rows = _rendered_table(benchmark.markdown(report, command=f"edgedigits benchmark {HOSTILE}"))
    assert "<img" not in page and "&lt;img src=x" in page
    assert rows == [len(benchmark.COLUMNS)] * 2, rows

    photos = {"folder": HOSTILE, "exact": 0, "photos": 1, "exact_rate": 0.0, "digits": 0,
              "recognize_ms": {"p50": 1.0, "p95": 1.0, "max": 1.0}, "confusion": [[0] * 10] * 10,
              "files": [{"file": HOSTILE + ".jpg", "size": [10, 10], "expected": "1", "read": "", "exact": False,
                         "recognize_ms": 1.0}]}
    page, rows = _rendered_table(photo_bench.markdown(photos, command=f"edgedigits benchmark photos {HOSTILE}"))
    assert "<img" not in page and "&lt;img src=x" in page
    assert rows[:2] == [5, 5] and set(rows[2:]) == {11}, rows
