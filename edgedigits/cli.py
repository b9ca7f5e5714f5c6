"""The `edgedigits` command: one subcommand per stage, each a thin layer over a package function.

Heavy libraries (TensorFlow, ONNX, OpenCV) are imported inside the subcommands, so `--help` is fast.
"""

from __future__ import annotations

import argparse
import os
import sys
import textwrap

from edgedigits.errors import EdgeDigitsError


class _Formatter(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    """Shows a default only where there is one to show and the help does not already say it."""

    def _get_help_string(self, action):
        if action.default is None or action.default is False or "default" in (action.help or ""):
            return action.help
        return super()._get_help_string(action)


def _sub(subparsers, name: str, help: str, epilog: str):
    return subparsers.add_parser(name, help=help, description=help, epilog=textwrap.dedent(epilog),
                                 formatter_class=_Formatter)


def build_parser() -> argparse.ArgumentParser:
    from edgedigits import __version__

    ap = argparse.ArgumentParser(
        prog="edgedigits", formatter_class=_Formatter,
        description="Train a handwritten-digit CNN, convert it for devices, and run it on a camera.",
        epilog=textwrap.dedent("""\
            the pipeline:
              edgedigits train                 -> runs/train/<model>-<time>/model.keras
              edgedigits convert MODEL --out D -> D/*.tflite, D/*.onnx, D/manifest.json
              edgedigits deploy --source 0     -> live digits from the webcam
              edgedigits predict MODEL DATA    -> predictions.csv (--kaggle: submission.csv)
              edgedigits benchmark             -> accuracy and latency of every format
            `edgedigits COMMAND --help` explains each command."""))
    ap.add_argument("--version", action="version", version=f"edgedigits {__version__}")
    sub = ap.add_subparsers(dest="command", metavar="COMMAND")
    from edgedigits.train.cli import add_train

    add_train(_sub, sub)
    for mod in ("convert.cli", "deploy.cli", "deploy.predict", "tools.cli"):
        try:
            module = __import__(f"edgedigits.{mod}", fromlist=["register"])
        except ModuleNotFoundError as e:
            if e.name != f"edgedigits.{mod}":
                raise
            continue
        module.register(_sub, sub)
    return ap


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's start-up chatter hides our output
    ap = build_parser()
    args = ap.parse_args(argv)
    if not getattr(args, "run", None):
        ap.print_help()
        return 2
    try:
        return args.run(args) or 0
    except EdgeDigitsError as e:
        print(f"error: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
