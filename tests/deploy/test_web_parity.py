"""The web app's JavaScript pipeline against the Python one, function by function, in Node (no browser).

Python runs deploy/preprocess.py and deploy/group.py on each input and writes the input and every
stage's output (grey, the search-size image, ink map, threshold, hysteresis mask, the mask without paper
lines, pieces, merged groups, boxes, reading order, stroke widths, 28x28 digits, valleys, lines, and
segment() whole, with and without a verifier); tests/deploy/web_parity.mjs feeds each JavaScript
function the input its Python counterpart got and compares (its header states the tolerances).
The inputs: scenes this test draws itself (so it runs without ../shared) and the development photos."""

from __future__ import annotations

import json
import shutil
import subprocess
from dataclasses import asdict
from pathlib import Path

import cv2
import numpy as np
import pytest

from edgedigits.contract import SegmentConfig
from edgedigits.deploy import group
from edgedigits.deploy import preprocess as P
from edgedigits.deploy.webapp import _camel
from edgedigits.tools.scenes import SceneConfig, make_scene
from tests.conftest import PHOTOS, ROOT, photo_labels

NODE = shutil.which("node")
SCRIPT = ROOT / "tests" / "deploy" / "web_parity.mjs"
CHECKS_PER_CASE = 22  # the checks web_parity.mjs makes on every case, besides one per digit
pytestmark = pytest.mark.skipif(NODE is None, reason="node is not on PATH: the JavaScript parity checks run in Node")


def fake_verify(images: np.ndarray) -> np.ndarray:
    """A stand-in for the digit verifier that both sides compute alike in whole numbers (web_parity.mjs
    has its twin): p = (pixels >= 128) / 196, at most 1. Grouping and cutting then follow it the same."""
    return np.minimum(1.0, (images.reshape(len(images), -1) >= 128).sum(1) / 196).astype(np.float32)


def write_case(folder: Path, name: str, frame: np.ndarray, cfg: SegmentConfig = SegmentConfig()) -> dict:
    """Every stage of the Python pipeline on `frame` (BGR), as segment() runs them at the search size."""
    d = folder / name
    d.mkdir(parents=True)

    def put(key: str, a: np.ndarray):
        np.ascontiguousarray(a, np.uint8).tofile(d / f"{key}.u8")

    h, w = frame.shape[:2]
    put("rgba", cv2.cvtColor(frame, cv2.COLOR_BGR2RGBA))  # what a canvas gives the app
    gray = P.to_gray(frame)
    put("gray", gray)
    f = -(-max(h, w) // cfg.max_side)
    shrunk = P._shrink(gray, f)
    put("shrunk", shrunk)
    small = P._shrink(255 - gray, f) if P._light_on_dark(shrunk) else shrunk  # inverted as segment() does
    put("small", small)
    k_raw = min(small.shape) * cfg.paper_frac
    k = P._round(k_raw)
    ink = P.ink_map(small, k)
    put("ink", ink)
    t = P.ink_threshold(ink, cfg)
    hyst = P.hysteresis(ink, t, cfg.low_frac * t)
    put("hysteresis", hyst)
    mask = P.remove_paper_lines(hyst, cfg.line_span)
    put("mask", mask)
    cut = mask.copy()
    pieces = P.pieces(cut, cfg)  # erases the strips beyond the paper from `cut`
    put("mask_pieces", cut)
    boxes = P.find_boxes(mask.copy(), cfg)
    mnist, strokes, valleys, hairless, ellipses = [], [], [], [], []
    for x, y, bw, bh in boxes:
        m = cut[y:y + bh, x:x + bw]
        mnist.append(P.to_mnist(ink[y:y + bh, x:x + bw], m, cfg))
        strokes.append(P.stroke_width(m))
        valleys.append(group._valleys(m, bh))
        hairless.append(group.without_hairlines(m).reshape(-1))
        ellipses.append(group.ellipse_misfit(m))
    put("mnist", np.array(mnist, np.uint8).reshape(-1))
    put("hairless", np.concatenate(hairless or [np.zeros(0, np.uint8)]))
    whole = P.segment(frame, cfg)
    put("segment", np.array([dg.image for dg in whole], np.uint8).reshape(-1))
    verified = P.segment(frame, cfg, verify=fake_verify)
    put("verified", np.array([dg.image for dg in verified], np.uint8).reshape(-1))
    # the word rule on the boxes: every third set aside, the others read with probabilities of every kind
    word_digits = [(b, ((7 * i) % 10) / 10 + 0.05) for i, b in enumerate(boxes) if i % 3 != 2]
    word_others = [b for i, b in enumerate(boxes) if i % 3 == 2]
    return {
        "name": name, "opencv_major": int(cv2.__version__.split(".")[0]), "w": w, "h": h, "f": f, "sw": small.shape[1], "sh": small.shape[0], "k": k, "k_raw": k_raw,
        "config": _camel(asdict(cfg)), "threshold": float(t), "pieces": pieces, "merges": P.merge_groups(pieces),
        "boxes": [list(b) for b in boxes], "reading": [[list(b), line] for b, line in P.reading_order(boxes)],
        "extent": P.ink_extent(cut, k_raw), "strokes": strokes, "valleys": valleys, "ellipses": ellipses,
        "lines": [list(p) for p in group.lines(boxes)], "edge": [group.from_edge(b, small.shape) for b in boxes],
        "words": {"digits": [[list(b), p] for b, p in word_digits], "others": [list(b) for b in word_others],
                  "kept": [list(b) for b, _ in group.in_no_word(word_digits, word_others)]},
        "segment": [{"box": list(dg.box), "line": dg.line} for dg in whole],
        "verified": [{"box": list(dg.box), "line": dg.line, "p": dg.p_digit} for dg in verified],
    }


def run_node(folder: Path, cases: list[dict]) -> list[dict]:
    (folder / "cases.json").write_text(json.dumps(cases))
    proc = subprocess.run([NODE, str(SCRIPT), str(folder)], capture_output=True, text=True, timeout=600)
    results = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    assert results and "Error" not in proc.stderr, proc.stderr[-3000:]
    failed = [r for r in results if not r["ok"]]
    assert not failed, "\n".join(f"{r['case']}: {r['check']}: {r['detail']}" for r in failed[:20])
    assert proc.returncode == 0, proc.stderr[-2000:]
    for c in cases:  # every check ran on every case: one per digit besides the fixed ones
        ran = [r for r in results if r["case"] == c["name"]]
        assert len(ran) == CHECKS_PER_CASE + len(c["boxes"]) + len(c["segment"]) + len(c["verified"]), (c["name"], len(ran))
    return results


def drawn_inputs(sample) -> dict[str, np.ndarray]:
    """Inputs this test makes: camera-like scenes of MNIST digits (squared paper, two lines, an odd size that
    shrinks by a fraction, a large frame searched again at twice the resolution), ruled paper whose dark
    lines must go, digits on an underline, upright strokes across the frame that must stay, chalk-like
    light-on-dark digits, a lone 28x28 digit, and blank paper."""
    digits = (sample.test.images, sample.test.labels)
    rng = np.random.default_rng(19)
    out = {}
    for name, cfg in [("grid", SceneConfig(grid_prob=1.0, digits=(4, 5), font_prob=0.0)),
                      ("two-lines", SceneConfig(digits=(6, 6), two_lines_prob=1.0, grid_prob=0.0, font_prob=0.0)),
                      ("odd-size", SceneConfig(size=(643, 479), digits=(3, 3), font_prob=0.0)),
                      ("large-small-digits", SceneConfig(size=(1600, 1200), height=(40, 50), digits=(3, 4), font_prob=0.0))]:
        out[name], _ = make_scene(rng, digits, cfg)
    ruled, _ = make_scene(rng, digits, SceneConfig(digits=(3, 3), grid_prob=0.0, font_prob=0.0))
    for y in range(60, 480, 36):
        cv2.line(ruled, (0, y), (639, y + 3), (70, 60, 50), 1)
    out["ruled"] = ruled
    broken = np.full((480, 640), 214, np.uint8)  # digits cut across by a blank band: pieces to merge
    for i, img in enumerate(sample.test.images[10:14]):
        big = np.kron(img, np.ones((4, 4), np.uint8))
        big[48:56] = 0
        broken[150:262, 40 + 140 * i:152 + 140 * i] -= (big.astype(np.float32) * 0.7).astype(np.uint8)
    out["broken-strokes"] = cv2.cvtColor(cv2.GaussianBlur(broken, (3, 3), 0), cv2.COLOR_GRAY2BGR)
    row = np.hstack([np.kron(img, np.ones((5, 5), np.uint8)) for img in sample.test.images[:3]])
    out["light-on-dark"] = cv2.cvtColor(np.pad(row, 20), cv2.COLOR_GRAY2BGR)
    underlined = np.full((480, 640), 214, np.uint8)  # digits above a line wider than they are tall
    for i, img in enumerate(sample.test.images[20:23]):
        underlined[150:262, 40 + 140 * i:152 + 140 * i] -= (np.kron(img, np.ones((4, 4), np.uint8)) * 0.7).astype(np.uint8)
    cv2.line(underlined, (40, 262), (330, 262), 60, 3)
    out["underlined"] = cv2.cvtColor(underlined, cv2.COLOR_GRAY2BGR)
    stems = np.full((240, 640, 3), 220, np.uint8)  # four upright strokes across the frame, no level line
    for x in (100, 250, 400, 550):
        cv2.line(stems, (x, 8), (x + 6, 232), (40, 40, 40), 5)
    out["upright-stems"] = stems
    out["one-28x28-digit"] = cv2.cvtColor(255 - sample.test.images[7], cv2.COLOR_GRAY2BGR)
    out["blank"] = np.full((480, 640, 3), 214, np.uint8)
    return out


def test_javascript_functions_match_python_on_drawn_inputs(sample, tmp_path):
    cases = [write_case(tmp_path, name, frame) for name, frame in drawn_inputs(sample).items()]
    assert sum(len(c["boxes"]) for c in cases) >= 15 and any(c["merges"] != [[i] for i in range(len(c["pieces"]))]
                                                           for c in cases)  # digits found, pieces merged
    assert any(c["reading"] and max(line for _, line in c["reading"]) >= 1 for c in cases)  # two lines read
    assert any(len(c["words"]["kept"]) < len(c["words"]["digits"]) for c in cases)  # the word rule dropped some
    assert not cases[-1]["boxes"] and cases[-1]["name"] == "blank"
    ruled = next(c for c in cases if c["name"] == "ruled")
    hyst, mask = (np.fromfile(tmp_path / "ruled" / f"{k}.u8", np.uint8) for k in ("hysteresis", "mask"))
    assert (hyst > 0).sum() > (mask > 0).sum() + 1000, "the ruled lines were not removed: nothing to compare"
    stems = next(c for c in cases if c["name"] == "upright-stems")  # upright lines alone stay (digits' stems)
    hyst, mask = (np.fromfile(tmp_path / "upright-stems" / f"{k}.u8", np.uint8) for k in ("hysteresis", "mask"))
    assert (mask > 0).sum() == (hyst > 0).sum() > 0 and len(stems["pieces"]) == 4
    assert run_node(tmp_path, cases)


@pytest.mark.parametrize("folder", ["single", "multi", "pages", "nodigits"])
def test_javascript_functions_match_python_on_the_photos(folder, tmp_path):
    """The development photos, decoded once by OpenCV (the same pixels for both sides)."""
    cases = []
    for name, _ in photo_labels(folder):
        frame = cv2.imread(str(PHOTOS / folder / name), cv2.IMREAD_COLOR)
        assert frame is not None, PHOTOS / folder / name
        cases.append(write_case(tmp_path, Path(name).stem, frame))
    assert run_node(tmp_path, cases)
