"""From a camera frame or a photo to MNIST-style digits: find each digit on paper, keep every one of its
strokes, and normalize it as MNIST was made.

Per frame (numbers for a 640x480 frame, searched at 320x240):
  1. grey, light-on-dark images (a blackboard, an MNIST digit) inverted; then the ink map: the paper's
     brightness is estimated by a closing (at 1/4 resolution) over a window narrow enough to follow a
     shadow's edge, widened in a close-up where a marker's stroke is wider than it, and the frame is
     subtracted from it, so uneven light, shadows and tinted paper fall away:
     ink = max(paper - frame, 0), dark pen on light paper -> bright on black;
  2. threshold with hysteresis: a pixel is ink when it is above Otsu's threshold, raised to a fraction
     of the strongest ink (faint printed grid lines and paper texture stay below it), or when it is
     above half of that and connected to such a pixel: a blurry or unevenly inked stroke stays whole;
  3. the lines of ruled or squared paper are removed, and only they: straight runs that cross most of
     the frame, two or more in parallel. A long stroke of a digit (the stem of a 1) is never one of them;
  4. connected pieces, pieces of one digit merged (one above the other, or one inside the other),
     boxes kept by size and shape; a digit may touch the frame's edge or fill the frame;
  5. scale: when every digit found is small at the search size, or none is found in a large photo
     (a full phone photo with a small digit), the frame is searched again at twice the resolution;
  6. reading order: left to right, each box joins the line whose last box it overlaps most in height
     (a line may slope); lines top to bottom;
  7. each digit normalized like MNIST: its ink cropped, its stroke width brought to MNIST's (thin pen
     thickened, thick marker thinned), scaled to fit 20x20 keeping the aspect ratio, and placed in 28x28
     by its centre of mass.
With `single`, the whole image is one digit (a crop, as people feed MNIST models): steps 4-6 are skipped
and all ink is the digit. Images of at most `single_side` pixels are always read that way.

deploy/web/preprocess.js is the same pipeline in JavaScript, kept in step by tests/deploy/test_web_parity.py
(function by function, in Node) and tests/deploy/test_web.py (in Chromium).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import cv2
import numpy as np

from edgedigits.contract import SegmentConfig  # the settings, shared with the web app

MAX_PIECES = 400  # pieces of ink looked at in one frame, the largest first
CROSS = cv2.getStructuringElement(cv2.MORPH_CROSS, (3, 3))
SQUARE = np.ones((3, 3), np.uint8)


@dataclass
class Digit:
    box: tuple[int, int, int, int]  # x, y, w, h in frame pixels
    image: np.ndarray  # (28, 28) uint8, white on black
    line: int = 0  # text line index, top to bottom
    p_digit: float = 1.0  # the verifier's probability that this is one digit (1 without a verifier)


def _round(v: float) -> int:
    """Half away from zero for the positive values here, as JavaScript's Math.round (web app parity)."""
    return int(np.floor(v + 0.5))


def to_gray(frame: np.ndarray) -> np.ndarray:
    """BGR, BGRA or grey -> grey. (H, W) uint8."""
    if frame.ndim == 3:
        return cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY if frame.shape[2] == 3 else cv2.COLOR_BGRA2GRAY)
    return frame


def _light_on_dark(gray: np.ndarray) -> bool:
    """Mostly dark with some bright strokes: chalk on a board, or MNIST's own white-on-black digits."""
    hist = cv2.calcHist([np.ascontiguousarray(gray[::2, ::2])], [0], None, [256], [0, 256]).ravel()
    cum = np.cumsum(hist) / max(hist.sum(), 1)
    median, bright = int(np.searchsorted(cum, 0.5)), int(np.searchsorted(cum, 0.995))
    return median < 80 and bright > median + 100


def ink_map(gray: np.ndarray, k: int) -> np.ndarray:
    """Dark strokes on paper -> bright ink on black, independent of uneven light and the paper's tint.
    The paper's brightness is a closing over k pixels (wider than any stroke), at 1/4 resolution, smoothed
    by a box blur where that makes it no brighter: the blur alone would spill the bright side of a sharp
    edge (a hard shadow, a sheet on a desk) into the dark side as a band of false ink.
    (H, W) uint8."""
    h, w = gray.shape
    small = cv2.resize(gray, (max(w // 4, 1), max(h // 4, 1)), interpolation=cv2.INTER_AREA)
    k = max(3, _round(k / 4) | 1)
    paper = cv2.morphologyEx(small, cv2.MORPH_CLOSE, cv2.getStructuringElement(cv2.MORPH_RECT, (k, k)))
    paper = cv2.min(paper, cv2.blur(paper, (k, k)))  # smooth, but no brighter than the paper at a sharp edge
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


def cc_stats(mask: np.ndarray):
    """cv2.connectedComponentsWithStats (8-neighbours) by Grana's block-based algorithm: the same labels
    and stats as the default, in a third of its time (OpenCV 5.0's default took 0.5 ms on a 320x240
    mask on one core, measured 2026-12-01)."""
    return cv2.connectedComponentsWithStatsWithAlgorithm(mask, 8, cv2.CV_32S, cv2.CCL_GRANA)


def cc_labels(mask: np.ndarray):
    """(n, labels) of the 8-connected pieces: the labels of cc_stats, without its stats."""
    return cv2.connectedComponentsWithAlgorithm(mask, 8, cv2.CV_32S, cv2.CCL_BBDT)


CONTOUR_PIECES = 32  # cc_boxes: up to this many pieces, their boxes from their outlines (break-even near 40)


def cc_boxes(mask: np.ndarray):
    """(n, labels, boxes): cc_stats' labels and its stats' boxes ((n, 4) x, y, w, h; row 0 the frame),
    without areas. OpenCV 5 spends two thirds of connectedComponentsWithStats on the stats (0.43 of
    0.63 ms on a 640x480 frame's mask, docs/notes/2026-12-08.md), where the outer outlines of a few
    pieces (cv2.findContours: the 8-connected pieces, each an outline without a parent; its box is
    the piece's) take 0.09 ms. A frame of many pieces (gravel, text), whose outlines are long, gets
    OpenCV's stats, its pieces labelled twice then (the count decides; 0.28 of 0.85 ms on gravel at
    320x320, the same note)."""
    n, labels = cc_labels(mask)
    if n - 1 > CONTOUR_PIECES:
        return n, labels, cc_stats(mask)[2][:, :4]
    h, w = mask.shape
    boxes = np.zeros((n, 4), np.int32)
    boxes[0] = (0, 0, w, h)
    if n > 1:
        outlines, tree = cv2.findContours(mask, cv2.RETR_CCOMP, cv2.CHAIN_APPROX_SIMPLE)
        for c, parent in zip(outlines, tree[0, :, 3]):
            if parent < 0:  # an outer outline (those with a parent are holes)
                x, y = c[0, 0]
                boxes[labels[y, x]] = cv2.boundingRect(c)
    return n, labels, boxes


def hysteresis(ink: np.ndarray, high: float, low: float, specks: bool = False) -> np.ndarray:
    """Pixels above `high`, and the pixels above `low` connected to them (8-neighbours). (H, W) 0/255.
    With `specks`, pieces of at most 3x3 pixels are left out (drop_specks, where it costs a third)."""
    _, weak = cv2.threshold(ink, low, 255, cv2.THRESH_BINARY)
    if specks:
        n, labels, stats = cc_boxes(weak)
    else:
        n, labels = cc_labels(weak)
    lut = np.zeros(max(n, 256), np.uint8)
    lut[labels[ink > high]] = 255  # the pieces that hold a strong pixel
    lut[0] = 0
    if specks:  # the pieces are the mask's own: those of the weak pixels that hold a strong one
        lut[:n][(stats[:, cv2.CC_STAT_WIDTH] <= 3) & (stats[:, cv2.CC_STAT_HEIGHT] <= 3)] = 0
    if n <= 256:  # the usual case: an 8-bit look-up table, OpenCV's fastest path
        return cv2.LUT(labels.astype(np.uint8), lut[:256])
    return lut[labels]


def binarize(ink: np.ndarray, cfg: SegmentConfig, specks: bool = False) -> np.ndarray:
    """The ink map's mask (0/255): hysteresis above the threshold, ruled paper's lines removed; with
    `specks`, without specks of at most 3x3 pixels (drop_specks)."""
    t = ink_threshold(ink, cfg)
    mask = hysteresis(ink, t, cfg.low_frac * t, specks)
    lined = remove_paper_lines(mask, cfg.line_span)
    if specks and lined is not mask:  # removing lines can leave specks of their own
        lined = drop_specks(lined)
    return lined


def _long_runs(small: np.ndarray, length: int, horizontal: bool, span: int) -> np.ndarray:
    """Straight runs of at least `length` pixels whose pieces together span `span` pixels, when there
    are two or more of them (the ruled or squared lines of paper). 0/255 at `small`'s size."""
    kernel = cv2.getStructuringElement(cv2.MORPH_RECT, (length, 1) if horizontal else (1, length))
    runs = cv2.morphologyEx(small, cv2.MORPH_OPEN, kernel)
    n, labels, stats, _ = cc_stats(runs)
    extent = stats[1:, cv2.CC_STAT_WIDTH if horizontal else cv2.CC_STAT_HEIGHT]
    # a printed line is thin (about a pixel here, two or three when it slopes); the strokes of large
    # digits written side by side in a close-up are as long, but thick
    thin = stats[1:, cv2.CC_STAT_AREA] <= 3 * extent
    lines = np.flatnonzero((extent >= span) & thin) + 1
    if len(lines) < 2:
        return np.zeros_like(small)  # one long stroke alone: the stem of a digit, or a lone line
    keep = np.zeros(n, bool)
    keep[lines] = True
    return keep[labels].astype(np.uint8) * 255


def remove_paper_lines(mask: np.ndarray, line_span: float) -> np.ndarray:
    """Remove the printed lines of ruled or squared paper that were dark enough to pass the threshold:
    straight runs that cross at least `line_span` of the frame, two or more in parallel. Upright lines
    go only beside level ones (squared paper): alone, upright strokes that cross the frame are the
    stems of 1s, 4s and 7s in a close-up of digits side by side, as many and as straight as paper's.
    Rows and columns are checked first (cheap); the search runs at 1/4 resolution, where a slight tilt
    stays within a row."""
    h, w = mask.shape
    rows = cv2.reduce(mask, 1, cv2.REDUCE_AVG, dtype=cv2.CV_32F).ravel() / 255
    cols = cv2.reduce(mask, 0, cv2.REDUCE_AVG, dtype=cv2.CV_32F).ravel() / 255
    if (rows >= line_span / 2).sum() < 2 and (cols >= line_span / 2).sum() < 2:
        return mask  # fewer than two rows or columns hold enough ink to be lines
    small = cv2.resize(mask, (max(w // 4, 1), max(h // 4, 1)), interpolation=cv2.INTER_AREA)
    small = (small > 40).astype(np.uint8) * 255
    sh, sw = small.shape
    lines = _long_runs(small, max(2, sw // 8), True, _round(sw * line_span))
    if not lines.any():
        return mask
    lines |= _long_runs(small, max(2, sh // 8), False, _round(sh * line_span))
    lines = cv2.resize(lines, (w, h), interpolation=cv2.INTER_NEAREST)
    return cv2.subtract(mask, cv2.dilate(lines, SQUARE))


def merge_groups(boxes: list[list[int]]) -> list[list[int]]:
    """Indices of the pieces of one digit: boxes that share most of a column and nearly touch (the parts
    of a 5 or a broken stroke), or one mostly inside the other, merged until no two groups' boxes are.
    Each round tests every pair of group boxes at once."""
    groups = [[i] for i in range(len(boxes))]
    b = np.array(boxes, np.int64).reshape(-1, 4)
    for _ in range(8):  # a chain of pieces closes within a few rounds
        if len(groups) < 2:
            break
        x0, y0, x1, y1 = b[:, 0], b[:, 1], b[:, 0] + b[:, 2], b[:, 1] + b[:, 3]
        ox = np.minimum(x1[:, None], x1[None]) - np.maximum(x0[:, None], x0[None])
        oy = np.minimum(y1[:, None], y1[None]) - np.maximum(y0[:, None], y0[None])
        minw = np.minimum(b[:, 2][:, None], b[:, 2][None])
        minh = np.minimum(b[:, 3][:, None], b[:, 3][None])
        tall = np.maximum(b[:, 3][:, None], b[:, 3][None])
        link = ((ox > 0.6 * minw) & (-oy < 0.25 * tall)) | ((ox > 0.5 * minw) & (oy > 0.5 * minh))
        np.fill_diagonal(link, False)
        if not link.any():
            break
        parent = list(range(len(groups)))

        def root(i):
            while parent[i] != i:
                parent[i] = parent[parent[i]]
                i = parent[i]
            return i

        for i, j in zip(*np.nonzero(np.triu(link))):
            parent[root(int(i))] = root(int(j))
        joined: dict[int, list[int]] = {}
        for i in range(len(groups)):
            joined.setdefault(root(i), []).append(i)
        groups = [[m for i in members for m in groups[i]] for members in joined.values()]
        b = np.array([[x0[m].min(), y0[m].min(), x1[m].max() - x0[m].min(), y1[m].max() - y0[m].min()]
                      for m in joined.values()], np.int64)
    return groups


def union_box(boxes) -> tuple[int, int, int, int]:
    """The box (x, y, w, h) around every box of `boxes`."""
    x0, y0 = min(b[0] for b in boxes), min(b[1] for b in boxes)
    return (x0, y0, max(b[0] + b[2] for b in boxes) - x0, max(b[1] + b[3] for b in boxes) - y0)


def drop_specks(mask: np.ndarray) -> np.ndarray:
    """The mask without specks of at most 3x3 pixels (the dots of dotted squared paper, dust, sensor
    noise): joined to a digit by the pieces' dilation they would make it unreadable."""
    n, labels, stats = cc_boxes(mask)
    speck = (stats[:, cv2.CC_STAT_WIDTH] <= 3) & (stats[:, cv2.CC_STAT_HEIGHT] <= 3)
    speck[0] = False
    ids = np.flatnonzero(speck)
    if not len(ids):
        return mask
    # only the specks' own boxes are looked at (3x3 each), not the whole frame
    dy, dx = np.divmod(np.arange(9), 3)
    ys = np.minimum(stats[ids, cv2.CC_STAT_TOP][:, None] + dy, mask.shape[0] - 1)
    xs = np.minimum(stats[ids, cv2.CC_STAT_LEFT][:, None] + dx, mask.shape[1] - 1)
    hit = labels[ys, xs] == ids[:, None]
    mask = mask.copy()
    mask[ys[hit], xs[hit]] = 0
    return mask


def components(mask: np.ndarray, cfg: SegmentConfig) -> tuple[np.ndarray, list[tuple[int, list[int]]]]:
    """The ink's connected pieces large enough to be part of a digit: (labels, [(label, [x, y, w, h])]).
    A strip that hugs the frame's edge for over a third of it (touching it there, three times longer
    than it is deep) is what lies beyond the paper (a table, the sheet's edge) and is erased from the
    mask; a digit that touches or fills the frame is as deep as it is long."""
    h, w = mask.shape
    joined = cv2.dilate(mask, SQUARE)  # bridge one-pixel breaks in thin strokes
    n, labels, stats = cc_boxes(joined)
    contact = np.zeros((4, n), np.int64)
    for i, edge in enumerate((labels[0], labels[-1], labels[:, 0], labels[:, -1])):
        contact[i] = np.bincount(edge, minlength=n)
    bw, bh = stats[:, cv2.CC_STAT_WIDTH], stats[:, cv2.CC_STAT_HEIGHT]
    beyond = ((contact[:2].max(0) * 3 > w) & (bh * 3 < bw)) | ((contact[2:].max(0) * 3 > h) & (bw * 3 < bh))
    beyond[0] = False
    if beyond.any():
        mask[beyond[labels]] = 0
    min_piece = max(2, cfg.min_height // 3)
    keep = [i for i in range(1, n) if not beyond[i] and max(stats[i, 2], stats[i, 3]) >= min_piece]
    if len(keep) > MAX_PIECES:  # a frame of clutter (stars, gravel): its largest pieces are enough
        keep = sorted(sorted(keep, key=lambda i: -int(bw[i]) * int(bh[i]))[:MAX_PIECES])
    return labels, [(i, [int(v) for v in stats[i, :4]]) for i in keep]


def pieces(mask: np.ndarray, cfg: SegmentConfig) -> list[list[int]]:
    """Boxes (x, y, w, h) of the ink's connected pieces large enough to be part of a digit."""
    return [box for _, box in components(mask, cfg)[1]]


def find_boxes(mask: np.ndarray, cfg: SegmentConfig, comps=None, groups=None,
               tallest: bool = False) -> list[tuple[int, int, int, int]]:
    """The digits' boxes by the geometric rules. `comps`: components() of the mask, and `groups`:
    merge_groups() of its boxes, where the caller has them already. With `tallest`, only the tallest
    box (where segmentation by recognition decides the rest, segment() needs no more)."""
    pieces = [box for _, box in (comps or components(mask, cfg))[1]]
    keep = []
    unions = [union_box([pieces[i] for i in g]) for g in (merge_groups(pieces) if groups is None else groups)]
    if tallest:
        unions.sort(key=lambda b: -b[3])
    for x, y, bw, bh in unions:
        if bh < cfg.min_height or bw / bh > cfg.max_aspect:
            continue
        box = mask[y:y + bh, x:x + bw]
        if cv2.countNonZero(box) < 0.03 * bw * bh or stroke_width(box) > cfg.max_stroke * bh:
            # a speck's outline, or a filled blob: stroke width / height measured at most 0.17 on the real
            # photos, 0.31 on thick generated MNIST digits; a marker 1 is a narrow bar, its stroke as wide
            # as its box but far shorter than its height
            continue
        keep.append((x, y, bw, bh))
        if tallest:
            return keep
    if keep:
        tallest = max(b[3] for b in keep)
        keep = [b for b in keep if b[3] >= cfg.relative_height * tallest]
    return keep


def _median(values: list[float]) -> float:
    v = sorted(values)
    m = len(v) // 2
    return v[m] if len(v) % 2 else (v[m - 1] + v[m]) / 2


def reading_order(boxes: list[tuple[int, int, int, int]]) -> list[tuple[tuple[int, int, int, int], int]]:
    """Group boxes into text lines, lines top to bottom, each left to right. Left to right, a box joins
    the line whose last box it overlaps most in height (at least half of the shorter): a line may
    slope, as handwriting on a sheet held at an angle does."""
    lines: list[list[tuple[int, int, int, int]]] = []
    for b in sorted(boxes, key=lambda b: b[0]):
        best, best_overlap = None, 0.5
        for line in lines:
            o = line[-1]
            overlap = (min(o[1] + o[3], b[1] + b[3]) - max(o[1], b[1])) / min(o[3], b[3])
            if overlap > best_overlap:
                best, best_overlap = line, overlap
        if best is None:
            lines.append([b])
        else:
            best.append(b)
    lines.sort(key=lambda line: _median([b[1] + b[3] / 2 for b in line]))
    return [(b, i) for i, line in enumerate(lines) for b in line]


def stroke_width(mask: np.ndarray) -> float:
    """Mean stroke width of a binary digit: twice its area over its perimeter, the perimeter counted
    as the ink pixels that touch background (4-neighbours, outside the crop is background)."""
    area = cv2.countNonZero(mask)
    interior = cv2.countNonZero(cv2.erode(mask, CROSS, borderType=cv2.BORDER_CONSTANT, borderValue=0))
    return 2.0 * area / max(area - interior, 1)


@lru_cache(maxsize=None)
def _disc(r: int) -> np.ndarray:
    return cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))


LARGE = 80  # to_mnist: a piece at least twice this size is shrunk first
_RAMP = np.arange(28, dtype=np.float64)  # to_mnist: pixel positions, for the centre of mass


def to_mnist(ink: np.ndarray, mask: np.ndarray, cfg: SegmentConfig = SegmentConfig()) -> np.ndarray:
    """One digit's ink (any size, bright on black) and its mask -> (28, 28) uint8 in MNIST's layout.
    (It runs for every group the verifier scores: each numpy or OpenCV call here costs a microsecond
    or more, several per group and frame.)"""
    x, y, w, h = cv2.boundingRect(mask)  # of the ink pixels
    if w == 0:
        return np.zeros((28, 28), np.uint8)
    if (w, h) != (mask.shape[1], mask.shape[0]):
        ink, mask = ink[y:y + h, x:x + w], mask[y:y + h, x:x + w]
    ink = cv2.bitwise_and(ink, cv2.dilate(mask, SQUARE))  # keep the soft edges, drop the paper
    k = max(h, w) // LARGE
    if k >= 2:  # a large piece is first shrunk by a whole factor (padded to a multiple of it): growing a
        # thin stroke of a 300 px piece at its own size took a disc of radius 10 (milliseconds)
        ph, pw = -h % k, -w % k
        ink = cv2.copyMakeBorder(ink, 0, ph, 0, pw, cv2.BORDER_CONSTANT, value=0)
        mask = cv2.copyMakeBorder(mask, 0, ph, 0, pw, cv2.BORDER_CONSTANT, value=0)
        size = ((w + pw) // k, (h + ph) // k)
        ink = cv2.resize(ink, size, interpolation=cv2.INTER_AREA)
        mask = np.where(cv2.resize(mask, size, interpolation=cv2.INTER_AREA) > 0, 255, 0).astype(np.uint8)
        h, w = ink.shape
    # stroke width to MNIST's in 20x20, at the source resolution: thicken a thin pen, thin a marker
    grow = (cfg.stroke_target / (20.0 / max(h, w)) - stroke_width(mask)) / 2
    if grow >= 0.5:
        r = _round(grow)
        ink = cv2.dilate(cv2.copyMakeBorder(ink, r, r, r, r, cv2.BORDER_CONSTANT, value=0), _disc(r))
    elif grow <= -1:
        r = _round(-grow)
        thin = cv2.erode(mask, _disc(r), borderType=cv2.BORDER_CONSTANT, borderValue=0)
        if cv2.countNonZero(thin) >= cv2.countNonZero(mask) // 4:  # a stroke, not a dot, survives
            ink = cv2.bitwise_and(ink, thin)
            x, y, w, h = cv2.boundingRect(thin)
            ink = ink[y:y + h, x:x + w]
    h, w = ink.shape
    scale = 20.0 / max(h, w)
    nw, nh = max(1, _round(w * scale)), max(1, _round(h * scale))
    small = cv2.resize(ink, (nw, nh), interpolation=cv2.INTER_AREA).astype(np.float32)
    peak = small.max()
    if peak > 0:
        small *= 255.0 / peak  # MNIST strokes peak at full white whatever the pen's darkness
    # centre of mass (not cv2.moments: it reads an (N, 2) array, a digit 2 px wide, as a list of points)
    total = float(small.sum())
    cx = float(small.sum(0) @ _RAMP[:nw]) / total if total else nw / 2
    cy = float(small.sum(1) @ _RAMP[:nh]) / total if total else nh / 2
    out = np.zeros((28, 28), np.uint8)
    x0, y0 = _round(14 - cx), _round(14 - cy)
    x0, y0 = min(max(x0, 0), 28 - nw), min(max(y0, 0), 28 - nh)
    out[y0:y0 + nh, x0:x0 + nw] = small  # at most 255: the peak (truncated, as astype would)
    return out


def _shrink(gray: np.ndarray, f: int) -> np.ndarray:
    return cv2.resize(gray, (gray.shape[1] // f, gray.shape[0] // f), interpolation=cv2.INTER_AREA) if f > 1 else gray


def _search(small: np.ndarray, cfg: SegmentConfig, single: bool, verified: bool = False):
    """(ink, mask, boxes, comps) of the frame at the search size (comps: components() of the mask and,
    unless `single`, merge_groups() of its pieces' boxes).
    The paper is first estimated over a narrow window, which follows shadows. When the ink found spans
    much more than the window (a close-up, where a marker's stroke can be wider than the window and
    comes out hollow, as outlines in pieces), it is estimated again over half the height of that ink.
    With `verified` (segmentation by recognition follows: group.read), specks of at most 3x3 pixels are
    dropped first (drop_specks), and of the boxes only the tallest is found (segment() needs no more)."""
    k = min(small.shape) * cfg.paper_frac
    for again in (False, True):
        ink = ink_map(small, _round(k))
        mask = binarize(ink, cfg, verified)
        comps = components(mask, cfg)  # (erases what lies beyond the paper: before the extent)
        if again:
            break
        extent = ink_extent(mask, k)
        if extent / 2 <= 1.5 * k:
            break
        k = min(extent / 2, min(small.shape) / 3)
    if single:
        boxes = _single_box([box for _, box in comps[1]])
    else:
        groups = merge_groups([box for _, box in comps[1]])
        boxes = find_boxes(mask, cfg, comps, groups, tallest=verified)
        comps = (*comps, groups)  # group.read clusters the pieces the same way
    return ink, mask, boxes, comps


def ink_extent(mask: np.ndarray, k: float) -> int:
    """The height of the tallest cluster of ink, pieces less than k apart joined (the outline pieces of
    one hollow digit), measured at 1/4 resolution. Pixels at mask's size."""
    h, w = mask.shape
    small = cv2.resize(mask, (max(w // 4, 1), max(h // 4, 1)), interpolation=cv2.INTER_AREA)
    r = max(1, _round(k / 4))
    joined = cv2.dilate((small > 0).astype(np.uint8), cv2.getStructuringElement(cv2.MORPH_RECT, (r, r)))
    _, _, stats, _ = cc_stats(joined)
    return 4 * int(stats[1:, cv2.CC_STAT_HEIGHT].max(initial=0))


def _single_box(boxes: list[list[int]]) -> list[tuple[int, int, int, int]]:
    """The one box around every piece at least a fifth the size of the largest (specks of dust and
    paper texture far from the digit would stretch it)."""
    if not boxes:
        return []
    largest = max(max(b[2], b[3]) for b in boxes)
    boxes = [b for b in boxes if max(b[2], b[3]) >= largest / 5]
    x0, y0 = min(b[0] for b in boxes), min(b[1] for b in boxes)
    x1, y1 = max(b[0] + b[2] for b in boxes), max(b[1] + b[3] for b in boxes)
    return [(x0, y0, x1 - x0, y1 - y0)]


def segment(frame: np.ndarray, cfg: SegmentConfig = SegmentConfig(), single: bool = False, verify=None,
            candidates: bool = False) -> list[Digit]:
    """All digits of a frame, in reading order, each as a (28, 28) MNIST-style image. With `single`, the
    whole image is one digit; a 28x28 image is one digit taken as it is (inverted if dark on light).

    With `verify` (a function (N, 28, 28) uint8 -> (N,) probability that each is a digit: the digit
    verifier), pieces are grouped and split by what the verifier reads best, pieces that no grouping
    makes a digit are dropped, and lines may run in any direction (see group.py). Without it, the
    geometric rules alone decide (--no-verifier, and models of other classes than 0-9).
    With `candidates`, every candidate group the verifier would score is returned instead (training data)."""
    gray = to_gray(frame)
    if gray.shape == (28, 28):  # already a model input (an MNIST digit, a crop --collect wrote): as it is
        return [Digit((0, 0, 28, 28), (255 - gray if gray.mean() > 127 else gray).astype(np.uint8))]
    single = single or max(gray.shape) <= cfg.single_side
    f = -(-max(gray.shape) // cfg.max_side)  # the smallest whole factor that fits max_side
    small = _shrink(gray, f)
    if _light_on_dark(small):  # judged at the search size: a 12 MP photo costs no more than a frame
        gray = 255 - gray
        small = _shrink(gray, f)
    verified = not single and (verify is not None or candidates)
    ink, mask, boxes, comps = _search(small, cfg, single, verified)
    tallest = max((b[3] for b in boxes), default=0)
    if (f > 1 and 0 < tallest < cfg.small_digit) or (f >= 3 and not boxes):
        # only small digits at this size, or none in a photo larger than two search sizes (where a
        # digit can be too small to find): search again at twice the resolution. A camera frame with
        # nothing found is not searched again: blank squared paper would show its grid's pieces
        fine = -(-f // 2)
        found = _search(_shrink(gray, fine), cfg, single, verified)
        if found[2]:
            f, (ink, mask, boxes, comps) = fine, found
    if verified:
        from edgedigits.deploy import group

        found = group.read(ink, mask, comps, cfg, verify, candidates)
        return [Digit((x * f, y * f, w * f, h * f), image, line, p) for (x, y, w, h), image, line, p in found]
    digits = []
    for (x, y, w, h), line in reading_order(boxes):
        image = to_mnist(ink[y:y + h, x:x + w], mask[y:y + h, x:x + w], cfg)
        digits.append(Digit((x * f, y * f, w * f, h * f), image, line))  # box in the frame's pixels
    return digits
