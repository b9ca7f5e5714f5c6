"""The one image reader and digit normalization (edgedigits/images.py), as `train --data DIR`, `predict
FOLDER` and the camera see a digit: real files decoded by OpenCV, real models."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from edgedigits import images
from edgedigits.deploy.preprocess import segment
from edgedigits.deploy.predict import predict
from edgedigits.errors import DataError
from edgedigits.train import data as D


def _on_paper(digit: np.ndarray, at: tuple[int, int], size: int = 40, sheet=(120, 160)) -> np.ndarray:
    """An MNIST digit drawn in dark ink, `size` pixels tall, at `at` (x, y) on a grey sheet: a loose
    photo of one digit, margins and all."""
    paper = np.full(sheet, 205, np.uint8)
    ink = cv2.resize(digit, (size, size), interpolation=cv2.INTER_CUBIC).astype(np.float32) / 255
    x, y = at
    paper[y:y + size, x:x + size] = (205 * (1 - 0.9 * ink)).astype(np.uint8)
    return paper


@pytest.fixture(scope="module")
def loose(tmp_path_factory, test_digits):
    """20 digits off-centre on 160x120 sheets, written as PNG and JPEG, in sub-folders by class."""
    x, y = test_digits
    root = tmp_path_factory.mktemp("loose")
    for i in range(20):
        (root / str(y[i])).mkdir(exist_ok=True)
        suffix = ".png" if i % 2 else ".jpg"
        cv2.imwrite(str(root / str(y[i]) / f"d{i:02d}{suffix}"), _on_paper(x[i], (8 + 5 * i, 10 + 3 * (i % 7))))
    return root, x[:20], y[:20]


def test_folder_digits_are_normalized_as_the_camera_normalizes_them(loose, shipped):
    root, _, y = loose
    d = D.load_folder(root)
    for name, image in zip(d.ids, d.images):  # byte for byte the camera pipeline's digit
        frame = cv2.imread(str(root / name), cv2.IMREAD_COLOR)
        np.testing.assert_array_equal(image, segment(frame, single=True)[0].image, err_msg=name)
    # and so the model reads them: a squash of the whole sheet to 28x28 makes a 7-pixel digit in a corner
    preds = predict(shipped[1], d, quiet=True)
    assert preds.accuracy >= 0.95, preds.accuracy
    assert sorted(preds.truth.tolist()) == sorted(y.tolist())


def test_a_28x28_image_is_a_model_input_already(tmp_path, test_digits):
    """MNIST digits and collected crops: read back exactly, inverted only when dark on light."""
    x, _ = test_digits
    cv2.imwrite(str(tmp_path / "white_on_black.png"), x[0])
    cv2.imwrite(str(tmp_path / "ink_on_paper.png"), 255 - x[1])
    np.testing.assert_array_equal(images.read_digit(tmp_path / "white_on_black.png"), x[0])
    np.testing.assert_array_equal(images.read_digit(tmp_path / "ink_on_paper.png"), x[1])
    cv2.imwrite(str(tmp_path / "blank.png"), np.full((90, 60), 230, np.uint8))
    assert images.read_digit(tmp_path / "blank.png").shape == (28, 28)
    assert not images.read_digit(tmp_path / "blank.png").any()  # no ink: a blank digit


def test_one_suffix_set_for_every_reader(tmp_path):
    from edgedigits.deploy import sources

    assert sources.IMAGE_SUFFIXES is images.IMAGE_SUFFIXES and D.IMAGE_SUFFIXES is images.IMAGE_SUFFIXES
    (tmp_path / "notes.txt").write_text("not an image")
    (tmp_path / "fake.png").write_text("not a PNG either")
    assert images.is_image(tmp_path / "fake.png") and not images.is_image(tmp_path / "notes.txt")
    with pytest.raises(DataError, match=r"fake\.png: not a readable image"):
        images.read_digit(tmp_path / "fake.png")


def test_reading_images_needs_no_pillow(tmp_path):
    """A device install has OpenCV and no Pillow: folders of images are read all the same."""
    import subprocess
    import sys

    cv2.imwrite(str(tmp_path / "a.png"), np.full((50, 40), 220, np.uint8))
    code = ("import sys; sys.modules['PIL'] = None\n"  # any import of Pillow now fails
            "from edgedigits.train import data as D\n"
            f"d = D.load_folder({str(tmp_path)!r}); assert d.images.shape == (1, 28, 28); print('ok')")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr
