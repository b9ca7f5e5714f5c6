"""Training data for the digit verifier: what the camera pipeline hands the model, digit or not.

The camera pipeline (deploy/preprocess.py) cuts pieces of ink out of a frame and normalizes each as
MNIST was made. Pointed at a page of text, a brick wall or a cat, it still cuts pieces, and a classifier
that must answer 0-9 answers something. The verifier learns to tell a digit from everything else the
pipeline can cut out, on the pipeline's own output: every example below goes through the same
normalization (`to_mnist`), and the scene examples through the whole segmentation.

Positives: MNIST training digits as they are, and renormalized at camera scales (thick and thin pens);
digits in handwriting and printed fonts; digits cut by the segmentation from generated camera scenes.

Negatives (generated, never from the development photos):
  - pieces of digits (a half, a quarter, a loose stroke) -- but never a lone upright bar, which is a 1;
  - two or three digits joined or overlapping, side by side or one above the other;
  - letters and symbols unlike any digit, handwritten (the handwriting fonts) and printed;
  - clothes, shoes and bags of Fashion-MNIST (Debian's dataset-fashion-mnist), filled or as outlines;
  - texture: noise fields, dead-leaves clutter, hatching, grid crossings, dots;
  - whatever the segmentation cuts out of generated scenes with no digit: printed and handwritten
    text, texture, clutter, Fashion-MNIST objects, blank ruled and squared paper.

Letters that look like a digit (O, l, I, Z, S, b, g, q, B, G, T, ...) are left out: a reader could not
tell them apart either, and teaching the verifier to reject them would teach it to reject real digits.
"""

from __future__ import annotations

import glob
from pathlib import Path

import cv2
import numpy as np

from edgedigits.contract import SegmentConfig

# Letters and symbols no handwritten digit resembles.
NON_DIGIT_CHARS = "acdefhkmnprtuvwxyACEFHKMNPRUVWXY#%&@*=+<>?!$~{}[]/\\"
PRINTED_FONT_GLOBS = ("/usr/share/fonts/truetype/dejavu/*.ttf", "/usr/share/fonts/truetype/liberation*/*.ttf")
FASHION = Path("/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz")


def printed_fonts() -> list[str]:
    return sorted(f for g in PRINTED_FONT_GLOBS for f in glob.glob(g))


def normalize(alpha: np.ndarray, cfg: SegmentConfig = SegmentConfig()) -> np.ndarray | None:
    """Ink (float in [0, 1] or uint8, bright on black, any size) -> (28, 28) uint8 as the pipeline
    normalizes a piece; None when there is no ink."""
    from edgedigits.deploy.preprocess import to_mnist

    ink = alpha if alpha.dtype == np.uint8 else np.clip(alpha * 255, 0, 255).astype(np.uint8)
    mask = (ink > 90).astype(np.uint8) * 255
    if cv2.countNonZero(mask) < 4:
        return None
    return to_mnist(ink, mask, cfg)


def _crop(a: np.ndarray, level: float = 0.12) -> np.ndarray | None:
    ys, xs = np.nonzero(a > level)
    if not len(ys):
        return None
    return a[ys.min():ys.max() + 1, xs.min():xs.max() + 1]


def _scaled(img: np.ndarray, height: int) -> np.ndarray:
    """An MNIST-like uint8 image -> float ink of the given height, cropped to its ink."""
    a = _crop(img.astype(np.float32) / 255)
    s = height / a.shape[0]
    return cv2.resize(a, (max(2, round(a.shape[1] * s)), height), interpolation=cv2.INTER_CUBIC).clip(0, 1)


def _pen(a: np.ndarray, rng) -> np.ndarray:
    """The stroke redrawn with a pen of another width: a ballpoint's ridge, or a marker's thick line."""
    body = (a > 0.5).astype(np.uint8)
    r = rng.uniform()
    if r < 0.4:
        dist = cv2.distanceTransform(body, cv2.DIST_L2, 3)
        ridge = ((dist >= cv2.dilate(dist, np.ones((3, 3), np.uint8)) - 0.5) & (body > 0)).astype(np.uint8)
        w = int(rng.integers(1, 4))
        return cv2.GaussianBlur(cv2.dilate(ridge, np.ones((w, w), np.uint8)).astype(np.float32), (3, 3), 0.6)
    if r < 0.6:
        k = int(rng.integers(2, max(3, a.shape[0] // 12)))
        return cv2.dilate(a, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k)))
    return a


def text_alpha(text: str, font: str, height: int) -> np.ndarray | None:
    """Text rendered bright on black, cropped to its ink, `height` pixels for a capital's height."""
    from PIL import Image, ImageDraw, ImageFont

    f = ImageFont.truetype(font, size=max(6, int(height * 1.4)))
    w = int(height * (1.2 * len(text) + 2))
    canvas = Image.new("L", (w, height * 3), 0)
    ImageDraw.Draw(canvas).text((height // 2, height // 2), text, fill=255, font=f)
    return _crop(np.asarray(canvas, np.float32) / 255)


# ---- negatives, one normalized piece each ---------------------------------------------------------

def fragment(rng, digits: np.ndarray) -> np.ndarray | None:
    """A piece of a digit: one side of a cut through it, or a corner. A tall thin piece is dropped:
    it is a 1."""
    a = _pen(_scaled(digits[rng.integers(len(digits))], int(rng.integers(28, 90))), rng)
    h, w = a.shape
    cut = rng.uniform(0.3, 0.55)
    side = int(rng.integers(6))
    if side == 0:
        a = a[:int(h * cut)]
    elif side == 1:
        a = a[int(h * (1 - cut)):]
    elif side == 2:
        a = a[:, :int(w * cut)]
    elif side == 3:
        a = a[:, int(w * (1 - cut)):]
    else:
        a = a[:int(h * rng.uniform(0.4, 0.7)), :int(w * rng.uniform(0.4, 0.7))] if side == 4 else \
            a[int(h * rng.uniform(0.3, 0.6)):, int(w * rng.uniform(0.3, 0.6)):]
    a = _crop(a)
    if a is None or a.shape[0] > 2.2 * a.shape[1] or max(a.shape) < 6:
        return None
    return normalize(a)


def joined(rng, digits: np.ndarray) -> np.ndarray | None:
    """Two or three digits touching or overlapping, side by side or one above the other."""
    n = 2 if rng.uniform() < 0.75 else 3
    height = int(rng.integers(28, 70))
    parts = [_pen(_scaled(digits[rng.integers(len(digits))], height), rng) for _ in range(n)]
    if rng.uniform() < 0.65:  # side by side
        overlap = rng.uniform(-0.15, 0.35)
        width = sum(p.shape[1] for p in parts)
        canvas = np.zeros((height + 8, width + 8), np.float32)
        x = 4
        for p in parts:
            y = int(rng.integers(0, 8))
            region = canvas[y:y + p.shape[0], x:x + p.shape[1]]
            np.maximum(region, p[:region.shape[0], :region.shape[1]], out=region)
            x += int(p.shape[1] * (1 - overlap))
    else:  # stacked, as in a grid whose rows nearly touch
        gap = rng.uniform(-0.1, 0.25)
        width = max(p.shape[1] for p in parts) + 16
        canvas = np.zeros((int(height * (n + 1)), width), np.float32)
        y = 2
        for p in parts:
            x = int(rng.integers(0, width - p.shape[1] + 1))
            region = canvas[y:y + p.shape[0], x:x + p.shape[1]]
            np.maximum(region, p[:region.shape[0]], out=region)
            y += int(p.shape[0] * (1 + gap))
    a = _crop(canvas)
    return normalize(a) if a is not None else None


def letter(rng, fonts: list[str]) -> np.ndarray | None:
    """One letter or symbol unlike a digit, or a short run of them, in a handwriting or printed font."""
    k = 1 if rng.uniform() < 0.7 else int(rng.integers(2, 4))
    text = "".join(NON_DIGIT_CHARS[i] for i in rng.integers(len(NON_DIGIT_CHARS), size=k))
    a = text_alpha(text, fonts[rng.integers(len(fonts))], int(rng.integers(20, 70)))
    if a is None or max(a.shape) < 6:
        return None
    if rng.uniform() < 0.3:
        a = _pen(a, rng)
    return normalize(a)


def fashion(rng, items: np.ndarray) -> np.ndarray | None:
    """A Fashion-MNIST item, its silhouette, outline or inner texture."""
    a = _scaled(items[rng.integers(len(items))], int(rng.integers(28, 90)))
    r = rng.uniform()
    if r < 0.4:
        a = cv2.Canny((a * 255).astype(np.uint8), 40, 120).astype(np.float32) / 255
        a = cv2.dilate(a, np.ones((2, 2), np.uint8))
    elif r < 0.7:
        a = np.clip((a - rng.uniform(0.2, 0.6)) * 4, 0, 1)
    a = _crop(a)
    return normalize(a) if a is not None else None


def texture(rng) -> np.ndarray | None:
    """Ink that no one wrote: thresholded noise, hatching, grid crossings, dots, dead-leaves edges."""
    s = int(rng.integers(24, 96))
    kind = int(rng.integers(5))
    if kind == 0:  # noise at one or several scales, thresholded
        a = np.zeros((s, s), np.float32)
        for sigma in rng.uniform(0.8, s / 6, int(rng.integers(1, 4))):
            a += cv2.GaussianBlur(rng.normal(0, 1, (s, s)).astype(np.float32), (0, 0), float(sigma)) * sigma
        a = (a > np.quantile(a, rng.uniform(0.6, 0.92))).astype(np.float32)
    elif kind == 1:  # hatching
        a = np.zeros((s, s), np.float32)
        step, angle = int(rng.integers(3, 12)), rng.uniform(0, np.pi)
        for off in range(-2 * s, 2 * s, step):
            p = np.array([s / 2, s / 2]) + off * np.array([np.cos(angle + np.pi / 2), np.sin(angle + np.pi / 2)])
            d = 2 * s * np.array([np.cos(angle), np.sin(angle)])
            cv2.line(a, tuple(int(v) for v in p - d), tuple(int(v) for v in p + d), 1.0, int(rng.integers(1, 3)))
    elif kind == 2:  # grid crossings and corners
        a = np.zeros((s, s), np.float32)
        for _ in range(int(rng.integers(1, 4))):
            if rng.uniform() < 0.5:
                y = int(rng.integers(s))
                cv2.line(a, (int(rng.integers(0, s // 2)), y), (int(rng.integers(s // 2, s)), y), 1.0, 1)
            else:
                x = int(rng.integers(s))
                cv2.line(a, (x, int(rng.integers(0, s // 3))), (x, int(rng.integers(s // 2, s))), 1.0, 1)
    elif kind == 3:  # dots and specks
        a = np.zeros((s, s), np.float32)
        for _ in range(int(rng.integers(3, 30))):
            cv2.circle(a, (int(rng.integers(s)), int(rng.integers(s))), int(rng.integers(1, max(2, s // 12))), 1.0, -1)
    else:  # the edges of overlapping shapes (dead leaves)
        a = dead_leaves(rng, s, s)
        a = cv2.Canny(a, 30, 90).astype(np.float32) / 255
    a = _crop(a)
    return normalize(a) if a is not None else None


def dead_leaves(rng, w: int, h: int) -> np.ndarray:
    """Overlapping shapes of random grey, sizes from a power law: natural images' edge statistics."""
    img = np.full((h, w), rng.uniform(0, 255), np.uint8)
    for _ in range(int(rng.integers(20, 120))):
        r = int(max(2, min(w, h) * rng.uniform(0.01, 0.3) ** 1.5 * 3))
        c = (int(rng.integers(w)), int(rng.integers(h)))
        g = int(rng.integers(256))
        if rng.uniform() < 0.5:
            cv2.circle(img, c, r, g, -1)
        else:
            cv2.rectangle(img, c, (c[0] + int(rng.integers(-2 * r, 2 * r)), c[1] + int(rng.integers(-2 * r, 2 * r))), g, -1)
    return img


# ---- scenes: the segmentation's own pieces ---------------------------------------------------------

def _camera(rng, img: np.ndarray) -> np.ndarray:
    img = cv2.GaussianBlur(img, (0, 0), rng.uniform(0.4, 1.2))
    img = np.clip(img + rng.normal(0, rng.uniform(2, 7), img.shape), 0, 255).astype(np.uint8)
    ok, jpg = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, int(rng.integers(55, 95))])
    return cv2.imdecode(jpg, cv2.IMREAD_COLOR)


def clutter_scene(rng, fonts: list[str], printed: list[str], items: np.ndarray,
                  size: tuple[int, int] = (640, 480)) -> np.ndarray:
    """A frame with no digit: text, texture, objects or blank paper, as a camera sees them."""
    from edgedigits.tools.scenes import _paper

    w, h = size
    kind = int(rng.integers(6))
    if kind == 0:  # texture or clutter filling the frame
        g = dead_leaves(rng, w, h)
        if rng.uniform() < 0.5:
            noise = cv2.GaussianBlur(rng.normal(0, 1, (h, w)).astype(np.float32), (0, 0), rng.uniform(1, 6))
            g = np.clip(g + noise * rng.uniform(10, 60), 0, 255).astype(np.uint8)
        return _camera(rng, cv2.cvtColor(g, cv2.COLOR_GRAY2BGR).astype(np.float32))
    img = _paper(rng, w, h, rng.uniform() < 0.4)
    ink = np.array([rng.uniform(60, 140), rng.uniform(10, 60), rng.uniform(0, 50)])
    if kind in (1, 2):  # lines of printed or handwritten text, no digit in it
        font_pool = printed if kind == 1 and printed else fonts
        height = int(rng.integers(8, 28) if kind == 1 else rng.integers(14, 50))
        y = int(rng.integers(4, h // 3))
        while y < h - height * 2:
            words = " ".join("".join(NON_DIGIT_CHARS[:17 + 17][i] for i in rng.integers(34, size=int(rng.integers(1, 9))))
                             for _ in range(int(rng.integers(2, 8))))
            a = text_alpha(words, font_pool[rng.integers(len(font_pool))], height)
            if a is not None:
                a = a[:, : w - 20]
                x = int(rng.integers(4, max(5, w - a.shape[1] - 4)))
                region = img[y:y + a.shape[0], x:x + a.shape[1]]
                a = a[:region.shape[0], :region.shape[1]]
                region[:] = region * (1 - a[..., None]) + ink * a[..., None]
            y += int(height * rng.uniform(1.6, 2.6))
    elif kind == 3:  # objects drawn on paper
        for _ in range(int(rng.integers(1, 4))):
            s = int(rng.integers(60, 300))
            a = _scaled(items[rng.integers(len(items))], s)[: h - 4, : w - 4]
            x, y = int(rng.integers(0, w - a.shape[1])), int(rng.integers(0, h - a.shape[0]))
            region = img[y:y + a.shape[0], x:x + a.shape[1]]
            region[:] = region * (1 - 0.8 * a[..., None]) + ink * 0.8 * a[..., None]
    elif kind == 4:  # doodles: strokes and scribbles, shapes
        for _ in range(int(rng.integers(1, 6))):
            pts = np.cumsum(rng.normal(0, rng.uniform(5, 30), (int(rng.integers(3, 12)), 2)), 0)
            pts = (pts + [rng.integers(w), rng.integers(h)]).astype(np.int32)
            cv2.polylines(img, [pts], False, tuple(float(v) for v in ink), int(rng.integers(1, 4)), cv2.LINE_AA)
    # kind 5: blank paper (plain, ruled or squared)
    return _camera(rng, img)


def scene_pieces(rng, n_scenes: int, fonts, printed, items, say=print) -> list[np.ndarray]:
    """Every piece the segmentation cuts from generated scenes with no digit."""
    from edgedigits.deploy.preprocess import segment

    out = []
    for i in range(n_scenes):
        size = (640, 480) if rng.uniform() < 0.7 else (int(rng.integers(200, 900)), int(rng.integers(60, 700)))
        frame = clutter_scene(rng, fonts, printed, items, size)
        out += [d.image for d in segment(frame, candidates=True)]
    return out


def digit_scene_pieces(rng, n_scenes: int, mnist: tuple[np.ndarray, np.ndarray], fonts) -> list[np.ndarray]:
    """The digits the segmentation cuts from generated digit scenes, where a piece matches one digit."""
    from edgedigits.deploy.camera import _iou as iou
    from edgedigits.deploy.preprocess import segment
    from edgedigits.tools.scenes import make_scene

    out = []
    for _ in range(n_scenes):
        frame, truth = make_scene(rng, mnist, fonts=fonts)
        for d in segment(frame):
            x, y, w, h = d.box
            hits = [b for _, b in truth if iou(d.box, b) > 0.6]
            if len(hits) == 1:
                out.append(d.image)
    return out


def font_digit(rng, fonts: list[str]) -> np.ndarray | None:
    a = text_alpha(str(int(rng.integers(10))), fonts[rng.integers(len(fonts))], int(rng.integers(20, 80)))
    if a is None:
        return None
    return normalize(_pen(a, rng) if rng.uniform() < 0.3 else a)


def camera_digit(rng, digits: np.ndarray) -> np.ndarray | None:
    """An MNIST digit written larger with another pen, normalized as the camera pipeline does."""
    return normalize(_pen(_scaled(digits[rng.integers(len(digits))], int(rng.integers(24, 100))), rng))


def load_fashion() -> np.ndarray:
    from edgedigits.train.data import load_idx

    if not FASHION.is_file():
        from edgedigits.errors import EdgeDigitsError

        raise EdgeDigitsError(f"{FASHION}: not found; install Debian's dataset-fashion-mnist "
                              "(apt-get install dataset-fashion-mnist)")
    return load_idx(FASHION, 2051)


def build_set(rng, digits: np.ndarray, labels: np.ndarray, n_neg: int, n_pos_extra: int,
              scenes: int, say=print) -> tuple[np.ndarray, np.ndarray]:
    """(images (N, 28, 28) uint8, is_digit (N,) uint8): `digits` as they are, plus generated positives
    and negatives, shuffled."""
    from edgedigits.tools.scenes import handwriting_fonts

    fonts = handwriting_fonts()
    printed = printed_fonts()
    all_fonts = fonts + printed
    items = load_fashion()
    neg_makers = [(0.22, lambda: fragment(rng, digits)), (0.22, lambda: joined(rng, digits)),
                  (0.2, lambda: letter(rng, all_fonts)), (0.16, lambda: fashion(rng, items)),
                  (0.2, lambda: texture(rng))]
    pos_makers = [(0.75, lambda: camera_digit(rng, digits)), (0.25, lambda: font_digit(rng, all_fonts))]

    def draw(makers, n):
        weights = np.array([w for w, _ in makers])
        picks = rng.choice(len(makers), size=n, p=weights / weights.sum())
        out = []
        for k in picks:
            img = makers[k][1]()
            if img is not None:
                out.append(img)
        return out

    say(f"generating {n_neg} negatives and {n_pos_extra} positives ...")
    neg = draw(neg_makers, n_neg)
    say(f"cutting pieces from {scenes} generated scenes with no digit ...")
    neg += scene_pieces(rng, scenes, fonts, printed, items)
    pos = draw(pos_makers, n_pos_extra)
    say(f"cutting digits from {scenes // 2} generated digit scenes ...")
    pos += digit_scene_pieces(rng, scenes // 2, (digits, labels), fonts)
    x = np.concatenate([digits, np.stack(pos), np.stack(neg)])
    y = np.concatenate([np.ones(len(digits) + len(pos), np.uint8), np.zeros(len(neg), np.uint8)])
    order = rng.permutation(len(x))
    return x[order], y[order]
