"""Real handwriting: the development photos of ../shared/data/photos through the real CLI, and the cases
they stand for (a digit filling the frame, a close-up of one digit, ruled paper, an MNIST image) on
images made here. Floors sit a little below what was measured; the photos are never copied into the
repository."""

import json

import cv2
import numpy as np
import pytest

from edgedigits.deploy import camera
from edgedigits.deploy.preprocess import segment
from tests.conftest import PHOTOS, photo_labels, run_cli


def _read_folder(folder: str, *extra: str) -> dict[str, str]:
    code, out, err = run_cli("deploy", "--source", str(PHOTOS / folder), "--headless", *extra)
    assert code == 0, err
    return {json.loads(line)["source"].rsplit("/", 1)[-1]: json.loads(line)["text"] for line in out.splitlines()}


def test_cli_reads_the_single_digit_photos():
    labels = photo_labels("single")
    read = _read_folder("single")
    misread = {name: (label, read.get(name)) for name, label in labels if read.get(name) != label}
    # measured 53/54 (Krisut01_10, a thin-pen 4 closed at the top, reads as 9: the classifier's part)
    assert len(labels) - len(misread) >= 52, misread


def test_cli_reads_the_multi_digit_photos():
    labels = photo_labels("multi")
    read = _read_folder("multi")
    assert {name: read.get(name) for name, _ in labels} == dict(labels)  # measured 3/3, lines included


def test_single_mode_reads_each_photo_as_one_digit():
    labels = photo_labels("single")
    read = _read_folder("single", "--single")
    assert all(len(text) == 1 for text in read.values()), read
    assert sum(read[name] == label for name, label in labels) >= 52


def test_benchmark_photos_on_the_development_set(tmp_path):
    photo_labels("multi")
    code, out, err = run_cli("benchmark", "photos", str(PHOTOS / "multi"), "--json", str(tmp_path / "p.json"),
                             "--markdown", str(tmp_path / "p.md"), "--plot", str(tmp_path / "p.png"))
    assert code == 0, err
    report = json.loads((tmp_path / "p.json").read_text())
    assert report["photos"] == 3 and report["digits"] == 32
    assert report["exact"] == 3 and report["digits_correct"] == 32
    assert np.asarray(report["confusion"]).sum() == 32 and np.trace(np.asarray(report["confusion"])) == 32
    assert "3/3 photos read exactly" in out and "134678 912532" in out
    assert "| scholich_1.jpg |" in (tmp_path / "p.md").read_text()
    assert cv2.imread(str(tmp_path / "p.png")) is not None


# ------------------------------------------------------------ the same cases on images made here
def _mnist_on_paper(digit: np.ndarray, size: tuple[int, int], box: tuple[int, int, int, int], ink=(40, 30, 20)):
    """An MNIST digit drawn as dark ink on light paper, as tall as box (x, y, w, h), centred in its width."""
    w, h = size
    frame = np.full((h, w, 3), 228, np.uint8)
    ys, xs = np.nonzero(digit > 30)
    crop = digit[ys.min():ys.max() + 1, xs.min():xs.max() + 1]
    x, y, bw, bh = box
    cw = min(bw, max(2, round(crop.shape[1] * bh / crop.shape[0])))
    x, bw = x + (bw - cw) // 2, cw
    alpha = cv2.resize(crop, (bw, bh), interpolation=cv2.INTER_CUBIC).astype(np.float32)[..., None] / 255
    region = frame[y:y + bh, x:x + bw].astype(np.float32)
    frame[y:y + bh, x:x + bw] = (region * (1 - alpha) + np.array(ink, np.float32) * alpha).astype(np.uint8)
    return frame


@pytest.fixture(scope="module")
def runner(shipped):
    from edgedigits.deploy.runners import from_manifest

    return from_manifest(shipped[1], "cpu")


def _pick(sample, label, n=3):
    return [sample.test.images[i] for i in np.flatnonzero(sample.test.labels == label)[:n]]


def test_a_digit_filling_the_frame_and_touching_its_edges(sample, runner):
    """Close-ups of MNIST's broad strokes blown up 7 to 9 times (a marker): the paper's estimate widens
    so that the strokes come out whole, and a digit touching the edge is kept."""
    read = 0
    for box in [(0, 0, 140, 180), (20, 20, 120, 180), (8, 10, 144, 180)]:  # top-left corner, bottom, 5% margin
        for label in range(10):
            for digit in _pick(sample, label):
                frame = _mnist_on_paper(digit, (160, 200), box)
                read += camera.recognize(frame, runner).text == str(label)
    assert read >= 78, read  # of 90; measured 82 (the pipeline before this one read 11: it dropped digits touching the edge)


def test_mnist_images_as_they_come(sample, runner, tmp_path):
    """28x28 white-on-black PNGs, as people feed MNIST models: one digit each, polarity detected."""
    folder = tmp_path / "mnist"
    folder.mkdir()
    for i in range(40):
        cv2.imwrite(str(folder / f"{i:02d}_{sample.test.labels[i]}.png"), sample.test.images[i])
    code, out, err = run_cli("deploy", "--source", str(folder), "--headless")
    assert code == 0, err
    lines = [json.loads(line) for line in out.splitlines()]
    right = sum(r["text"] == r["source"].rsplit("_", 1)[1][0] for r in lines)
    assert len(lines) == 40 and right >= 38, [(r["source"], r["text"]) for r in lines]


def test_ruled_paper_lines_go_and_a_long_stroke_stays(sample, runner):
    # four digits on ruled paper: the ruled lines cross the frame and are removed
    frame = np.full((480, 640, 3), 230, np.uint8)
    for y in range(40, 480, 44):
        cv2.line(frame, (0, y), (639, y + 3), (150, 110, 70), 2)  # blue-grey lines, slightly tilted
    labels = [7, 1, 4, 2]
    for k, label in enumerate(labels):
        digit = _pick(sample, label, 1)[0]
        frame = np.minimum(frame, _mnist_on_paper(digit, (640, 480), (120 + k * 110, 190, 60, 90)))
    assert camera.recognize(frame, runner).text == "".join(map(str, labels))
    # a close-up "1" whose stem crosses 90% of the frame: one long run alone is a stroke, not paper
    one = np.full((200, 120, 3), 225, np.uint8)
    cv2.line(one, (62, 10), (58, 190), (30, 30, 30), 3)
    cv2.line(one, (62, 10), (40, 40), (30, 30, 30), 3)
    digits = segment(one)
    assert len(digits) == 1 and digits[0].box[3] >= 170
    assert camera.recognize(one, runner).text == "1"


def test_a_12_megapixel_photo_with_a_small_digit(sample, runner):
    digit = _pick(sample, 6, 1)[0]
    frame = _mnist_on_paper(digit, (4032, 3024), (1900, 1400, 130, 180))
    frame = cv2.GaussianBlur(frame, (0, 0), 1.5)
    rec = camera.recognize(frame, runner)
    assert rec.text == "6"
    x, y, w, h = rec.digits[0].box
    assert abs(x - 1900) < 40 and abs(y - 1400) < 40 and abs(h - 180) < 40  # the box in the photo's pixels
