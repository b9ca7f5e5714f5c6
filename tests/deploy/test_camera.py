import http.server
import json
import os
import threading
from functools import partial

import cv2
import numpy as np
import pytest

from edgedigits.deploy import camera
from edgedigits.deploy import preprocess
from edgedigits.deploy.preprocess import SegmentConfig, segment, stroke_width, to_mnist
from edgedigits.deploy.runners import from_manifest
from edgedigits.tools.scenes import SceneConfig, handwriting_fonts, make_scene, match, write_video
from tests.conftest import run_cli

# Floors measured on these generated scenes with the shipped model (see README): a regression test
# measured 93.9% and 97.7% found (--no-verifier: 96.1%, 99.7%); 94.8% and 98.7% before the word rule
# (group.in_no_word): a digit the verifier rejects (a faint outline, a blot) can take a clear digit
# beside it along, as a letter takes the digit-like letters of its word
SCENE_DIGIT_ACCURACY_FLOOR = 0.93
SCENE_DETECTION_FLOOR = 0.97


@pytest.fixture(scope="module")
def runner(shipped):
    return from_manifest(shipped[1], "cpu")


@pytest.fixture(scope="module")
def scenes(sample):
    rng = np.random.default_rng(2026)
    return [make_scene(rng, (sample.test.images, sample.test.labels)) for _ in range(80)]


def test_handwriting_fonts_are_installed():
    if not handwriting_fonts() and not os.environ.get("CI"):
        pytest.skip("handwriting fonts not installed: make system-deps")
    assert len(handwriting_fonts()) >= 6, "install fonts-bwht and the other handwriting fonts (.ci/run does)"


def test_generated_scenes_are_read_above_the_floor(scenes, runner):
    correct = found = total = 0
    for frame, truth in scenes:
        rec = camera.recognize(frame, runner, confidence=0.0)
        c, f, _ = match([(lab, d.box) for lab, d in zip(rec.labels, rec.digits)], truth)
        correct, found, total = correct + c, found + f, total + len(truth)
    assert total > 250
    assert found / total >= SCENE_DETECTION_FLOOR, found / total
    assert correct / total >= SCENE_DIGIT_ACCURACY_FLOOR, correct / total


def test_thin_pen_digits_and_squared_paper(sample, runner):
    rng = np.random.default_rng(7)
    cfg = SceneConfig(grid_prob=1.0, thin_prob=1.0, font_prob=0.0, digits=(4, 4), two_lines_prob=0.0)
    correct = total = 0
    for _ in range(25):
        frame, truth = make_scene(rng, (sample.test.images, sample.test.labels), cfg)
        rec = camera.recognize(frame, runner, confidence=0.0)
        c, _, _ = match([(lab, d.box) for lab, d in zip(rec.labels, rec.digits)], truth)
        correct, total = correct + c, total + len(truth)
    # measured 88% (the geometric rules, --no-verifier: 96%): strokes broken by the grid's removal are
    # grouped by what the verifier reads, and a broken 6 can read best as a 1 and a 0 (issue 17)
    assert correct / total >= 0.86, correct / total


def test_blank_paper_finds_nothing(runner):
    rng = np.random.default_rng(3)
    for grid in (0.0, 1.0):
        frame, _ = make_scene(rng, (np.zeros((1, 28, 28), np.uint8) + 0, np.zeros(1, np.uint8)),
                              SceneConfig(grid_prob=grid, digits=(0, 0), font_prob=0.0))
        assert segment(frame) == [], grid


def test_reading_order_two_lines(sample, runner):
    # "12" above "34", drawn by hand as thick dark strokes on white
    frame = np.full((480, 640, 3), 235, np.uint8)
    picks = [int(np.flatnonzero(sample.test.labels == d)[0]) for d in (1, 2, 3, 4)]
    for (col, row), i in zip([(200, 100), (320, 100), (200, 280), (320, 280)], picks):
        digit = cv2.resize(sample.test.images[i], (112, 112), interpolation=cv2.INTER_CUBIC)
        frame[row:row + 112, col:col + 112] -= (digit[..., None] * 0.8).astype(np.uint8)
    rec = camera.recognize(frame, runner)
    assert [d.line for d in rec.digits] == [0, 0, 1, 1]
    assert rec.text == "12 34"


def test_to_mnist_normalizes_like_mnist():
    ink = np.zeros((200, 120), np.uint8)
    cv2.line(ink, (60, 10), (60, 190), 255, 2)  # a thin pen "1", 2 px wide, 180 px tall
    cv2.line(ink, (60, 10), (35, 40), 255, 2)
    mask = (ink > 0).astype(np.uint8) * 255
    out = to_mnist(ink, mask, SegmentConfig())
    ys, xs = np.nonzero(out > 30)
    assert out.shape == (28, 28) and out.max() == 255
    assert ys.max() - ys.min() + 1 <= 21 and ys.max() - ys.min() + 1 >= 18  # fits 20x20
    m = cv2.moments(out.astype(np.float32))
    assert abs(m["m10"] / m["m00"] - 14) <= 1 and abs(m["m01"] / m["m00"] - 14) <= 1  # centre of mass
    assert stroke_width((out > 80).astype(np.uint8)) >= 1.8  # thickened towards MNIST's stroke


def test_piece_boxes_from_outlines_are_opencvs_own():
    """cc_boxes (outlines of a few pieces, OpenCV's stats for many) gives connectedComponentsWithStats'
    labels and boxes: pieces touching the frame's edge, one inside another's hole, a diagonal chain,
    specks, and more pieces than CONTOUR_PIECES."""
    rng = np.random.default_rng(7)
    masks = []
    for k in range(400):
        h, w = (int(v) for v in rng.integers(1, 90, 2))
        m = (rng.random((h, w)) < rng.uniform(0.02, 0.6)).astype(np.uint8) * 255
        masks.append(cv2.dilate(m, np.ones((2, 2), np.uint8)) if k % 2 else m)
    ring = np.zeros((40, 40), np.uint8)
    cv2.circle(ring, (20, 20), 15, 255, 2)
    ring[18:22, 18:22] = 255  # a piece in the ring's hole
    ring[0, :5] = ring[-3:, -1] = 255  # pieces on the frame's edge
    diagonal = np.eye(30, dtype=np.uint8) * 255  # 8-connected: one piece
    masks += [ring, diagonal, np.zeros((5, 5), np.uint8)]
    sizes = set()
    for m in masks:
        n, labels, stats, _ = cv2.connectedComponentsWithStats(m, connectivity=8)
        n2, labels2, boxes = preprocess.cc_boxes(m)
        assert n2 == n and np.array_equal(labels2, labels) and np.array_equal(boxes[1:], stats[1:, :4])
        sizes.add(n - 1 > preprocess.CONTOUR_PIECES)
    assert sizes == {True, False}  # both ways were taken


def test_video_through_the_headless_pipeline(sample, tmp_path):
    rng = np.random.default_rng(11)
    views = [make_scene(rng, (sample.test.images, sample.test.labels), SceneConfig(digits=(4, 4))) for _ in range(4)]
    shots = [v for v in views for _ in range(3)]  # the camera holds each view for 3 frames
    video = write_video(tmp_path / "digits.avi", [f for f, _ in shots])
    code, out, err = run_cli("deploy", "--source", str(video), "--headless", "--smooth", "0.5",
                             "--save", str(tmp_path / "saved"))
    assert code == 0, err
    lines = [json.loads(line) for line in out.splitlines()]
    assert [r["frame"] for r in lines] == list(range(12))
    first = lines[0]
    assert set(first) == {"source", "frame", "digits", "text"} and first["source"] == str(video)
    assert set(first["digits"][0]) == {"label", "name", "confidence", "digit", "box"} and len(first["digits"][0]["box"]) == 4
    read = sum(r["text"].replace(" ", "") == "".join(str(lab) for lab, _ in t) for r, (_, t) in zip(lines, shots))
    # measured 6 of 12 (2 of the 4 views: a 7 whose top bar the grid's removal cut off, a 2 whose base
    # is set aside; the geometric rules, --no-verifier, read 9 or more)
    assert read >= 6, [(r["text"], [lab for lab, _ in t]) for r, (_, t) in zip(lines, shots)]
    for stage in ("capture", "preprocess", "inference", "total"):
        assert stage in err and "p95" in err
    assert "FPS" in err and "XNNPACK" not in err
    saved = cv2.VideoCapture(str(tmp_path / "saved" / "annotated.avi"))
    assert saved.isOpened() and int(saved.get(cv2.CAP_PROP_FRAME_COUNT)) == 12


def test_image_folder_skips_unreadable_and_saves(sample, tmp_path):
    rng = np.random.default_rng(5)
    (tmp_path / "in").mkdir()
    for i in range(3):
        cv2.imwrite(str(tmp_path / "in" / f"p{i}.jpg"), make_scene(rng, (sample.test.images, sample.test.labels))[0])
    (tmp_path / "in" / "broken.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    code, out, err = run_cli("deploy", "--source", str(tmp_path / "in"), "--headless", "--save", str(tmp_path / "out"))
    assert code == 0, err
    assert "broken.jpg: not a readable image; skipped" in err
    assert len(out.splitlines()) == 3
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [f"p{i}.annotated.jpg" for i in range(3)]


class _Server(http.server.SimpleHTTPRequestHandler):
    cut_after = None

    def log_message(self, *args):
        pass

    def copyfile(self, source, outputfile):
        if self.cut_after is None:
            return super().copyfile(source, outputfile)
        outputfile.write(source.read(self.cut_after))  # then the connection drops


@pytest.fixture
def http_video(sample, tmp_path):
    rng = np.random.default_rng(12)
    write_video(tmp_path / "v.avi", [make_scene(rng, (sample.test.images, sample.test.labels))[0] for _ in range(8)])
    servers = []

    def start(cut_after=None):
        handler = type("H", (_Server,), {"cut_after": cut_after})
        srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), partial(handler, directory=str(tmp_path)))
        threading.Thread(target=srv.serve_forever, daemon=True).start()
        servers.append(srv)
        return f"http://127.0.0.1:{srv.server_address[1]}/v.avi", srv

    yield start
    for s in servers:
        s.shutdown()
        s.server_close()


def test_stream_source_on_localhost(http_video):
    url, _ = http_video()
    code, out, err = run_cli("deploy", "--source", url, "--headless", "--reconnect", "0")
    assert code == 0, err
    assert len(out.splitlines()) == 8 and json.loads(out.splitlines()[0])["source"] == url


def test_stream_that_disconnects_is_retried_then_ends_cleanly(http_video):
    url, srv = http_video()
    code, out, err = run_cli("deploy", "--source", url, "--headless", "--max-frames", "0", "--reconnect", "2")
    assert code == 0
    full = len(out.splitlines())
    srv.shutdown()  # the camera goes away: no reconnection can succeed
    srv.server_close()
    url2, _ = http_video(cut_after=60_000)  # a stream that drops part-way through
    code, out, err = run_cli("deploy", "--source", url2, "--headless", "--reconnect", "2")
    assert code == 0, err
    assert 0 < len(out.splitlines()) < full * 3  # a part of the video per connection: 1 + 2 reconnections
    assert "lost the stream; reconnecting (1/2)" in err and "stopping" in err and "FPS" in err


def test_missing_camera_and_bad_manifest(tmp_path):
    code, out, err = run_cli("deploy", "--source", "7", "--headless")
    assert code == 2 and "camera 7: cannot be opened" in err and ("cameras that open" in err or "no camera" in err)
    (tmp_path / "manifest.json").write_text('{"schema": "something else"}')
    code, out, err = run_cli("deploy", "--manifest", str(tmp_path), "--source", "0", "--headless")
    assert code == 2 and "not an edgedigits manifest" in err and "Traceback" not in err


def test_window_on_a_display(sample, tmp_path):
    """Where a display exists the pipeline opens a window instead of printing JSON (a virtual X display)."""
    import shutil
    import subprocess
    import sys

    if not shutil.which("xvfb-run"):
        if os.environ.get("CI"):
            pytest.fail("xvfb-run missing: make system-deps installs it")
        pytest.skip("xvfb-run not installed")
    rng = np.random.default_rng(21)
    video = write_video(tmp_path / "v.avi", [make_scene(rng, (sample.test.images, sample.test.labels))[0]
                                             for _ in range(6)])
    proc = subprocess.run(["xvfb-run", "-a", sys.executable, "-m", "edgedigits", "deploy", "--source", str(video),
                           "--max-frames", "5"], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout == ""  # the window shows the digits; no JSON lines
    assert "5 frames in" in proc.stderr and "no display found" not in proc.stderr
