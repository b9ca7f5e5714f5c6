"""From a camera frame to MNIST-style digits: find each digit on paper and normalize it as MNIST was made.

Per frame (numbers for a 640x480 frame):
  1. grey, then the ink map: the paper's brightness is estimated at 1/4 resolution (a closing removes
     the dark strokes, a blur smooths the light) and the frame is subtracted from it, so uneven light
     and shadows fall away: ink = max(paper - frame, 0), dark pen on light paper -> bright on black;
  2. threshold: Otsu on the ink map, raised to a fraction of the strongest ink, so faint printed
     grid lines and paper texture stay below it; then long straight horizontal and vertical runs
     (the lines of squared or ruled paper) are removed;
  3. contours of the remaining ink, pieces of one digit merged, and boxes filtered by size, shape
     and ink density;
  4. reading order: boxes grouped into lines by vertical overlap, each line left to right;
  5. each digit normalized like MNIST: its ink cropped, strokes thickened to MNIST's width when the
     pen was thin, scaled to fit 20x20 keeping the aspect ratio, placed in 28x28 by its centre of mass.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np


CROSS = cv2.getStructuringElement(cv2.MORPH_CROSS, (3, 3))


@dataclass(frozen=True)
class SegmentConfig:
    min_height_frac: float = 0.04  # digit box height >= this fraction of the frame height
    max_height_frac: float = 0.9
    min_ink_frac: float = 0.35  # threshold >= this fraction of the strongest ink (drops faint grid lines)
    min_contrast: int = 24  # ... and never below this ink level (0..255): blank paper finds nothing
    line_frac: float = 0.25  # straight runs longer than this fraction of the frame are paper lines
    min_aspect: float = 0.08  # width / height of a digit box
    max_aspect: float = 1.6
    relative_height: float = 0.4  # drop boxes shorter than this fraction of the tallest digit
    stroke_target: float = 2.6  # MNIST's stroke width in the 20x20 box, pixels
    max_side: int = 320  # frames are searched at most this size, shrunk by a whole factor (640x480 -> 320x240);
    # at that size thin pen strokes and paper texture average out and the pipeline is 3x faster


@dataclass
class Digit:
    box: tuple[int, int, int, int]  # x, y, w, h in frame pixels
    image: np.ndarray  # (28, 28) uint8, white on black
    line: int = 0  # text line index, top to bottom


def to_gray(frame: np.ndarray) -> np.ndarray:
    if frame.ndim == 3:
        return cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY if frame.shape[2] == 3 else cv2.COLOR_BGRA2GRAY)
    return frame


def ink_map(gray: np.ndarray) -> np.ndarray:
    """Dark strokes on paper -> bright ink on black, independent of uneven lighting. (H, W) uint8."""
    h, w = gray.shape
    small = cv2.resize(gray, (max(w // 4, 1), max(h // 4, 1)), interpolation=cv2.INTER_AREA)
    k = max(3, (min(small.shape) // 12) | 1)  # wider than a stroke, narrower than a shadow edge
    paper = cv2.morphologyEx(small, cv2.MORPH_CLOSE, cv2.getStructuringElement(cv2.MORPH_RECT, (k, k)))
    paper = cv2.blur(paper, (k, k))
    paper = cv2.resize(paper, (w, h), interpolation=cv2.INTER_LINEAR_EXACT)  # bit-exact: the web app matches it
    return cv2.subtract(paper, gray)


def ink_threshold(ink: np.ndarray, cfg: SegmentConfig) -> float:
    """Otsu's threshold, raised to a fraction of the strongest ink, both from one histogram (of every
    other pixel of every other row: a quarter of the work, the same statistics)."""
    hist = cv2.calcHist([np.ascontiguousarray(ink[::2, ::2])], [0], None, [256], [0, 256]).ravel().astype(np.float64)
    p = hist / max(hist.sum(), 1)
    omega, mu = np.cumsum(p), np.cumsum(p * np.arange(256))
    valid = (omega > 1e-9) & (omega < 1 - 1e-9)  # both classes non-empty
    between = np.zeros(256)
    w = omega[valid]
    between[valid] = (mu[-1] * w - mu[valid]) ** 2 / (w * (1 - w))  # Otsu: between-class variance
    otsu = int(np.argmax(between))
    strongest = int(np.searchsorted(omega, 0.998))  # 99.8th percentile: the darkest pen strokes
    return max(otsu, cfg.min_ink_frac * strongest, cfg.min_contrast)


def binarize(ink: np.ndarray, cfg: SegmentConfig) -> np.ndarray:
    _, mask = cv2.threshold(ink, ink_threshold(ink, cfg), 255, cv2.THRESH_BINARY)
    return remove_lines(mask, cfg.line_frac)


def remove_lines(mask: np.ndarray, line_frac: float) -> np.ndarray:
    """Remove straight horizontal and vertical runs longer than line_frac of the frame: the printed
    lines of squared or ruled paper that were dark enough to pass the threshold. Rows and columns
    are checked first (cheap); the search runs at 1/4 resolution and only where lines may be."""
    h, w = mask.shape
    rows = cv2.reduce(mask, 1, cv2.REDUCE_AVG, dtype=cv2.CV_32F).ravel() / 255
    cols = cv2.reduce(mask, 0, cv2.REDUCE_AVG, dtype=cv2.CV_32F).ravel() / 255
    if rows.max(initial=0) < line_frac and cols.max(initial=0) < line_frac:
        return mask  # no row or column holds enough ink to be a line
    small = cv2.resize(mask, (max(w // 4, 1), max(h // 4, 1)), interpolation=cv2.INTER_AREA)
    small = (small > 40).astype(np.uint8) * 255
    sh, sw = small.shape
    lines = cv2.morphologyEx(small, cv2.MORPH_OPEN, cv2.getStructuringElement(cv2.MORPH_RECT, (int(sw * line_frac), 1)))
    lines |= cv2.morphologyEx(small, cv2.MORPH_OPEN, cv2.getStructuringElement(cv2.MORPH_RECT, (1, int(sh * line_frac))))
    if not lines.any():
        return mask
    lines = cv2.resize(lines, (w, h), interpolation=cv2.INTER_NEAREST)
    return cv2.subtract(mask, cv2.dilate(lines, np.ones((3, 3), np.uint8)))


def _merge(boxes: list[list[int]]) -> list[list[int]]:
    """Merge the pieces of one digit: boxes that overlap or share most of a column and nearly touch."""
    merged = True
    while merged and len(boxes) > 1:
        merged = False
        boxes.sort(key=lambda b: b[0])
        out = []
        for b in boxes:
            for o in out:
                ox = min(o[0] + o[2], b[0] + b[2]) - max(o[0], b[0])
                gap = max(o[1], b[1]) - min(o[1] + o[3], b[1] + b[3])
                tall = max(o[3], b[3])
                if ox > 0.6 * min(o[2], b[2]) and gap < 0.25 * tall:
                    x0, y0 = min(o[0], b[0]), min(o[1], b[1])
                    o[:] = [x0, y0, max(o[0] + o[2], b[0] + b[2]) - x0, max(o[1] + o[3], b[1] + b[3]) - y0]
                    merged = True
                    break
            else:
                out.append(list(b))
        boxes = out
    return boxes


def find_boxes(mask: np.ndarray, cfg: SegmentConfig) -> list[tuple[int, int, int, int]]:
    h, w = mask.shape
    joined = cv2.dilate(mask, np.ones((3, 3), np.uint8))  # bridge one-pixel breaks in thin strokes
    # outer contours = 8-connected components, less those inside another's hole (merged below anyway)
    contours, _ = cv2.findContours(joined, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    min_piece = max(3, int(cfg.min_height_frac * h * 0.25))
    boxes = [list(cv2.boundingRect(c)) for c in contours]  # x, y, w, h
    boxes = _merge([b for b in boxes if max(b[2], b[3]) >= min_piece])
    keep = []
    for x, y, bw, bh in boxes:
        if not (cfg.min_height_frac * h <= bh <= cfg.max_height_frac * h):
            continue
        if not (cfg.min_aspect <= bw / bh <= cfg.max_aspect):
            continue
        if x <= 0 or y <= 0 or x + bw >= w or y + bh >= h:
            continue  # cut by the frame's edge: not a whole digit
        fill = cv2.countNonZero(mask[y:y + bh, x:x + bw]) / float(bw * bh)
        if not 0.03 <= fill <= 0.75:
            continue
        keep.append((x, y, bw, bh))
    if keep:
        tallest = max(b[3] for b in keep)
        keep = [b for b in keep if b[3] >= cfg.relative_height * tallest]
    return keep


def _median(values: list[float]) -> float:
    v = sorted(values)
    m = len(v) // 2
    return v[m] if len(v) % 2 else (v[m - 1] + v[m]) / 2


def reading_order(boxes: list[tuple[int, int, int, int]]) -> list[tuple[tuple[int, int, int, int], int]]:
    """Group boxes into text lines by vertical overlap; lines top to bottom, each left to right."""
    lines: list[list[tuple[int, int, int, int]]] = []
    for b in sorted(boxes, key=lambda b: b[1] + b[3] / 2):
        cy = b[1] + b[3] / 2
        for line in lines:
            if _median([o[1] for o in line]) <= cy <= _median([o[1] + o[3] for o in line]):
                line.append(b)
                break
        else:
            lines.append([b])
    return [(b, i) for i, line in enumerate(lines) for b in sorted(line, key=lambda b: b[0])]


def stroke_width(mask: np.ndarray) -> float:
    """Mean stroke width of a binary digit: twice its area over its perimeter, the perimeter counted
    as the ink pixels that touch background (4-neighbours, outside the crop is background)."""
    area = cv2.countNonZero(mask)
    interior = cv2.countNonZero(cv2.erode(mask, CROSS, borderType=cv2.BORDER_CONSTANT, borderValue=0))
    return 2.0 * area / max(area - interior, 1)


def _round(v: float) -> int:
    """Half away from zero for the positive values here, as JavaScript's Math.round (web app parity)."""
    return int(np.floor(v + 0.5))


def to_mnist(ink: np.ndarray, mask: np.ndarray, cfg: SegmentConfig = SegmentConfig()) -> np.ndarray:
    """One digit's ink (any size, bright on black) and its mask -> (28, 28) uint8 in MNIST's layout."""
    x, y, w, h = cv2.boundingRect(mask)  # of the ink pixels
    if w == 0:
        return np.zeros((28, 28), np.uint8)
    ink = cv2.bitwise_and(ink, cv2.dilate(mask, np.ones((3, 3), np.uint8)))  # keep the soft edges
    ink, mask = ink[y:y + h, x:x + w], mask[y:y + h, x:x + w]
    h, w = ink.shape
    scale = 20.0 / max(h, w)
    # thin pen strokes: thicken at the source resolution until they will be MNIST-wide in 20x20
    grow = (cfg.stroke_target / scale - stroke_width(mask)) / 2
    if grow >= 0.5:
        r = _round(grow)
        kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))
        ink = cv2.dilate(cv2.copyMakeBorder(ink, r, r, r, r, cv2.BORDER_CONSTANT, value=0), kernel)
        h, w = ink.shape
        scale = 20.0 / max(h, w)
    nw, nh = max(1, _round(w * scale)), max(1, _round(h * scale))
    small = cv2.resize(ink, (nw, nh), interpolation=cv2.INTER_AREA).astype(np.float32)
    peak = small.max()
    if peak > 0:
        small *= 255.0 / peak  # MNIST strokes peak at full white whatever the pen's darkness
    # centre of mass (not cv2.moments: it reads an (N, 2) array, a digit 2 px wide, as a list of points)
    total = float(small.sum())
    cx = float(small.sum(0) @ np.arange(nw)) / total if total else nw / 2
    cy = float(small.sum(1) @ np.arange(nh)) / total if total else nh / 2
    out = np.zeros((28, 28), np.float32)
    x0, y0 = _round(14 - cx), _round(14 - cy)
    x0, y0 = min(max(x0, 0), 28 - nw), min(max(y0, 0), 28 - nh)
    out[y0:y0 + nh, x0:x0 + nw] = small
    return np.clip(out, 0, 255).astype(np.uint8)


def segment(frame: np.ndarray, cfg: SegmentConfig = SegmentConfig()) -> list[Digit]:
    """All digits of a frame, in reading order, each as a (28, 28) MNIST-style image."""
    gray = to_gray(frame)
    f = -(-max(gray.shape) // cfg.max_side)  # the smallest whole factor that fits max_side
    if f > 1:
        gray = cv2.resize(gray, (gray.shape[1] // f, gray.shape[0] // f), interpolation=cv2.INTER_AREA)
    ink = ink_map(gray)
    mask = binarize(ink, cfg)
    digits = []
    for (x, y, w, h), line in reading_order(find_boxes(mask, cfg)):
        image = to_mnist(ink[y:y + h, x:x + w], mask[y:y + h, x:x + w], cfg)
        box = (x * f, y * f, w * f, h * f)  # in the frame's pixels
        digits.append(Digit(box, image, line))
    return digits
