"""Images in, digits out: the one image reader and the one digit normalization every stage uses.

    IMAGE_SUFFIXES     the image files a folder is searched for (camera sources, `train --data DIR`,
                       `predict FOLDER`, `benchmark photos`)
    read_image(path)   (H, W, 3) uint8 BGR, decoded by OpenCV after the header's size is checked
                       (imagesize.check_image): no Pillow, so a device install reads images too
    to_digit(image)    one digit's image -> (28, 28) uint8 white on black, the model's input
    read_digit(path)   both

to_digit normalizes a digit as MNIST was made and as the camera pipeline does (deploy/preprocess.py,
`segment(image, single=True)`): ink found against the paper, cropped, its stroke width brought to
MNIST's, scaled to fit 20x20 keeping its aspect ratio, placed in 28x28 by its centre of mass
(contract.PREPROCESSING["digit_box"]). An image of exactly 28x28 is already a model input (an MNIST
digit, or a crop `deploy --collect` wrote: what the model saw) and is taken as it is, only inverted when
it is dark on light: normalizing it again would move and rescale what the model was shown.

OpenCV is imported inside the functions (after imagesize.limit_opencv), so importing this is light.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from edgedigits.contract import DIGIT_SHAPE
from edgedigits.errors import DataError
from edgedigits.imagesize import check_image, limit_opencv

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".pgm", ".ppm"})


def is_image(path: Path) -> bool:
    """A file whose suffix is one of IMAGE_SUFFIXES (hidden files, such as macOS's ._x.png, are not)."""
    return path.suffix.lower() in IMAGE_SUFFIXES and not path.name.startswith(".") and path.is_file()


def read_image(path: str | os.PathLike) -> np.ndarray:
    """(H, W, 3) uint8 BGR; the size checked from the header first (imagesize.check_image). Raises
    DataError naming the file when it is too large or not a readable image."""
    limit_opencv()  # before OpenCV's first imread
    import cv2

    check_image(path)
    try:
        img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    except cv2.error as e:  # a header OpenCV itself refuses (its OPENCV_IO_MAX_IMAGE_PIXELS)
        raise DataError(f"{path}: not a readable image ({str(e).strip().splitlines()[-1][:120]})") from None
    if img is None:
        raise DataError(f"{path}: not a readable image")
    return img


def to_digit(image: np.ndarray) -> np.ndarray:
    """One digit's image (any size; BGR, BGRA or grey; dark on light or light on dark) -> (28, 28)
    uint8, white on black (see the module's docstring). A blank image is a blank digit."""
    from edgedigits.deploy.preprocess import segment, to_gray  # the camera pipeline's normalization

    found = segment(to_gray(np.asarray(image)), single=True)  # a 28x28 image is taken as it is
    return found[0].image if found else np.zeros(DIGIT_SHAPE, np.uint8)


def read_digit(path: str | os.PathLike) -> np.ndarray:
    """The image file of one digit -> (28, 28) uint8, white on black."""
    return to_digit(read_image(path))
