"""`edgedigits benchmark web`: the web app in headless Chromium on this machine.

Builds the app for each ONNX format, plays a generated 640x480 video of four digits per frame into
Chromium's fake camera, and reads the page's own per-frame timings (frame grab, preprocessing in
JavaScript, inference in ONNX Runtime Web on WebAssembly) and the model's latency per call.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np


def web_benchmark(manifest, workdir: Path, seconds: float = 8.0, formats=("onnx_int8", "onnx_fp32"), say=print) -> dict:
    from edgedigits.deploy.webapp import build
    from edgedigits.tools import browser as B
    from edgedigits.tools.benchmark import cpu_name
    from edgedigits.tools.scenes import SceneConfig, make_scene
    from edgedigits.train.data import load_sample

    ds = load_sample()
    rng = np.random.default_rng(0)
    frames = [make_scene(rng, (ds.test.images, ds.test.labels), SceneConfig(digits=(4, 4), two_lines_prob=0.0))[0]
              for _ in range(20)]
    y4m = B.write_y4m(workdir / "camera.y4m", [f for f in frames for _ in range(3)])
    report = {"frame_size": [640, 480], "digits_per_frame": 4, "seconds": seconds, "browser": "", "cpu": cpu_name(),
              "rows": []}
    for fmt in formats:
        app = workdir / f"app-{fmt}"
        built = build(manifest, app, fmt=fmt, say=lambda *_: None)
        with B.serve(app) as url, B.browser(y4m) as ctx:
            page = ctx.new_page()
            page.goto(url)
            B.wait_for_frames(page, 5)
            # the window: frames the app completed (its own counter) between two readings of the page's clock
            f0, t0 = page.evaluate("() => { window.edgedigits.history.length = 0; "
                                   "return [window.edgedigits.frames, performance.now()]; }")
            time.sleep(seconds)
            f1, t1, hist = page.evaluate("() => [window.edgedigits.frames, performance.now(), window.edgedigits.history]")
            report["browser"] = ctx.browser.version
            one = B.page_inference_ms(page, 1)
            four = B.page_inference_ms(page, 4)
        row = {"format": fmt, "app_bytes": built["bytes"], "model_bytes": built["files"]["model.onnx"],
               "frames": f1 - f0, "window_s": (t1 - t0) / 1000, "timed_frames": len(hist), "inference_1_digit_ms": one,
               "inference_4_digits_ms": four}
        for key in ("preprocess_ms", "inference_ms", "frame_ms"):
            v = np.array([h[key] for h in hist])
            row[key] = {"p50": float(np.percentile(v, 50)), "p95": float(np.percentile(v, 95))}
        # counted, not derived from a frame time: the loop also waits for the browser's next animation frame
        row["fps"] = row["frames"] / row["window_s"]
        report["rows"].append(row)
        say(f"{fmt}: app {built['bytes'] / 1e6:.1f} MB; {row['frames']} frames in {row['window_s']:.1f} s = "
            f"{row['fps']:.1f} FPS; per frame p50 {row['frame_ms']['p50']:.1f} ms, p95 {row['frame_ms']['p95']:.1f} ms "
            f"(p50: preprocess {row['preprocess_ms']['p50']:.1f}, inference {row['inference_ms']['p50']:.1f}); "
            f"model call: {one:.2f} ms for 1 digit, {four:.2f} ms for 4")
    say(f"headless Chromium {report['browser']}, one thread of WebAssembly on {report['cpu']}, "
        f"{len(frames)} distinct 640x480 frames")
    return report
