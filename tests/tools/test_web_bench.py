"""`edgedigits benchmark web` in a real headless Chromium (short window, one format)."""

import os

import pytest

from edgedigits.tools import browser as B

if not B.chromium() and not os.environ.get("CI"):
    pytest.skip("Chromium is not installed (apt-get install chromium)", allow_module_level=True)


def test_frames_per_second_are_counted_in_the_window(shipped, tmp_path):
    from edgedigits.tools.web_bench import web_benchmark

    said = []
    rep = web_benchmark(shipped[1], tmp_path, seconds=2.0, formats=("onnx_int8",), say=said.append)
    row = rep["rows"][0]
    from edgedigits.tools.benchmark import cpu_name
    assert rep["cpu"] == cpu_name() and f"one thread of WebAssembly on {cpu_name()}," in said[-1]
    assert 1.5 < row["window_s"] < 4 and row["frames"] > 0
    # every frame the app completed in the window has its timings, and the rate is frames over wall time
    assert abs(row["timed_frames"] - row["frames"]) <= 1, row
    assert row["fps"] == pytest.approx(row["frames"] / row["window_s"])
    assert 0 < row["frame_ms"]["p50"] <= row["frame_ms"]["p95"]
