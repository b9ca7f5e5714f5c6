"""The contract every stage shares, defined once: what a digit is on its way into the model, what comes
out, and the settings of the camera pipeline that makes digits from frames.

    train      to_float(images) for training and evaluation
    convert    to_float(calibration digits); PREPROCESSING and LABELS written into the manifest
    deploy     to_float / quantize in the runners; SegmentConfig and CONFIDENCE in the camera pipeline
    web app    model.json carries PIXEL_SCALE, CONFIDENCE and SegmentConfig (deploy/webapp.py writes it)

Only numpy here: every stage, and a device with nothing but the light runtimes, can import it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edgedigits.errors import EdgeDigitsError

DIGIT_SHAPE = (28, 28)  # one digit: uint8, white on black, as MNIST
INPUT_SHAPE = (28, 28, 1)  # the model's input per digit: (N, 28, 28, 1) float32, NHWC
PIXEL_SCALE = 1 / 255  # x = pixel * PIXEL_SCALE, so x is in [0, 1]
LABELS = [str(d) for d in range(10)]  # output k is the probability of LABELS[k]
CONFIDENCE = 0.6  # below this probability a digit is shown as "?"
APP_SCALE = 4  # the app models' input (convert/mobile.py): RGB, dark on light, a 4x4 square per MNIST pixel
APP_SIZE = APP_SCALE * DIGIT_SHAPE[0]  # 112


def class_name(name) -> str:
    """A class name as it is compared and stored: NFC (an 'é' typed or composed is one name), without
    a byte-order mark or surrounding space. Wherever names are read: --labels, folders, manifests."""
    import unicodedata

    return unicodedata.normalize("NFC", str(name)).replace("\ufeff", "").strip()

PREPROCESSING = {  # written into every manifest, for whoever runs the model without this package
    "input": "(N, 28, 28, 1) float32, NHWC",
    "polarity": "white digit on black background (MNIST convention)",
    "scale": "x = pixel / 255, so x is in [0, 1]",
    "digit_box": "the digit's ink cropped, its stroke width brought to MNIST's (SegmentConfig.stroke_target "
                 "pixels once in 20x20), "
                 "scaled to fit 20x20 keeping its aspect ratio, its brightest ink made 255, placed in 28x28 by "
                 "its centre of mass; an image of exactly 28x28 is a model input already and is taken as it is "
                 "(edgedigits/images.py: to_digit, the camera pipeline's to_mnist)",
    "quantized_input": "int8/uint8 models take q = round(x / scale) + zero_point from inputs[0].quantization",
}


def check_digits(digits: np.ndarray) -> np.ndarray:
    """(N, 28, 28) or one (28, 28) uint8 digit -> (N, 28, 28) uint8; anything else is refused."""
    digits = np.asarray(digits)
    if digits.ndim == 2:
        digits = digits[None]
    if digits.ndim != 3 or digits.shape[1:] != DIGIT_SHAPE or digits.dtype != np.uint8:
        raise EdgeDigitsError(f"expected digits of shape (N, 28, 28) and dtype uint8, got {digits.shape} {digits.dtype}")
    return digits


def to_float(digits: np.ndarray) -> np.ndarray:
    """(N, 28, 28) uint8 -> (N, 28, 28, 1) float32 in [0, 1]: the model's input."""
    return (check_digits(digits).astype(np.float32) * np.float32(PIXEL_SCALE))[..., None]


def app_image(digits: np.ndarray) -> np.ndarray:
    """(N, 28, 28) uint8 digits -> (N, APP_SIZE, APP_SIZE, 3) uint8: each as an app passes it to an app model,
    RGB, dark ink on light paper, each pixel a square of 4x4."""
    big = np.repeat(np.repeat(255 - check_digits(digits), APP_SCALE, axis=1), APP_SCALE, axis=2)
    return np.repeat(big[..., None], 3, axis=-1)


def quantize(x: np.ndarray, scale: float, zero_point: int, dtype) -> np.ndarray:
    # Affine quantization, as TFLite defines it: q = round(x / scale) + zero_point, clipped to the
    # dtype's range (int8: -128..127, uint8: 0..255). For the pixel input, scale is about 1/255 and
    # the zero point -128 (int8) or 0 (uint8), so q is the pixel value shifted into range.
    info = np.iinfo(dtype)
    return np.clip(np.round(x / scale) + zero_point, info.min, info.max).astype(dtype)


def dequantize(q: np.ndarray, scale: float, zero_point: int) -> np.ndarray:
    return (q.astype(np.float32) - zero_point) * np.float32(scale)


@dataclass(frozen=True)
class SegmentConfig:
    """The camera pipeline's settings (deploy/preprocess.py; the web app receives them in model.json)."""
    max_side: int = 320  # frames are searched at most this size, shrunk by a whole factor (640x480 -> 320x240)
    small_digit: int = 20  # ... and searched again at twice the resolution when every digit is shorter than this
    min_height: int = 8  # a digit is at least this many pixels tall at the search size
    min_ink_frac: float = 0.35  # threshold >= this fraction of the strongest ink (drops faint grid lines)
    min_contrast: int = 20  # ... and never below this ink level (0..255): blank paper finds nothing
    low_frac: float = 0.5  # hysteresis: ink above this fraction of the threshold joins a stroke it touches
    paper_frac: float = 1 / 12  # the paper's brightness is estimated over this fraction of the frame's side,
    # narrow enough to follow a shadow's edge; in a close-up, over half the ink's height instead
    line_span: float = 0.8  # a straight run across this fraction of the frame, with a parallel one, is paper
    max_aspect: float = 2.2  # width / height of a digit box
    max_stroke: float = 0.4  # stroke width / box height: above it, a filled blob (a shadow's corner, a thumb)
    relative_height: float = 0.4  # drop boxes shorter than this fraction of the tallest digit
    stroke_target: float = 2.6  # MNIST's stroke width in the 20x20 box, pixels
    single_side: int = 64  # images at most this size are one digit
    min_digit: float = 0.1  # the verifier's probability that a piece is a digit, below which it is not read
    sure_digit: float = 0.5  # ... below which it is read only when the classifier is confident (never a "?")
