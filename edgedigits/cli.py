"""The `edgedigits` command: one subcommand per stage, each a thin layer over a package function.

Heavy libraries (TensorFlow, ONNX, OpenCV) are imported inside the subcommands, so `--help` is fast.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
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


def _terminate(signum, frame):
    raise KeyboardInterrupt


DEBUG_ENV = "EDGEDIGITS_DEBUG"  # set to 1 to see the traceback of an unforeseen error
INTERNAL_ERROR = 70  # EX_SOFTWARE: a failure no check foresaw, as opposed to 2 (bad input) and 1 (a failed check)


def main(argv: list[str] | None = None) -> int:
    """Run one command. Every failure ends as one line on stderr and an exit status, never a traceback:
    2 for bad input (EdgeDigitsError), 130 for Ctrl-C, 70 for anything unforeseen (the last resort)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's start-up chatter hides our output
    from edgedigits.imagesize import limit_opencv

    limit_opencv()  # before any command imports cv2: OpenCV reads the limit once
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _terminate)  # `kill` cleans up as Ctrl-C does (temporary files, folders)
    try:
        ap = build_parser()
        args = ap.parse_args(argv)
        if not getattr(args, "run", None):
            ap.print_help()
            return 2
        return args.run(args) or 0
    except EdgeDigitsError as e:
        print(f"error: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # stdout closed early (`edgedigits deploy ... | head`): not an error of ours
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at exit
        return 1
    except OSError as e:  # the file system or the network refused, where no check could foresee it (disk full)
        where = f"{e.filename}: " if e.filename else ""
        print(f"error: {where}{e.strerror or e}", file=sys.stderr)
        return 1
    except MemoryError:
        print("error: out of memory; try smaller inputs (--limit) or a machine with more memory", file=sys.stderr)
        return 1
    except Exception as e:
        if os.environ.get(DEBUG_ENV):
            raise
        what = (str(e).strip().splitlines() or [""])[0][:300]
        print(f"error: unexpected {type(e).__name__}{': ' + what if what else ''} (exit {INTERNAL_ERROR}; "
              f"run again with {DEBUG_ENV}=1 to see the traceback, and please report it)", file=sys.stderr)
        return INTERNAL_ERROR


if __name__ == "__main__":
    sys.exit(main())
