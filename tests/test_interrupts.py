"""Ctrl-C in each long-running command: an exit status that says so (130), a line that says what was
kept and how to go on, and nothing that blocks the next run. Plus the last-resort handler."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

from tests.conftest import ROOT

ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONUNBUFFERED": "1"}


def start(*args: str, cwd: Path | None = None) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "edgedigits", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=ENV, cwd=cwd)


def interrupt_when(proc: subprocess.Popen, ready) -> tuple[int, str, str]:
    """Send SIGINT once a line of stdout makes ready(line) true."""
    for line in proc.stdout:
        if ready(line):
            break
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    return proc.returncode, out, err


def test_ctrl_c_in_training_says_how_to_resume_or_leaves_nothing(tmp_path):
    train = ["train", "--model", "tiny", "--data", "sample", "--limit", "600", "--epochs", "40", "--batch-size", "64"]
    run = tmp_path / "run"
    state = run / "checkpoint" / "state.json"
    code, _, err = interrupt_when(start(*train, "--out", str(run)), lambda line: state.is_file())
    assert code == 130 and "Traceback" not in err, err
    assert f"continue with `edgedigits train --resume {run}`" in err
    # before the first epoch ends there is nothing to resume: nothing is kept, and the same command runs again
    early = tmp_path / "early"
    code, _, err = interrupt_when(start(*train, "--out", str(early)), lambda line: line.startswith("training"))
    assert code == 130 and "Traceback" not in err, err
    assert "interrupted before the first epoch ended; nothing was kept" in err
    assert not early.exists()


def test_ctrl_c_in_deploy_exits_130_after_the_summary(tmp_path):
    photos = tmp_path / "photos"
    photos.mkdir()
    for i in range(300):
        shutil.copyfile(ROOT / "docs" / "example.jpg", photos / f"p{i:03d}.jpg")
    proc = start("deploy", "--source", str(photos), "--headless", "--model", "tiny", "--save", str(tmp_path / "out"))
    code, _, err = interrupt_when(proc, lambda line: line.startswith("{"))
    assert code == 130 and "Traceback" not in err, err
    assert "frames in" in err and "interrupted after" in err and f"what was annotated is in {tmp_path / 'out'}" in err
    assert not list((tmp_path / "out").glob(".tmp-*"))  # every annotated image there is whole


def test_ctrl_c_while_saving_a_video_keeps_the_previous_one(tmp_path):
    import cv2

    frame = cv2.imread(str(ROOT / "docs" / "example.jpg"))
    h, w = frame.shape[:2]
    writer = cv2.VideoWriter(str(tmp_path / "in.avi"), cv2.VideoWriter_fourcc(*"MJPG"), 15, (w, h))
    for _ in range(400):
        writer.write(frame)
    writer.release()
    out = tmp_path / "out"
    proc = subprocess.run([sys.executable, "-m", "edgedigits", "deploy", "--source", str(tmp_path / "in.avi"),
                           "--headless", "--model", "tiny", "--save", str(out), "--max-frames", "5"],
                          capture_output=True, text=True, env=ENV)
    assert proc.returncode == 0, proc.stderr
    before = (out / "annotated.avi").read_bytes()
    proc = start("deploy", "--source", str(tmp_path / "in.avi"), "--headless", "--model", "tiny", "--save", str(out))
    lines = iter(range(3))
    code, _, err = interrupt_when(proc, lambda line: line.startswith("{") and next(lines) == 2)
    assert code == 130 and "Traceback" not in err, err
    assert f"the previous {out / 'annotated.avi'} is kept" in err and f"{out / 'annotated.partial.avi'}" in err, err
    assert (out / "annotated.avi").read_bytes() == before
    cap = cv2.VideoCapture(str(out / "annotated.partial.avi"))
    assert cap.get(cv2.CAP_PROP_FRAME_COUNT) >= 1  # this run's frames, whole and readable
    assert sorted(p.name for p in out.iterdir()) == ["annotated.avi", "annotated.partial.avi"]


UNFORESEEN = """
import sys
from edgedigits import cli

build = cli.build_parser


def with_a_failing_command():  # a real KeyError from a command, where no check foresaw one
    ap = build()
    ap._subparsers._group_actions[0].choices["serve"].set_defaults(run=lambda args: {}["unforeseen"])
    return ap


cli.build_parser = with_a_failing_command
sys.exit(cli.main(["serve", "."]))
"""


def test_the_last_resort_is_one_line_and_says_how_to_see_more():
    proc = subprocess.run([sys.executable, "-c", UNFORESEEN], capture_output=True, text=True, env=ENV)
    assert proc.returncode == 70
    assert proc.stderr.splitlines() == ["error: unexpected KeyError: 'unforeseen' (exit 70; run again with "
                                        "EDGEDIGITS_DEBUG=1 to see the traceback, and please report it)"]
    proc = subprocess.run([sys.executable, "-c", UNFORESEEN], capture_output=True, text=True,
                          env={**ENV, "EDGEDIGITS_DEBUG": "1"})
    assert proc.returncode == 1 and "Traceback" in proc.stderr and "KeyError: 'unforeseen'" in proc.stderr
