"""Generated camera scenes: digits on paper, as a phone or webcam sees them, with the truth.

Digits come from MNIST (as written, or thinned to a ballpoint's stroke) and from handwriting fonts
(Debian's fonts-bwht, fonts-dkg-handwriting, ... when installed). They are drawn in pen colours on
plain or squared paper with uneven light, a shadow, slight perspective and rotation, blur, noise and
JPEG compression, several per image in one or two lines.

    frame, truth = make_scene(rng, mnist_digits)   # frame: (480, 640, 3) uint8 BGR
    truth: [(label, (x, y, w, h)), ...] in reading order
"""

from __future__ import annotations

import glob
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

FONT_GLOBS = ("/usr/share/fonts/opentype/bwht/*.otf", "/usr/share/fonts/truetype/fifthhorseman/dkg.ttf",
              "/usr/share/fonts/truetype/breip/Breip.ttf", "/usr/share/fonts/truetype/femkeklaver/*.ttf",
              "/usr/share/fonts/truetype/humor-sans/*.ttf")


def handwriting_fonts() -> list[str]:
    return sorted(f for g in FONT_GLOBS for f in glob.glob(g))


@dataclass(frozen=True)
class SceneConfig:
    size: tuple[int, int] = (640, 480)  # width, height
    digits: tuple[int, int] = (2, 6)  # how many per image, inclusive
    height: tuple[int, int] = (48, 110)  # digit height in pixels
    grid_prob: float = 0.5  # squared paper
    font_prob: float = 0.3  # a handwriting font instead of an MNIST digit
    thin_prob: float = 0.5  # an MNIST digit thinned to a pen stroke
    two_lines_prob: float = 0.3


def _mnist_alpha(img: np.ndarray, height: int, thin: bool, rng) -> np.ndarray:
    ys, xs = np.nonzero(img > 30)
    img = img[ys.min():ys.max() + 1, xs.min():xs.max() + 1]
    s = height / img.shape[0]
    a = cv2.resize(img, (max(2, round(img.shape[1] * s)), height), interpolation=cv2.INTER_CUBIC)
    a = np.clip(a.astype(np.float32) / 255.0, 0, 1)
    if thin:  # a ballpoint line, 2 to 3 px wide, instead of MNIST's broad stroke: the ridge of the stroke
        body = (a > 0.5).astype(np.uint8)
        dist = cv2.distanceTransform(body, cv2.DIST_L2, 3)
        ridge = ((dist >= cv2.dilate(dist, np.ones((3, 3), np.uint8)) - 0.5) & (body > 0)).astype(np.uint8)
        width = int(rng.integers(2, 4))
        a = cv2.GaussianBlur(cv2.dilate(ridge, np.ones((width, width), np.uint8)).astype(np.float32), (3, 3), 0.6)
    return a


def _font_alpha(label: int, height: int, font: str) -> np.ndarray:
    from PIL import Image, ImageDraw, ImageFont

    f = ImageFont.truetype(font, size=int(height * 1.4))
    canvas = Image.new("L", (height * 2, height * 2), 0)
    ImageDraw.Draw(canvas).text((height // 3, height // 4), str(label), fill=255, font=f)
    a = np.asarray(canvas)
    ys, xs = np.nonzero(a > 40)
    a = a[ys.min():ys.max() + 1, xs.min():xs.max() + 1]
    s = height / a.shape[0]
    a = cv2.resize(a, (max(2, round(a.shape[1] * s)), height), interpolation=cv2.INTER_AREA)
    return a.astype(np.float32) / 255.0


def _paper(rng, w: int, h: int, grid: bool) -> np.ndarray:
    base = rng.uniform(170, 245)
    tint = np.array([rng.uniform(0.9, 1.0), rng.uniform(0.95, 1.0), 1.0])  # BGR: slightly warm paper
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    gx, gy = rng.uniform(-0.35, 0.35, 2)
    light = 1 + gx * (xx / w - 0.5) + gy * (yy / h - 0.5)  # light falling off across the page
    cx, cy = rng.uniform(0, w), rng.uniform(0, h)
    light *= 1 - 0.25 * rng.uniform() * (((xx - cx) ** 2 + (yy - cy) ** 2) / (w * w + h * h))
    img = base * light[..., None] * tint[None, None]
    if grid:
        step = int(rng.integers(16, 30))
        color = np.array([rng.uniform(150, 230), rng.uniform(120, 190), rng.uniform(90, 160)])  # blue-grey
        strength = rng.uniform(0.25, 0.5)
        ox, oy = rng.integers(0, step, 2)
        line = np.zeros((h, w), np.float32)
        line[oy::step, :] = 1
        line[:, ox::step] = 1
        line = cv2.GaussianBlur(line, (3, 3), 0.5) * strength
        img = img * (1 - line[..., None]) + color[None, None] * line[..., None] * (base / 255)
    if rng.uniform() < 0.6:  # a soft shadow across part of the page
        poly = np.array([[rng.uniform(-w, w), -10], [rng.uniform(0, 2 * w), -10],
                         [rng.uniform(0, 2 * w), h + 10], [rng.uniform(-w, w), h + 10]], np.int32)
        shade = np.zeros((h, w), np.float32)
        cv2.fillPoly(shade, [poly], 1.0)
        shade = cv2.GaussianBlur(shade, (0, 0), rng.uniform(8, 30))
        img *= 1 - rng.uniform(0.15, 0.4) * shade[..., None]
    return img


def make_scene(rng: np.random.Generator, mnist: tuple[np.ndarray, np.ndarray], cfg: SceneConfig = SceneConfig(),
               fonts: list[str] | None = None, text: str | None = None
               ) -> tuple[np.ndarray, list[tuple[int, tuple[int, int, int, int]]]]:
    """One frame and its truth [(label, box)], boxes in reading order. `text` picks the digits."""
    images, labels = mnist
    fonts = handwriting_fonts() if fonts is None else fonts
    w, h = cfg.size
    img = _paper(rng, w, h, rng.uniform() < cfg.grid_prob)
    n = len(text) if text else int(rng.integers(cfg.digits[0], cfg.digits[1] + 1))
    lines = 2 if n >= 4 and rng.uniform() < cfg.two_lines_prob else 1
    per_line = [n - n // 2, n // 2] if lines == 2 else [n]
    height = int(rng.integers(*cfg.height))
    ink = np.array([rng.uniform(60, 140), rng.uniform(10, 60), rng.uniform(0, 50)])  # BGR: blue to black pen
    if rng.uniform() < 0.4:
        ink = np.full(3, rng.uniform(0, 50))
    truth = []
    top = rng.uniform(0.12, 0.5 if lines == 1 else 0.2) * h
    for li, count in enumerate(per_line):
        alphas, labs = [], []
        for k in range(count):
            want = int(text[sum(per_line[:li]) + k]) if text else None
            if fonts and rng.uniform() < cfg.font_prob:
                lab = int(rng.integers(10)) if want is None else want
                a = _font_alpha(lab, height, fonts[int(rng.integers(len(fonts)))])
            else:
                pool = np.arange(len(images)) if want is None else np.flatnonzero(labels == want)
                i = int(rng.choice(pool))
                lab = int(labels[i])
                a = _mnist_alpha(images[i], height, rng.uniform() < cfg.thin_prob, rng)
            alphas.append(a)
            labs.append(lab)
        gaps = [int(rng.uniform(0.25, 0.6) * height) for _ in alphas]
        total = sum(a.shape[1] for a in alphas) + sum(gaps[:-1])
        x = int(rng.uniform(0.06 * w, max(0.06 * w + 1, w - total - 0.06 * w)))
        y = int(top + li * height * 1.6)
        for a, lab, gap in zip(alphas, labs, gaps):
            ah, aw = a.shape
            yy = min(max(2, y + int(rng.integers(-height // 10, height // 10 + 1))), h - ah - 2)
            if x + aw >= w - 2:
                break
            darkness = rng.uniform(0.75, 1.0)
            region = img[yy:yy + ah, x:x + aw]
            region[:] = region * (1 - darkness * a[..., None]) + ink * darkness * a[..., None]
            ys, xs = np.nonzero(a > 0.3)
            truth.append((lab, (x + int(xs.min()), yy + int(ys.min()), int(np.ptp(xs)) + 1, int(np.ptp(ys)) + 1)))
            x += aw + gap
    # the camera: slight perspective and rotation, blur, sensor noise, JPEG
    src = np.float32([[0, 0], [w, 0], [w, h], [0, h]])
    jitter = rng.uniform(-0.03, 0.03, (4, 2)) * [w, h]
    angle = np.deg2rad(rng.uniform(-4, 4))
    rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    dst = ((src - [w / 2, h / 2]) @ rot.T + [w / 2, h / 2] + jitter).astype(np.float32)
    M = cv2.getPerspectiveTransform(src, dst)
    img = cv2.warpPerspective(np.clip(img, 0, 255).astype(np.uint8), M, (w, h), borderMode=cv2.BORDER_REPLICATE)
    warped = []
    for lab, (bx, by, bw, bh) in truth:
        pts = cv2.perspectiveTransform(np.float32([[[bx, by], [bx + bw, by], [bx + bw, by + bh], [bx, by + bh]]]), M)[0]
        x0, y0 = pts.min(0)
        x1, y1 = pts.max(0)
        warped.append((lab, (int(x0), int(y0), int(x1 - x0), int(y1 - y0))))
    img = cv2.GaussianBlur(img, (0, 0), rng.uniform(0.4, 1.1))
    img = np.clip(img + rng.normal(0, rng.uniform(2, 7), img.shape), 0, 255).astype(np.uint8)
    ok, jpg = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, int(rng.integers(60, 95))])
    return cv2.imdecode(jpg, cv2.IMREAD_COLOR), warped


def match(pred: list[tuple[str, tuple]], truth: list[tuple[int, tuple]]) -> tuple[int, int, int]:
    """(correct, found, missed): a truth digit is found when a predicted box's centre lies in its box."""
    correct = found = 0
    used = set()
    for lab, (x, y, w, h) in truth:
        for i, (plab, (px, py, pw, ph)) in enumerate(pred):
            cx, cy = px + pw / 2, py + ph / 2
            if i not in used and x <= cx <= x + w and y <= cy <= y + h:
                used.add(i)
                found += 1
                correct += str(plab) == str(lab)
                break
    return correct, found, len(truth) - found


def write_video(path: Path, frames: list[np.ndarray], fps: int = 15, codec: str = "MJPG") -> Path:
    """An AVI: MJPG (compressed, as USB webcams send at high resolutions) or IYUV (raw YUV 4:2:0,
    as a webcam streams 640x480: reading it costs only the colour conversion)."""
    h, w = frames[0].shape[:2]
    out = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*codec), fps, (w, h))
    if not out.isOpened():
        raise RuntimeError(f"{path}: OpenCV cannot write video here")
    for f in frames:
        out.write(f)
    out.release()
    return path
