"""`edgedigits convert`."""

from __future__ import annotations

from pathlib import Path


def register(make, sub) -> None:
    from edgedigits.convert.convert import ConvertConfig
    from edgedigits.formats import FORMATS

    d = ConvertConfig()
    table = "\n".join(f"          {f.name:<17} {f.suffix:<16} {f.precision}" for f in FORMATS.values())
    p = make(sub, "convert", "Quantize and export a Keras model to TFLite, ONNX and the Edge TPU; check each file.", """\
        examples:
          edgedigits convert runs/train/standard-x/model.keras --out out/standard
          edgedigits convert model.keras --out out/m --formats tflite_int8 onnx_fp32
          edgedigits convert model.keras --out out/m --formats tflite_int8 --explain
          edgedigits convert model.keras --out out/m --check-split test     # final report on MNIST test

        formats (default: all):
""" + table + """

        Every artifact is loaded in its runtime and run on held-out digits right after it is written;
        one that loses more than --tolerance points against the Keras model fails the command (exit 1)
        after the others are written. manifest.json beside the files describes each of them.
        Everything is written beside --out and swapped in at the end: an earlier conversion there is
        replaced whole, and Ctrl-C or a crash leaves it as it was.""")
    p.add_argument("model", type=Path, help="a .keras model (e.g. a run folder's model.keras)")
    p.add_argument("--out", type=Path, required=True, help="output folder")
    p.add_argument("--formats", nargs="+", metavar="FORMAT", choices=list(FORMATS), help="formats to build")
    p.add_argument("--data", default=d.data, help="calibration and check digits (same sources as `train --data`)")
    p.add_argument("--calibration-size", type=int, default=d.calibration_size, help="representative digits for int8")
    p.add_argument("--check-split", choices=["val", "test"], default=d.check_split,
                   help="check on the validation split, or on the test set for a final report")
    p.add_argument("--check-limit", type=int, default=d.check_limit, help="check on at most this many digits (0: all)")
    p.add_argument("--tolerance", type=float, default=d.tolerance_pp, help="allowed accuracy loss, percentage points")
    p.add_argument("--opset", type=int, default=d.opset, help="ONNX opset")
    p.add_argument("--int8-io", choices=["int8", "uint8"], default=d.int8_io, help="input/output dtype of the int8 TFLite models")
    p.add_argument("--explain", action="store_true", help="print the per-layer int8 quantization error")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bar and no per-format lines: "
                   "only notices, failures and the manifest's path")
    p.set_defaults(run=run_convert)


# What converting needs beyond a device install (import name -> package name)
CONVERT_NEEDS = {"tensorflow": "tensorflow", "keras": "keras", "tf2onnx": "tf2onnx", "onnx": "onnx"}


def require_convert_libraries() -> None:
    """Name the extra to install, in place of a ModuleNotFoundError deep in a converter."""
    import importlib.util

    from edgedigits.errors import EdgeDigitsError

    def installed(mod: str) -> bool:
        try:
            return importlib.util.find_spec(mod) is not None
        except ImportError:
            return False

    missing = [pkg for mod, pkg in CONVERT_NEEDS.items() if not installed(mod)]
    if missing:
        raise EdgeDigitsError(f"converting needs {', '.join(missing)}, not installed here (a deploy-only install): "
                              f"pip install 'edgedigits[convert]'")


def run_convert(args) -> int:
    from edgedigits.convert.convert import ConvertConfig, check_config, check_out, convert

    require_convert_libraries()
    cfg = ConvertConfig(formats=args.formats, data=args.data, calibration_size=args.calibration_size,
                        check_split=args.check_split, check_limit=args.check_limit, tolerance_pp=args.tolerance,
                        opset=args.opset, int8_io=args.int8_io, explain=args.explain, quiet=args.quiet)
    check_config(args.model, cfg)
    check_out(args.out)
    say = print
    if args.quiet:  # for scripts: what needs attention, and where the result is
        say = lambda msg: print(msg) if str(msg).startswith(("notice", "manifest:")) else None  # noqa: E731
    manifest, ok = convert(args.model, args.out, cfg, say=say)
    if not ok and args.quiet:
        import json

        for e in json.loads(manifest.read_text())["artifacts"]:
            if e["status"] != "passed":
                print(f"{e['format']}: {e['status']}: {e.get('reason', '')}")
    return 0 if ok else 1
