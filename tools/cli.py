"""`edgedigits benchmark`."""

from __future__ import annotations

import json
import shlex
import sys
import tempfile
from pathlib import Path


def register(make, sub) -> None:
    from edgedigits.tools.benchmark import BenchConfig

    d = BenchConfig()
    p = make(sub, "benchmark", "Accuracy and latency of the Keras model and every converted format, side by side.", """\
        examples:
          edgedigits benchmark                                   # the shipped 'standard' model, every format
          edgedigits benchmark out/standard --json b.json --markdown b.md --plot b.png
          edgedigits benchmark out/standard --min-accuracy 99 --max-drop 0.1 --compare old.json   # CI gates
          edgedigits benchmark camera                            # the camera pipeline on a generated video
          edgedigits benchmark web                               # the phone web app in headless Chromium
          edgedigits benchmark train                             # train every registry model, report figures
          edgedigits benchmark train --model standard --until 99.6   # wall time to 99.6% validation accuracy

        Rows run one after another, each in a fresh process. A gate that fails exits 1 after the table.
        --compare checks accuracy, and latency as the ratio to Keras measured in the same run.""")
    p.add_argument("what", nargs="?", default="", metavar="MANIFEST|camera|web|train",
                   help="a manifest (or its folder); 'camera', 'web' or 'train' for those benchmarks; default: the shipped model")
    p.add_argument("--model", choices=["standard", "tiny"],
                   help="which shipped model, without a manifest (default: standard); train: only this model (default: every one)")
    p.add_argument("--data", default=d.data, help="test digits: full MNIST's test set when cached (auto), else the bundled sample's")
    p.add_argument("--limit", type=int, default=d.limit, help="use at most this many test digits")
    p.add_argument("--threads", type=int, default=d.threads)
    p.add_argument("--runs", type=int, default=d.runs, help="batch-1 latency samples per row")
    p.add_argument("--target", choices=["cpu", "edgetpu"], default=d.target, help="edgetpu: also run the Edge TPU rows on a Coral device")
    p.add_argument("--json", type=Path, help="write the full report as JSON")
    p.add_argument("--markdown", type=Path, help="write the table as Markdown")
    p.add_argument("--plot", type=Path, help="write accuracy against latency as PNG")
    p.add_argument("--min-accuracy", type=float, help="gate: every row at least this accuracy, percent")
    p.add_argument("--max-drop", type=float, help="gate: no row more than this many points below Keras")
    p.add_argument("--compare", type=Path, metavar="OLD.json", help="gate: no regression against an earlier --json report")
    p.add_argument("--frames", type=int, default=300, help="camera: frames in the generated video")
    p.add_argument("--digits", type=int, default=4, help="camera: digits per frame")
    p.add_argument("--codec", default="IYUV", choices=["IYUV", "MJPG"],
                   help="camera: the video's codec: raw YUV as a webcam streams 640x480, or Motion JPEG")
    p.add_argument("--epochs", type=int, default=0, help="train: epochs per model (default: each model's recipe)")
    p.add_argument("--until", type=float, default=0.0, metavar="PERCENT",
                   help="train: report the wall time until validation accuracy first reaches PERCENT, and stop there")
    p.add_argument("--batch-size", type=int, default=0, help="train: digits per step on each device (default: the training default)")
    p.add_argument("--devices", type=int, default=0, help="train: devices to train on (JAX; default: every one)")
    p.set_defaults(run=run_benchmark)


def _write(path: Path, text: str) -> None:
    from edgedigits.atomic import atomic_write

    atomic_write(path, lambda tmp: tmp.write_text(text))


def run_benchmark(args) -> int:
    from edgedigits.deploy import shipped_manifest
    from edgedigits.errors import EdgeDigitsError
    from edgedigits.tools import benchmark as B

    command = "edgedigits " + shlex.join(sys.argv[1:])
    if args.what == "train":
        from edgedigits.tools.train_bench import train_benchmark

        report = train_benchmark(args.data, args.epochs, args.limit, models=[args.model] if args.model else None,
                                 until=args.until, batch_size=args.batch_size, devices=args.devices)
        if args.json:
            _write(args.json, json.dumps(report, indent=1))
        return 0
    manifest = shipped_manifest(args.model or "standard") if args.what in ("", "camera", "web") else Path(args.what)
    with tempfile.TemporaryDirectory(prefix="edgedigits-bench-") as work:
        if args.what == "web":
            from edgedigits.tools.web_bench import web_benchmark

            report = web_benchmark(manifest, Path(work))
            if args.json:
                _write(args.json, json.dumps(report, indent=1))
            return 0
        if args.what == "camera":
            from edgedigits.tools.camera_bench import camera_benchmark

            report = camera_benchmark(manifest, Path(work), args.frames, args.digits, args.threads,
                                      codec=args.codec)
            if args.json:
                _write(args.json, json.dumps(report, indent=1))
            return 0
        cfg = B.BenchConfig(threads=args.threads, runs=args.runs, data=args.data, limit=args.limit, target=args.target)
        report = B.benchmark(manifest, cfg, Path(work))
    report["command"] = command
    print(B.table(report))
    if args.json:
        _write(args.json, json.dumps(report, indent=1))
    if args.markdown:
        _write(args.markdown, B.markdown(report, command))
    if args.plot:
        B.plot(report, args.plot)
    old = None
    if args.compare:
        try:
            old = json.loads(args.compare.read_text())
        except (OSError, json.JSONDecodeError) as e:
            raise EdgeDigitsError(f"{args.compare}: cannot read an earlier report: {e}") from None
    fails = B.gates(report, args.min_accuracy, args.max_drop, old)
    for f in fails:
        print(f"gate failed: {f}", file=sys.stderr)
    return 1 if fails else 0
