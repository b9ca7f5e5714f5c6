"""`edgedigits benchmark`."""

from __future__ import annotations

import argparse
import json
import math
import re
import shlex
import sys
import tempfile
from pathlib import Path

from edgedigits.errors import EdgeDigitsError


# The options that shape each benchmark; one given to a benchmark that does not use it is refused.
APPLIES = {
    "MANIFEST": {"--data", "--limit", "--threads", "--runs", "--target", "--json", "--markdown", "--plot",
                 "--min-accuracy", "--max-drop", "--compare"},
    "camera": {"--model", "--manifest", "--threads", "--target", "--json", "--frames", "--digits", "--codec", "--verifier"},
    "web": {"--model", "--manifest", "--json"},  # one WebAssembly thread in headless Chromium, for a fixed time
    "photos": {"--model", "--manifest", "--threads", "--target", "--json", "--markdown", "--plot", "--single", "--verifier",
               "--resize"},
    "train": {"--model", "--data", "--limit", "--epochs", "--until", "--batch-size", "--devices", "--json"},
}


class _Given(argparse.Action):
    """Stores the value, and notes that the option was given (to refuse one that does not apply)."""

    def __call__(self, parser, namespace, values, option_string=None):
        setattr(namespace, self.dest, values)
        namespace.given = {*getattr(namespace, "given", ()), self.option_strings[0]}


def register(make, sub) -> None:
    from edgedigits.tools.benchmark import BenchConfig

    d = BenchConfig()
    p = make(sub, "benchmark", "Accuracy and latency of the Keras model and every converted format, side by side.", """\
        examples:
          edgedigits benchmark                                   # the shipped 'standard' model, every format
          edgedigits benchmark out/standard --json b.json --markdown b.md --plot b.png
          edgedigits benchmark out/standard --min-accuracy 99 --max-drop 0.1 --compare old.json   # CI gates
          edgedigits benchmark camera                            # the camera pipeline on a generated video
          edgedigits benchmark photos DIR                        # real photos listed in DIR/labels.csv
          edgedigits benchmark photos DIR --json p.json --markdown p.md --plot confusion.png
          edgedigits benchmark web                               # the phone web app in headless Chromium
          edgedigits benchmark train                             # train every registry model, report figures
          edgedigits benchmark train --model standard --until 99.6   # wall time to 99.6% validation accuracy

        Rows run one after another, each in a fresh process. A gate that fails exits 1 after the table.
        --compare checks accuracy, and latency as the ratio to Keras measured in the same run.
        photos: DIR/labels.csv has the columns filename,label (a label is the digits shown, text lines
        separated by a space; an empty label: a photo with no digit, where nothing should be read); per
        photo the expected and the read text, then photos read exactly, digit accuracy, digits found,
        photos with no digit that gave any output and digits invented per 100 of them, time per photo
        and a confusion matrix (--plot).""")
    p.add_argument("what", nargs="?", default="", metavar="MANIFEST|camera|web|train|photos",
                   help="a manifest (or its folder); 'camera', 'web', 'train' or 'photos' for those benchmarks; "
                        "default: the shipped model")
    p.add_argument("folder", nargs="?", type=Path, metavar="DIR", help="photos: the folder with labels.csv")
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
    p.add_argument("--manifest", type=Path, help="camera, web, photos: this manifest instead of the shipped model")
    p.add_argument("--single", action="store_true", help="photos: each photo is one digit (deploy --single)")
    p.add_argument("--verifier", action=argparse.BooleanOptionalAction, default=None,
                   help="camera, photos: segmentation by recognition with the digit verifier (default, as deploy); "
                        "--no-verifier: the geometric rules alone")
    p.add_argument("--resize", type=_size, metavar="WxH",
                   help="photos: each photo scaled to WxH after decoding, before it is timed (e.g. 4032x3024: what "
                        "a 12 MP camera gives)")
    p.add_argument("--frames", type=int, default=300, help="camera: frames in the generated video")
    p.add_argument("--digits", type=int, default=4, help="camera: digits per frame")
    p.add_argument("--codec", default="IYUV", choices=["IYUV", "MJPG"],
                   help="camera: the video's codec: raw YUV as a webcam streams 640x480, or Motion JPEG")
    p.add_argument("--epochs", type=int, default=0, help="train: epochs per model (default: each model's recipe)")
    p.add_argument("--until", type=float, default=0.0, metavar="PERCENT",
                   help="train: report the wall time until validation accuracy first reaches PERCENT, and stop there")
    p.add_argument("--batch-size", type=int, default=0, help="train: digits per step on each device (default: the training default)")
    p.add_argument("--devices", type=int, default=0, help="train: devices to train on (JAX; default: every one)")
    p.add_argument("--quiet", "-q", action="store_true", help="MANIFEST: no progress bar and no per-row lines, only the table")
    for action in p._actions:  # every option with a value notes when it is given
        if action.option_strings and action.nargs != 0:
            action.__class__ = _Given
    p.set_defaults(run=run_benchmark)


def _size(text: str) -> tuple[int, int]:
    """--resize WxH: two whole numbers of pixels, at most MAX_IMAGE_PIXELS in all (as any photo read)."""
    from edgedigits.imagesize import MAX_IMAGE_PIXELS

    m = re.fullmatch(r"\s*(\d+)\s*[xX]\s*(\d+)\s*", text)
    if not m or min(int(m[1]), int(m[2])) < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: give the width and height in pixels, e.g. 4032x3024")
    w, h = int(m[1]), int(m[2])
    if w * h > MAX_IMAGE_PIXELS:
        raise argparse.ArgumentTypeError(f"{text!r}: {w * h / 1e6:.0f} megapixels, more than the "
                                         f"{MAX_IMAGE_PIXELS / 1e6:.0f} any photo may have")
    return w, h


def _write(path: Path, text: str) -> None:
    from edgedigits.atomic import atomic_write

    atomic_write(path, lambda tmp: tmp.write_text(text))


def run_benchmark(args) -> int:
    from edgedigits.deploy import shipped_manifest
    from edgedigits.tools import benchmark as B

    command = "edgedigits " + shlex.join(sys.argv[1:])
    old = _check_benchmark(args)
    if args.folder and args.what != "photos":
        raise EdgeDigitsError(f"{args.folder}: a folder is given only to `benchmark photos DIR`")
    mode = args.what if args.what in APPLIES else "MANIFEST"
    applies = APPLIES[mode] | ({"--model"} if not args.what else set())
    given = set(getattr(args, "given", ())) | ({"--single"} if args.single else set()) | \
        ({"--verifier"} if args.verifier is not None else set())
    extra = sorted(given - applies)
    if extra:
        raise EdgeDigitsError(f"benchmark {args.what or 'MANIFEST'}: {', '.join(extra)} "
                              f"{'does' if len(extra) == 1 else 'do'} not apply here; it takes {', '.join(sorted(applies))}")
    if args.what == "photos":
        return _photos(args, command)
    if args.what == "train":
        from edgedigits.tools.train_bench import train_benchmark

        report = train_benchmark(args.data, args.epochs, args.limit, models=[args.model] if args.model else None,
                                 until=args.until, batch_size=args.batch_size, devices=args.devices)
        report.update(command=command, options={"data": args.data, "epochs": args.epochs, "limit": args.limit,
                                                "model": args.model, "until": args.until,
                                                "batch_size": args.batch_size, "devices": args.devices})
        if args.json:
            _write(args.json, json.dumps(report, indent=1))
        return 0
    manifest = args.manifest or shipped_manifest(args.model or "standard") if args.what in ("", "camera", "web") else Path(args.what)
    with tempfile.TemporaryDirectory(prefix="edgedigits-bench-") as work:
        if args.what == "web":
            from edgedigits.tools.web_bench import web_benchmark

            report = web_benchmark(manifest, Path(work))
            report.update(command=command, options={"model": str(args.manifest or args.model or "standard"), "seconds": report["seconds"],
                                                    "formats": [r["format"] for r in report["rows"]]})
            if args.json:
                _write(args.json, json.dumps(report, indent=1))
            return 0
        if args.what == "camera":
            from edgedigits.tools.camera_bench import camera_benchmark

            report = camera_benchmark(manifest, Path(work), args.frames, args.digits, args.threads,
                                      target=args.target, codec=args.codec, verifier=args.verifier is not False)
            report.update(command=command, options={"model": str(args.manifest or args.model or "standard"), "frames": args.frames, "digits": args.digits,
                                                    "threads": args.threads, "target": args.target, "codec": args.codec,
                                                    "verifier": args.verifier is not False})
            if args.json:
                _write(args.json, json.dumps(report, indent=1))
            return 0
        cfg = B.BenchConfig(threads=args.threads, runs=args.runs, data=args.data, limit=args.limit, target=args.target)
        report = B.benchmark(manifest, cfg, Path(work), say=(lambda msg: print(msg) if str(msg).startswith("notice") else None)
                             if args.quiet else print, quiet=args.quiet)
    report["command"] = command
    print(B.table(report))
    _save(args, report, B.markdown, B.plot)
    fails = B.gates(report, args.min_accuracy, args.max_drop, old)
    for f in fails:
        print(f"gate failed: {f}", file=sys.stderr)
    measured = [r for r in report["rows"] if "accuracy" in r]
    if not measured:  # a table of failures is a failed benchmark, gates or not
        print(f"error: {report['manifest']}: no row could be measured (see the status column)", file=sys.stderr)
        return 1
    return 1 if fails else 0


def _photos(args, command: str) -> int:
    from edgedigits.deploy import shipped_manifest
    from edgedigits.tools import photo_bench as P

    if not args.folder:
        raise EdgeDigitsError("benchmark photos: give the folder, e.g. `edgedigits benchmark photos photos/`")
    report = P.photo_benchmark(args.folder, args.manifest or shipped_manifest(args.model or "standard"), args.target, args.threads,
                               args.single, verifier=args.verifier is not False, resize=args.resize)
    report.update(command=command, options={"model": str(args.manifest or args.model or "standard"), "threads": args.threads,
                                            "target": args.target, "single": args.single, "verifier": args.verifier is not False,
                                            "resize": list(args.resize) if args.resize else None})
    _save(args, report, P.markdown, P.plot)
    return 0


def _save(args, report: dict, markdown, plot) -> None:
    """The report as --json, --markdown (markdown(report, command)) and --plot (plot(report, path))."""
    if args.json:
        _write(args.json, json.dumps(report, indent=1))
    if args.markdown:
        _write(args.markdown, markdown(report, report["command"]))
    if args.plot:
        plot(report, args.plot)


def _check_benchmark(args) -> dict | None:
    """Every option, the files to write and the report to compare with, before the long run.
    Returns the earlier report of --compare."""
    from edgedigits import checks

    checks.at_least("--threads", args.threads, 1)
    checks.at_least("--runs", args.runs, 1)
    checks.at_least("--limit", args.limit, 0)
    checks.at_least("--frames", args.frames, 1)
    checks.at_least("--digits", args.digits, 1)
    checks.at_least("--epochs", args.epochs, 0)
    checks.at_least("--batch-size", args.batch_size, 0)
    checks.at_least("--devices", args.devices, 0)
    checks.finite("--until", args.until, 0)
    if args.until > 100:
        raise EdgeDigitsError(f"--until {args.until}: a validation accuracy in percent, at most 100")
    checks.finite("--min-accuracy", args.min_accuracy, 0)
    checks.finite("--max-drop", args.max_drop, 0)
    inputs = {}  # what no report may be written onto
    for model in (args.manifest, args.what if args.what not in ("", "camera", "web", "train", "photos") else None):
        if model:
            inputs.update(checks.model_files(model))
    if args.folder and args.folder.is_dir():
        from edgedigits.images import IMAGE_SUFFIXES

        inputs[args.folder / "labels.csv"] = "the photos' labels"
        inputs.update({p: "a photo" for p in args.folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES})
    for option in ("json", "markdown", "plot"):
        checks.output_file(f"--{option}", getattr(args, option))
        checks.not_an_input(f"--{option}", getattr(args, option), inputs)
    if args.what not in ("", "camera", "web", "train", "photos"):
        from edgedigits.manifest import load_manifest

        load_manifest(args.what, verify_files=False)  # a missing or malformed manifest fails now
    if not args.compare:
        return None
    checks.input_file("--compare", args.compare)
    try:
        old = json.loads(args.compare.read_text())
    except (OSError, UnicodeDecodeError, ValueError, RecursionError) as e:
        raise EdgeDigitsError(f"--compare {args.compare}: cannot read an earlier report: "
                              f"{type(e).__name__}: {str(e)[:200]}") from None
    rows = old.get("rows") if isinstance(old, dict) else None
    if not isinstance(rows, list) or not all(isinstance(r, dict) and isinstance(r.get("format"), str) for r in rows):
        raise EdgeDigitsError(f"--compare {args.compare}: not a benchmark report (expected an object with "
                              f"'rows', each with a 'format'; write one with --json)")
    if not rows:
        raise EdgeDigitsError(f"--compare {args.compare}: a report with no rows; nothing to compare with")
    for r in rows:
        for key in ("accuracy", "speedup_vs_keras"):
            if key in r and (not isinstance(r[key], (int, float)) or isinstance(r[key], bool)
                             or not math.isfinite(r[key])):
                raise EdgeDigitsError(f"--compare {args.compare}: row '{r['format']}': '{key}' is {r[key]!r}, "
                                      f"expected a number")
    if not any(isinstance(r.get("accuracy"), (int, float)) for r in rows):
        raise EdgeDigitsError(f"--compare {args.compare}: no row has an accuracy; nothing to compare with")
    return old
