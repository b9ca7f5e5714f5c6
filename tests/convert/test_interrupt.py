"""Ctrl-C and SIGKILL while converting into a folder that holds an earlier conversion: the folder is
always the old complete conversion or the new complete one (every file the manifest names is there
and has its hash), never a mix. Real conversions in real processes, killed at several points."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from edgedigits.atomic import atomic_folder, folder_lock
from edgedigits.manifest import load_manifest
from tests.conftest import ROOT

MODEL = ROOT / "deploy" / "models" / "tiny" / "tiny.keras"
QUICK = ["--data", "sample", "--check-limit", "100", "--calibration-size", "10"]
OLD, NEW = {"tflite_fp32"}, {"tflite_fp32", "tflite_dynamic"}


@pytest.fixture(scope="module")
def old_conversion(tmp_path_factory) -> Path:
    """A real one-format conversion of the shipped tiny model: the folder every test converts over."""
    from edgedigits.convert.convert import ConvertConfig, convert

    out = tmp_path_factory.mktemp("old") / "converted"
    convert(MODEL, out, ConvertConfig(formats=sorted(OLD), data="sample", check_limit=100, calibration_size=10),
            say=lambda *_: None)
    return out


def formats_in(folder: Path) -> set[str]:
    """The formats of a complete conversion; load_manifest checks every file and its SHA-256."""
    return {a["format"] for a in load_manifest(folder).artifacts}


def convert_and_signal(out: Path, sig: int, after: str | None) -> tuple[int, str]:
    """Convert into `out` to two formats and send `sig` once stdout shows a line starting with `after`
    (None: one second after the start, while the libraries load)."""
    proc = subprocess.Popen([sys.executable, "-m", "edgedigits", "convert", str(MODEL), "--out", str(out),
                             "--formats", *sorted(NEW), *QUICK], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONUNBUFFERED": "1"})
    if after is None:
        time.sleep(1)
    else:
        for line in proc.stdout:
            if line.strip().startswith(after):
                break
        else:
            pytest.fail(f"the conversion ended before printing {after!r}")
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=120)
    return proc.returncode, err


@pytest.mark.parametrize("sig, after", [
    (signal.SIGINT, None),  # while TensorFlow loads
    (signal.SIGINT, "tflite_fp32"),  # between two exports
    (signal.SIGINT, "tflite_dynamic"),  # the summary table: the manifest is written, the swap is next
    (signal.SIGKILL, "tflite_fp32"),
    (signal.SIGKILL, "tflite_dynamic"),
], ids=["int-loading", "int-exporting", "int-swapping", "kill-exporting", "kill-swapping"])
def test_interrupted_conversion_keeps_old_or_new_whole(old_conversion, tmp_path, sig, after):
    out = tmp_path / "converted"
    shutil.copytree(old_conversion, out)
    code, err = convert_and_signal(out, sig, after)
    assert "Traceback" not in err, err
    got = formats_in(out)  # raises when a file is missing or changed
    if sig == signal.SIGKILL:
        assert code == -signal.SIGKILL
        assert got in (OLD, NEW)
        # what a kill leaves is a hidden unfinished folder beside it, and the lock, which the next run
        # removes (the kernel dropped the dead process's lock: the next run takes the file over)
        assert {p.name for p in tmp_path.iterdir()} - {"converted", ".converted.lock"} <= {
            p.name for p in tmp_path.glob(".converted.new-*")}
        with folder_lock(out), atomic_folder(out) as stage:
            shutil.copytree(out, stage, dirs_exist_ok=True)
        assert sorted(p.name for p in tmp_path.iterdir()) == ["converted"] and formats_in(out) == got
    else:
        assert code in (130, 0, -signal.SIGINT), err  # -SIGINT: so early that Python had not started yet
        if code == 0:  # the signal came after the swap, as the command ended
            assert got == NEW
        elif code == -signal.SIGINT:
            assert got == OLD
        else:
            assert "interrupted" in err
            assert got == OLD or (after == "tflite_dynamic" and got == NEW)
        assert sorted(p.name for p in tmp_path.iterdir()) == ["converted"]  # nothing left beside it


def test_a_folder_swap_replaces_whole_or_not_at_all(tmp_path):
    out = tmp_path / "f"
    out.mkdir()
    (out / "old.txt").write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_folder(out) as stage:
            (stage / "new.txt").write_text("new")
            raise RuntimeError("fails half-way")
    assert [p.name for p in out.iterdir()] == ["old.txt"] and len(list(tmp_path.iterdir())) == 1
    with atomic_folder(out) as stage:
        (stage / "new.txt").write_text("new")
    assert [p.name for p in out.iterdir()] == ["new.txt"] and len(list(tmp_path.iterdir())) == 1
    assert oct(out.stat().st_mode & 0o777) != "0o700"  # not mkdtemp's private mode


def test_a_conversion_never_replaces_a_folder_it_did_not_write(tmp_path):
    from tests.conftest import run_cli

    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "thesis.tex").write_text("years of work")
    code, _, err = run_cli("convert", str(MODEL), "--out", str(mine), *QUICK)
    assert code == 2 and "holds thesis.tex, which is not part of a conversion" in err
    assert (mine / "thesis.tex").read_text() == "years of work"
