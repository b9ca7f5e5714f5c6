"""`edgedigits benchmark camera`: the whole camera pipeline on a generated 640x480 video.

Frames of digits on paper (tools/scenes.py, several digits each) are written to a video file, which
runs through the same headless pipeline as `edgedigits deploy --source VIDEO --headless`: decoding,
preprocessing, one batched inference per frame. Prints per-stage times, frames per second, and how
well the digits were read against the scenes' truth.
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np


def generate(path: Path, frames: int, digits: int, seed: int = 0, codec: str = "IYUV"):
    """Write the video; returns the truth per frame."""
    from edgedigits.tools.scenes import SceneConfig, make_scene, write_video
    from edgedigits.train.data import load_sample

    ds = load_sample()  # the test digits of the bundled sample: never trained on
    rng = np.random.default_rng(seed)
    cfg = SceneConfig(digits=(digits, digits), two_lines_prob=0.0)
    scenes = [make_scene(rng, (ds.test.images, ds.test.labels), cfg) for _ in range(frames)]
    write_video(path, [f for f, _ in scenes], codec=codec)
    return [t for _, t in scenes]


def camera_benchmark(manifest, workdir: Path, frames: int = 300, digits: int = 4, threads: int = 1,
                     one_core: bool = True, target: str = "cpu", codec: str = "IYUV", verifier: bool = True,
                     say=print) -> dict:
    import cv2

    from edgedigits.deploy import camera
    from edgedigits.deploy.runners import from_manifest
    from edgedigits.deploy.sources import open_source
    from edgedigits.tools.benchmark import cpu_name
    from edgedigits.tools.scenes import match

    if one_core and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})
    cv2.setNumThreads(1)
    video = workdir / "camera_bench.avi"
    truth = generate(video, frames, digits, codec=codec)
    runner = from_manifest(manifest, target, threads, verifier=verifier)
    out = io.StringIO()
    t = camera.run(open_source(str(video)), runner, headless=True, out=out, is_video=True)
    import json

    correct = found = total = exact = 0
    recs = {r["frame"]: r for r in map(json.loads, out.getvalue().splitlines())}
    for i, tr in enumerate(truth):  # every generated frame counts: one without an output line is wrong
        rec = recs.get(i, {"digits": [], "text": None})
        pred = [(d["label"], tuple(d["box"])) for d in rec["digits"]]
        c, f, _ = match(pred, tr)
        correct, found, total = correct + c, found + f, total + len(tr)
        exact += rec["text"] == "".join(str(lab) for lab, _ in tr)
    stages = {s: {"p50_ms": float(np.percentile(np.asarray(t[s]) * 1000, 50)),
                  "p95_ms": float(np.percentile(np.asarray(t[s]) * 1000, 95))} for s in camera.STAGES}
    report = {"frames": t["frames"], "digits_per_frame": digits, "frame_size": [640, 480], "codec": codec,
              "model": str(manifest), "cpu": cpu_name(),
              "fps": t["frames"] / t["wall"], "fps_from_total_p50": 1000 / stages["total"]["p50_ms"],
              "stages": stages, "threads": threads, "one_core": one_core,
              "digit_accuracy": correct / total, "detected": found / total, "text_exact": exact / len(truth)}
    say(f"{frames} generated 640x480 frames ({codec}), {digits} digits each, {manifest}; "
        f"{'one core' if one_core else 'all cores'} of {report['cpu']}, {threads} inference thread(s)")
    say(camera.summarize(t, t["frames"], t["wall"]))
    say(f"digits read correctly: {correct}/{total} ({report['digit_accuracy']:.1%}); found {report['detected']:.1%}; "
        f"whole frame text exact: {report['text_exact']:.1%}")
    return report
