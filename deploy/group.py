"""Segmentation by recognition: which pieces of ink make a digit is decided by what the verifier reads.

Geometric rules alone cannot tell a 5's loose top bar (one digit) from a digit written just above
another in a grid (two), or two digits written joined (one piece) from a wide 0. As the check readers
of LeCun, Bottou, Bengio and Haffner (1998) do, the pieces are over-segmented and every way of grouping
them is scored by a recognizer that knows what is not a digit (the verifier, trained on fragments,
joined digits, letters, texture: train/negatives.py):

  1. pieces: the ink's connected parts (preprocess.components);
  2. clusters: pieces that could belong to one digit (sharing most of a column and nearly touching,
     or one inside the other), ordered top to bottom;
  3. candidates: every run of consecutive pieces of a cluster (all of them for up to 4 pieces, runs
     of up to 3 beyond, and the whole cluster), each normalized as MNIST and scored in one batch by
     the verifier; at most MAX_CANDIDATES in a frame, the shortest runs first;
  4. per cluster, the partition into runs with the highest likelihood: each run is read as a digit
     (log p) or set aside (log (1 - p) + log SET_ASIDE, a penalty, so that ink is set aside only when
     no grouping reads as a digit: two digits merged into one unreadable group score below the two
     digits apart);
  5. a group that no grouping reads as a digit is scored again without its hairlines (ink one pixel
     wide: a dotted grid line that crosses a digit), and kept that way where it reads better;
  6. a piece as wide as it is tall that the verifier doubts (p < sure_digit: two digits joined are
     among its negatives; cutting those it believes too, up to 0.9, or every piece wider than 1.25
     heights, doubled the groups scored and changed no reading) is cut at the valleys of its column
     profile and the cuts are chosen the same way (joined digits),
     each part read as a digit paying a small prior cost (PART), as the piece kept whole does: the
     verifier reads many halves of a digit as digits too (a wide 4 came out as 2 and 1 without it).
     log 0.8 leaves four joined digits, which pay it three times more than the piece whole, still
     ahead of setting the piece aside (log SET_ASIDE);
  7. the runs read as digits, and no other, are kept, except a doubted bar reaching in from the frame's
     edge (from_edge: a sheet's edge, not a 1), a loop no hand draws (ellipse_misfit: a ring, a wheel,
     a rim, a phantom's outline read as 0) and letters of a word: glyphs as close as the
     digits of a number, one of them set aside, where those that look like letters (set aside, or
     doubted) are as many as the clear digits (in_no_word: the o, l, S and Z of handwriting read as
     digits on their own);
  8. reading order follows the lines' own direction.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from edgedigits.contract import SegmentConfig
from edgedigits.deploy.preprocess import _median, stroke_width, to_mnist, union_box  # (it imports this module lazily)

SET_ASIDE = 0.5  # the prior cost of calling ink "not a digit" (see 4. above)
PART = math.log(0.8)  # the prior cost of each part of a cut piece (see 6. above)
MAX_RUN = 3  # pieces in a run of a large cluster (a 5 is two, a broken 4 or 8 three)
HAIRLINE = np.ones((2, 2), np.uint8)  # without_hairlines
MAX_CANDIDATES = 300  # groups normalized and scored in one frame, at most (bounded work on any frame)


class _Scorer:
    """Normalizes candidate groups of pieces and scores them with the verifier, in batches."""

    def __init__(self, ink, mask, labels, cfg: SegmentConfig):
        self.ink, self.mask, self.labels, self.cfg = ink, mask, labels, cfg

    def group_mask(self, box, ids) -> np.ndarray:
        """The ink of the pieces `ids` inside `box` (another piece reaching into the box left out)."""
        x, y, w, h = box
        lab = self.labels[y:y + h, x:x + w]
        keep = cv2.compare(lab, ids[0], cv2.CMP_EQ)  # (half numpy's time: this runs for every group)
        for i in ids[1:]:
            keep = cv2.bitwise_or(keep, cv2.compare(lab, i, cv2.CMP_EQ))
        return cv2.bitwise_and(keep, self.mask[y:y + h, x:x + w])

    def image(self, box, ids, cols=None, opened=False):
        """The group's ink normalized: the pieces `ids` inside `box`, within its columns `cols`; with
        `opened`, without its hairlines (ink one pixel wide: a dotted grid line that crosses a digit).
        (tight box, (28, 28) image), or (None, None) where no ink is left."""
        x, y, w, h = box
        m = self.group_mask(box, ids)
        if cols is not None:
            m[:, :cols[0]] = 0
            m[:, cols[1]:] = 0
        if opened:
            m = without_hairlines(m)
        if not cv2.countNonZero(m):
            return None, None
        bx, by, bw, bh = cv2.boundingRect(m)
        tight = (x + bx, y + by, bw, bh)
        return tight, to_mnist(self.ink[tight[1]:tight[1] + bh, tight[0]:tight[0] + bw],
                               m[by:by + bh, bx:bx + bw], self.cfg)

    def plausible(self, box) -> bool:
        """Cheap geometry first: tall enough, not a filled blob, not a speck's outline."""
        x, y, w, h = box
        if h < self.cfg.min_height or w > 6 * h:
            return False
        m = self.mask[y:y + h, x:x + w]
        return cv2.countNonZero(m) >= 0.03 * w * h and stroke_width(m) <= self.cfg.max_stroke * h


def without_hairlines(m: np.ndarray) -> np.ndarray:
    """The mask opened by a 2x2 square: what is left of the union of the 2x2 squares of ink, so lines one
    pixel wide go and the rest stays in place (cv2.morphologyEx would move it a pixel: an even kernel's
    anchor). 0/255, m's shape."""
    e = cv2.erode(m, HAIRLINE, anchor=(1, 1), borderType=cv2.BORDER_CONSTANT, borderValue=0)
    return cv2.dilate(e, HAIRLINE, anchor=(0, 0), borderType=cv2.BORDER_CONSTANT, borderValue=0)


def _cost(p: float) -> tuple[float, bool]:
    """(log-likelihood, read as a digit) of one group with verifier probability p."""
    p = min(max(p, 1e-6), 1 - 1e-6)
    digit, aside = math.log(p), math.log(1 - p) + math.log(SET_ASIDE)
    return (digit, True) if digit >= aside else (aside, False)


def _part_cost(p: float) -> float:
    """_cost of one part of a piece that may be cut, where each part read as a digit also pays PART."""
    c, digit = _cost(p)
    return c + PART if digit else c


def _best_partition(n: int, cost) -> list[tuple[int, int]]:
    """The runs [i, j) of 0..n-1 that maximize the summed cost(i, j) (None: not allowed)."""
    best = [0.0] + [-math.inf] * n
    back = [0] * (n + 1)
    for j in range(1, n + 1):
        for i in range(j - 1, -1, -1):
            c = cost(i, j)
            if c is not None and best[i] + c > best[j]:
                best[j], back[j] = best[i] + c, i
    runs, j = [], n
    while j > 0:
        runs.append((back[j], j))
        j = back[j]
    return runs[::-1]


def _valleys(m: np.ndarray, height: int, limit: int = 6) -> list[int]:
    """Columns where joined digits can be cut: the local minima of the ink's column profile (ink
    pixels per column, summed over 3 columns), the lowest first, at least a tenth of the height apart,
    at most `limit` of them: two or three joined digits need one or two, and every further cut adds
    groups to score (14 cuts gave up to 66 in one camera frame, 6 the same reads on every development
    photo). Whole numbers throughout, so the web app's port finds the same columns."""
    counts = np.count_nonzero(m, axis=0).astype(np.int64)
    w = len(counts)
    if w < 3:
        return []
    padded = np.concatenate([counts[1:2], counts, counts[-2:-1]])  # reflected, as OpenCV's default border
    prof = padded[:-2] + padded[1:-1] + padded[2:]
    margin = max(2, height // 6)
    cand = [c for c in range(margin, w - margin) if prof[c] <= prof[c - 1] and prof[c] <= prof[c + 1]]
    cand.sort(key=lambda c: prof[c])
    out = []
    for c in cand:
        if all(abs(c - o) >= max(2, height // 10) for o in out):
            out.append(c)
        if len(out) == limit:
            break
    return sorted(out)


def read(ink: np.ndarray, mask: np.ndarray, comps, cfg: SegmentConfig, verify, candidates: bool = False):
    """[(box, image, line, p)] of the digits, in reading order (boxes at the search size; p the
    verifier's probability). `comps`: the mask's components() and the clusters of its pieces
    (merge_groups), as preprocess._search found them (the specks already dropped). With `candidates`,
    every candidate group instead, unscored."""
    labels, comps, clusters = comps
    ids = [c[0] for c in comps]
    boxes = [c[1] for c in comps]
    scorer = _Scorer(ink, mask, labels, cfg)

    # 1. candidate runs of pieces in each cluster, top to bottom; at most MAX_CANDIDATES in a frame
    # (a page of text, a field of gravel), the shortest runs first
    spec = []  # (cluster, i, j, box)
    members = []
    for g in clusters:
        g = sorted(g, key=lambda k: boxes[k][1] + boxes[k][3] / 2)
        members.append(g)
        longest = len(g) if len(g) <= 4 else MAX_RUN
        runs = [(i, j) for i in range(len(g)) for j in range(i + 1, min(len(g), i + longest) + 1)]
        if len(g) > longest:
            runs.append((0, len(g)))  # and the whole cluster, as the geometric rules would read it
        ruled = _rule_lines(g, boxes)
        for i, j in runs:
            if j - i > 1 and any(k in ruled for k in g[i:j]):
                continue  # an underline or a ruled line's piece is part of no digit
            box = union_box([boxes[k] for k in g[i:j]])
            if scorer.plausible(box):
                spec.append((len(members) - 1, i, j, box))
    if len(spec) > MAX_CANDIDATES:
        spec = sorted(spec, key=lambda c: c[2] - c[1])[:MAX_CANDIDATES]
    cands = []  # (cluster, i, j, box, image, piece labels)
    for ci, i, j, box in spec:
        run = [ids[k] for k in members[ci][i:j]]
        tight, image = scorer.image(box, run)
        if image is not None:
            cands.append((ci, i, j, tight, image, run))
    p = _verify(verify, [c[4] for c in cands]) if not candidates else np.zeros(len(cands))
    score = {(c[0], c[1], c[2]): (c[3], c[4], float(pc), c[5]) for c, pc in zip(cands, p)}

    # 2. per cluster, the most likely partition into runs
    chosen = []  # (box, image, p, piece labels)
    for ci, g in enumerate(members):
        def cost(i, j, ci=ci):
            s = score.get((ci, i, j))
            if s is None:  # implausible shape: ink set aside only with a single piece's run
                return math.log(1e-3) if j - i == 1 else None
            return _cost(s[2])[0]

        for i, j in _best_partition(len(g), cost):
            s = score.get((ci, i, j))
            if s is not None:
                chosen.append(s)

    # 2b. a group no reading accepts, read again without its hairlines (a dotted grid line crossing it)
    if not candidates:
        rejected = [k for k, c in enumerate(chosen) if c[2] < cfg.min_digit]
        alts = []
        for k in rejected:
            box, run = chosen[k][0], chosen[k][3]
            tight, image = scorer.image(box, run, opened=True)
            if image is not None and scorer.plausible(tight):
                alts.append((k, tight, image))
        if alts:
            for (k, tight, image), pa in zip(alts, _verify(verify, [a[2] for a in alts])):
                if pa > chosen[k][2]:
                    chosen[k] = (tight, image, float(pa), chosen[k][3])

    # 3. joined digits: a group as wide as tall that the verifier doubts, cut at its column valleys
    wide = [k for k, (box, _, pk, _) in enumerate(chosen) if box[2] >= 0.8 * box[3] and (pk < cfg.sure_digit or candidates)]
    splits = {}
    seg_cands = []
    budget = MAX_CANDIDATES - len(spec)
    for k in wide:
        box, run = chosen[k][0], chosen[k][3]
        x, y, w, h = box
        cuts = [0] + _valleys(scorer.group_mask(box, run), h) + [w]
        pairs = []
        for a in range(len(cuts)):
            for b in range(a + 1, len(cuts)):
                cw = cuts[b] - cuts[a]
                if (a, b) == (0, len(cuts) - 1) or cw < 0.2 * h:
                    continue
                if cw > 1.3 * h:
                    break
                pairs.append((a, b))
        if len(pairs) > budget:  # the frame's work is spent: this piece and those after it stay whole
            break
        budget -= len(pairs)
        for a, b in pairs:
            tight, image = scorer.image(box, run, cols=(cuts[a], cuts[b]))
            if image is not None and scorer.plausible(tight):
                seg_cands.append((k, a, b, tight, image, run))
        splits[k] = cuts
    if candidates:
        return [(c[3], c[4], 0, 0.0) for c in cands] + [(c[3], c[4], 0, 0.0) for c in seg_cands]
    if seg_cands:
        ps = _verify(verify, [c[4] for c in seg_cands])
        seg = {(c[0], c[1], c[2]): (c[3], c[4], float(pc), c[5]) for c, pc in zip(seg_cands, ps)}
        for k, cuts in splits.items():
            whole = _cost(chosen[k][2])[0] + PART  # read or set aside, the piece kept whole is one part

            def cost(a, b, k=k):
                s = seg.get((k, a, b))
                if s is None:
                    return None if (a, b) != (0, len(cuts) - 1) else whole
                return _part_cost(s[2])

            runs = _best_partition(len(cuts) - 1, cost)
            if len(runs) > 1:
                chosen[k] = None
                chosen += [seg[(k, a, b)] for a, b in runs if (k, a, b) in seg]
        chosen = [c for c in chosen if c is not None]

    # 4. the groups read as digits, and none in a word (a letter beside them)
    kept = [(box, image, pk) for box, image, pk, run in chosen
            if pk >= cfg.min_digit and ellipse_misfit(scorer.group_mask(box, run)) >= ELLIPSE]
    kept = [k for k in kept if not (k[2] < cfg.sure_digit and from_edge(k[0], mask.shape))]
    # (each group set aside passed plausible() before it was scored: checking it again changed nothing)
    kept = in_no_word(kept, [c[0] for c in chosen if c[2] < cfg.min_digit], cfg.sure_digit)
    if kept:
        tallest = max(k[0][3] for k in kept)
        kept = [k for k in kept if k[0][3] >= cfg.relative_height * tallest]
    order = lines([k[0] for k in kept])
    return [(kept[i][0], kept[i][1], line, kept[i][2]) for i, line in order]


def from_edge(box, shape) -> bool:
    """A long bar (four times longer than wide) reaching in from the frame's edge: the sheet's edge with
    what lies beyond it, an object entering the view. Where the verifier doubts it (p < sure_digit), it
    is not a 1: one writer's photos side by side read a 1 at each dark strip where a sheet ended ("1 7432",
    "1 3541"). A doubted digit touching the edge and not a bar stays: setting those aside too lost
    digits merged with a scrap of such a strip (8 more of 120 such four-digit frames wrong)."""
    x, y, w, h = box
    height, width = shape[:2]
    edge = x <= 1 or y <= 1 or x + w >= width - 1 or y + h >= height - 1
    return edge and max(w, h) >= 4 * min(w, h)


ELLIPSE = 0.005  # a loop closer than this to an ellipse (the share of its area that differs) is no hand's
LOOP = 0.1  # ... judged where the ink encloses holes of at least this share of its filled outline


def ellipse_misfit(m: np.ndarray) -> float:
    """How far the ink `m` (0/255), its holes filled, is from an ellipse: the pixels of m's box where the
    two differ, a share of the filled ink's area. The ellipse has the filled ink's own centre and second
    moments (a filled ellipse of semi-axes a and b has variances a^2/4 and b^2/4, area 4 pi sqrt(det)).
    1.0 where the ink encloses holes of less than LOOP of that area (a 1, a 7: nothing to judge) or is
    far from an ellipse's area. A written 0 differs by 1% of its area at least (1.0% to 3% on the tests'
    generated digits at the search size, 3% and more on the development photos), an ellipse drawn by a
    machine (a ring, a rim, the outline of phantom.png) by less than 0.1%: no hand draws that, however
    careful. Whole-number sums and the same float steps as the web app's port (group.js ellipseMisfit)."""
    h, w = m.shape
    pad = cv2.copyMakeBorder(m, 1, 1, 1, 1, cv2.BORDER_CONSTANT, value=0)
    # the background, 4-connected (what the 8-connected ink encloses stays 0); it runs for every digit
    # kept: a C call or two, and numpy only past the first test
    outside = cv2.floodFill(pad, None, (0, 0), 128)[0]
    n = (h + 2) * (w + 2) - outside  # the ink with its holes filled
    if n == 0 or n - cv2.countNonZero(m) < LOOP * n:
        return 1.0
    filled = pad[1:-1, 1:-1] != 128
    mo = cv2.moments(filled.view(np.uint8), binaryImage=True)  # whole-number sums, exact in float64
    cx, cy = mo["m10"] / n, mo["m01"] / n
    vxx = mo["m20"] / n - cx * cx
    vyy = mo["m02"] / n - cy * cy
    vxy = mo["m11"] / n - cx * cy
    det = vxx * vyy - vxy * vxy
    if det <= 0 or abs(n - 4 * math.pi * math.sqrt(det)) > 0.05 * n:
        return 1.0
    dx = (np.arange(w, dtype=np.float64) - cx)[None, :]
    dy = (np.arange(h, dtype=np.float64) - cy)[:, None]
    inside = vyy * dx * dx - 2 * vxy * dx * dy + vxx * dy * dy <= 4 * det
    return int(np.count_nonzero(inside != filled)) / n


WORD_GAP = 0.4  # glyphs closer than this fraction of the taller one's height are one word (or one number)
LETTER_SIZE = (0.35, 3.0)  # a glyph set aside, this many times a word's digits' height, is a letter
STEP = 1.5  # lines: a step across, in digit heights, within which a line that starts where another ends continues it
CLEAR = 0.8  # the verifier's probability above which a digit of a word is clearly one


def in_no_word(digits: list, others: list[tuple[int, int, int, int]], sure: float = 0.5) -> list:
    """The digits (box, ..., p) that are not letters of a word. Glyphs in a line as close to each
    other as the digits of a number are make a word. Each glyph of a word that looks like a letter (one
    the verifier set aside, of comparable height, or a digit it doubts: p < `sure`) counts against the
    word being a number, each clear digit (p >= CLEAR) for it; a word is letters where a glyph was set
    aside and they are at least as many as the clear digits. The l and the o of "lol", the S, Z and b of
    handwriting read as 5, 2 and 6 on their own: no recognizer of one glyph tells them apart, their
    neighbours do. A number with one digit the verifier rejects (a digit badly written) stays a number
    where its other digits are clear, and doubted digits alone make no word (a writer whose every
    other digit the verifier doubts). `others`: the boxes of the glyphs set aside."""
    if not digits or not others:  # no glyph set aside: no word of letters
        return digits
    boxes = [d[0] for d in digits] + list(others)
    n = len(digits)
    words: list[list[int]] = []
    prev, prev_line = None, None
    for i, line in lines(boxes, steps=False):  # a word's glyphs share one level
        if prev is None or line != prev_line or _gap(boxes[prev], boxes[i]) > WORD_GAP * max(
                boxes[prev][3], boxes[i][3]):
            words.append([])
        words[-1].append(i)
        prev, prev_line = i, line
    out = []
    for word in words:
        ds = [i for i in word if i < n]
        if not ds:
            continue
        h = _median([boxes[i][3] for i in ds])
        aside = sum(1 for i in word if i >= n and LETTER_SIZE[0] * h <= boxes[i][3] <= LETTER_SIZE[1] * h)
        doubted = sum(1 for i in ds if digits[i][-1] < sure)
        clear = sum(1 for i in ds if digits[i][-1] >= CLEAR)
        if not (aside and aside + doubted >= clear):
            out += [digits[i] for i in ds]
    return out


def _gap(a, b) -> int:
    """The distance between two boxes' edges (0 where they overlap)."""
    dx = max(b[0] - (a[0] + a[2]), a[0] - (b[0] + b[2]), 0)
    dy = max(b[1] - (a[1] + a[3]), a[1] - (b[1] + b[3]), 0)
    return max(dx, dy)


def _rule_lines(cluster: list[int], boxes) -> set[int]:
    """The pieces of a cluster that are lines drawn under or across its digits (an underline, a piece of
    ruled paper's line the threshold kept): four times wider than they are tall, and half as wide again as
    the tallest other piece is tall (a 5's or a 7's loose top bar is narrower than its digit is tall)."""
    if len(cluster) < 2:
        return set()
    heights = sorted((boxes[k][3] for k in cluster), reverse=True)
    out = set()
    for k in cluster:
        w, h = boxes[k][2], boxes[k][3]
        tallest_other = heights[1] if h == heights[0] else heights[0]
        if w >= 4 * h and 2 * w >= 3 * tallest_other:
            out.add(k)
    return out


def _verify(verify, images: list[np.ndarray]) -> np.ndarray:
    if not images:
        return np.zeros(0, np.float32)
    return np.asarray(verify(np.stack(images)), np.float32).reshape(-1)


def lines(boxes: list[tuple[int, int, int, int]], steps: bool = True) -> list[tuple[int, int]]:
    """[(index, line)] in reading order. The writing's direction is the median direction from each
    digit to its nearest neighbour within 60 degrees of horizontal (a line held at an angle, or written
    diagonally); along it, a digit joins the line whose last digit is closest across the direction
    (within 0.6 of a digit's height), lines read top to bottom, each from its start. With `steps`, a
    line that starts where the one before it ends (within 3 heights along) one step up or down (less
    than STEP heights across) continues it: digits written unevenly, photos put side by side ("3820"
    read "38 20"); lines that share columns, a grid's rows, stay apart; digits that one level crosses
    (across the direction) are one line however unevenly written ("0436" read "06 43": a digit joined
    the line of the one it was most level with, however far back)."""
    if not boxes:
        return []
    # plain Python: a frame holds a few digits, where numpy's per-call cost was a third of a millisecond
    c = [(x + w / 2, y + h / 2) for x, y, w, h in boxes]
    hs = [b[3] for b in boxes]
    height = _median(hs)
    reach = math.tan(math.radians(60))
    angles = []
    for i, (xi, yi) in enumerate(c):  # each digit's nearest neighbour ahead of it
        best, near = math.inf, None
        for xj, yj in c:
            dx, dy = xj - xi, yj - yi
            if dx > 0 and abs(dy) <= reach * dx and math.hypot(dx, dy) < best:
                best, near = math.hypot(dx, dy), (dx, dy)
        if near is not None and best < 3 * max(hs[i], height):
            angles.append(math.atan2(near[1], near[0]))
    theta = _median(angles) if angles else 0.0
    if abs(theta) < math.radians(8):
        theta = 0.0
    cos, sin = math.cos(theta), math.sin(theta)
    along = [x * cos + y * sin for x, y in c]
    across = [-x * sin + y * cos for x, y in c]
    order = sorted(range(len(c)), key=along.__getitem__)
    if steps and max(a - h / 2 for a, h in zip(across, hs)) < min(a + h / 2 for a, h in zip(across, hs)):
        return [(i, 0) for i in order]  # one level crosses them all: one line
    groups: list[list[int]] = []
    for i in order:
        best, best_d = None, 0.6
        for g in groups:
            j = g[-1]
            dist = abs(across[i] - across[j]) / min(hs[i], hs[j])
            if dist < best_d:
                best, best_d = g, dist
        if best is None:
            groups.append([i])
        else:
            best.append(i)
    groups.sort(key=lambda g: _median([across[i] for i in g]))
    # a line that starts where the one before it ends, a step up or down, continues it (digits written
    # unevenly, photos side by side); lines that share columns (a grid's rows) stay apart
    k = 0
    while steps and k + 1 < len(groups):
        a, b = groups[k], groups[k + 1]
        if along[b[0]] < along[a[0]]:
            a, b = b, a  # b, the line further along
        last, first = a[-1], b[0]
        if (along[last] + hs[last] / 2 <= along[first]
                and abs(across[first] - across[last]) < STEP * min(hs[first], hs[last])
                and along[first] - along[last] < 3 * max(hs[first], hs[last])):
            groups[k] = a + b
            del groups[k + 1]
        else:
            k += 1
    return [(i, n) for n, g in enumerate(groups) for i in g]
