// Segmentation by recognition, deploy/group.py step for step: pieces of ink are grouped and cut by
// what the digit verifier reads best, and what no grouping makes a digit is not read. The verifier
// runs in ONNX Runtime Web (app.js passes it in); everything else matches the Python code, in whole
// numbers where Python's are, so both choose the same groups (tests/deploy/test_web_parity.py checks it function by function in Node).
import {
  CONFIG, boundingRect, components, count, crop, dropSpecks, img, mergeGroups, pieceComponents, scan, segment, strokeWidth, toMnist, unionBox,
} from './preprocess.js';

const SET_ASIDE = 0.5, MAX_RUN = 3, MAX_CANDIDATES = 300, PART = Math.log(0.8);  // deploy/group.py
const ELLIPSE = 0.005, LOOP = 0.1;  // deploy/group.py ellipse_misfit
const WORD_GAP = 0.4, LETTER_SIZE = [0.35, 3.0], CLEAR = 0.8, STEP = 1.5;

function groupMask(mask, labels, box, ids) {
  const [x, y, w, h] = box, out = img(w, h), set = new Set(ids);
  for (let r = 0; r < h; r++) {
    for (let c = 0; c < w; c++) {
      const i = (y + r) * mask.w + x + c;
      if (mask.data[i] && set.has(labels[i])) out.data[r * w + c] = mask.data[i];
    }
  }
  return out;
}

function plausible(mask, box, cfg) {
  const [x, y, w, h] = box;
  if (h < cfg.minHeight || w > 6 * h) return false;
  const m = crop(mask, x, y, w, h);
  return count(m) >= 0.03 * w * h && strokeWidth(m) <= cfg.maxStroke * h;
}

// deploy/group.py without_hairlines: the mask opened by a 2x2 square, so lines one pixel wide go
export function withoutHairlines(m) {
  const { w, h } = m, e = new Uint8Array(w * h), out = img(w, h);
  for (let r = 1; r < h; r++) {
    for (let c = 1; c < w; c++) {
      const i = r * w + c;
      e[i] = m.data[i] && m.data[i - 1] && m.data[i - w] && m.data[i - w - 1] ? 1 : 0;
    }
  }
  for (let r = 0; r < h; r++) {
    for (let c = 0; c < w; c++) {
      const i = r * w + c, right = c + 1 < w, down = r + 1 < h;
      if (e[i] || (right && e[i + 1]) || (down && e[i + w]) || (right && down && e[i + w + 1])) out.data[i] = 255;
    }
  }
  return out;
}

function image(ink, mask, labels, box, ids, cfg, cols = null, opened = false) {
  const [x, y] = box;
  let m = groupMask(mask, labels, box, ids);
  if (cols) for (let r = 0; r < m.h; r++) for (let c = 0; c < m.w; c++) if (c < cols[0] || c >= cols[1]) m.data[r * m.w + c] = 0;
  if (opened) m = withoutHairlines(m);
  const r0 = boundingRect(m);
  if (!r0) return null;
  const [bx, by, bw, bh] = r0, tight = [x + bx, y + by, bw, bh];
  return { box: tight, image: toMnist(crop(ink, ...tight), crop(m, bx, by, bw, bh), cfg) };
}

// deploy/group.py _cost: [log-likelihood, read as a digit] of a group the verifier gives p
function costRead(p) {
  p = Math.min(Math.max(p, 1e-6), 1 - 1e-6);
  const digit = Math.log(p), aside = Math.log(1 - p) + Math.log(SET_ASIDE);
  return digit >= aside ? [digit, true] : [aside, false];
}

const cost = (p) => costRead(p)[0];

// deploy/group.py _part_cost: one part of a cut piece; a part read as a digit pays PART
function partCost(p) {
  const [c, digit] = costRead(p);
  return digit ? c + PART : c;
}

function bestPartition(n, costOf) {
  const best = [0, ...new Array(n).fill(-Infinity)], back = new Array(n + 1).fill(0);
  for (let j = 1; j <= n; j++) {
    for (let i = j - 1; i >= 0; i--) {
      const c = costOf(i, j);
      if (c !== null && best[i] + c > best[j]) { best[j] = best[i] + c; back[j] = i; }
    }
  }
  const runs = [];
  for (let j = n; j > 0; j = back[j]) runs.push([back[j], j]);
  return runs.reverse();
}

export function valleys(m, height, limit = 6) {
  const w = m.w, counts = new Int32Array(w);
  for (let r = 0; r < m.h; r++) for (let c = 0; c < w; c++) if (m.data[r * w + c]) counts[c]++;
  if (w < 3) return [];
  const at = (c) => counts[c < 0 ? -c : c >= w ? 2 * w - 2 - c : c];
  const prof = Array.from({ length: w }, (_, c) => at(c - 1) + at(c) + at(c + 1));
  const margin = Math.max(2, Math.floor(height / 6)), apart = Math.max(2, Math.floor(height / 10));
  const cand = [];
  for (let c = margin; c < w - margin; c++) if (prof[c] <= prof[c - 1] && prof[c] <= prof[c + 1]) cand.push(c);
  cand.sort((a, b) => prof[a] - prof[b]);
  const out = [];
  for (const c of cand) {
    if (out.every((o) => Math.abs(c - o) >= apart)) out.push(c);
    if (out.length === limit) break;
  }
  return out.sort((a, b) => a - b);
}

async function scoreAll(verify, items) {
  if (!items.length) return new Float32Array(0);
  const x = new Uint8Array(items.length * 784);
  items.forEach((it, i) => x.set(it.image, i * 784));
  return verify(x, items.length);
}


// deploy/group.py _rule_lines: the pieces of a cluster that are lines under or across its digits
function ruleLines(cluster, boxes) {
  const out = new Set();
  if (cluster.length < 2) return out;
  const heights = cluster.map((k) => boxes[k][3]).sort((a, b) => b - a);
  for (const k of cluster) {
    const [, , w, h] = boxes[k], tallestOther = h === heights[0] ? heights[1] : heights[0];
    if (w >= 4 * h && 2 * w >= 3 * tallestOther) out.add(k);
  }
  return out;
}

// deploy/group.py read: [{box, image, line}] at the search size, in reading order
export async function read(ink, mask, cfg, verify) {
  mask = dropSpecks(mask);
  const { labels, comps } = pieceComponents(mask, cfg);
  const ids = comps.map((c) => c.id), boxes = comps.map((c) => c.box);
  let spec = [];
  const cands = [], members = [];
  for (let g of mergeGroups(boxes)) {
    g = g.map((k, order) => [k, order]).sort((a, b) => (boxes[a[0]][1] + boxes[a[0]][3] / 2) - (boxes[b[0]][1] + boxes[b[0]][3] / 2) || a[1] - b[1]).map((p) => p[0]);
    members.push(g);
    const longest = g.length <= 4 ? g.length : MAX_RUN, runs = [];
    for (let i = 0; i < g.length; i++) for (let j = i + 1; j <= Math.min(g.length, i + longest); j++) runs.push([i, j]);
    if (g.length > longest) runs.push([0, g.length]);  // and the whole cluster, as the geometric rules would read it
    const ruled = ruleLines(g, boxes);
    for (const [i, j] of runs) {
      if (j - i > 1 && g.slice(i, j).some((k) => ruled.has(k))) continue;  // an underline is part of no digit
      const box = unionBox(g.slice(i, j).map((k) => boxes[k]));
      if (plausible(mask, box, cfg)) spec.push([members.length - 1, i, j, box]);
    }
  }
  if (spec.length > MAX_CANDIDATES) spec = [...spec].sort((a, b) => (a[2] - a[1]) - (b[2] - b[1])).slice(0, MAX_CANDIDATES);
  for (const [ci, i, j, box] of spec) {
    const run = members[ci].slice(i, j).map((k) => ids[k]), got = image(ink, mask, labels, box, run, cfg);
    if (got) cands.push({ key: `${ci},${i},${j}`, ...got, run });
  }
  const p = await scoreAll(verify, cands);
  const score = new Map(cands.map((c, k) => [c.key, { ...c, p: p[k] }]));
  let chosen = [];
  members.forEach((g, ci) => {
    const costOf = (i, j) => {
      const s = score.get(`${ci},${i},${j}`);
      if (!s) return j - i === 1 ? Math.log(1e-3) : null;
      return cost(s.p);
    };
    for (const [i, j] of bestPartition(g.length, costOf)) {
      const s = score.get(`${ci},${i},${j}`);
      if (s) chosen.push(s);
    }
  });
  // a group no reading accepts, read again without its hairlines (a dotted grid line crossing it)
  const alts = [];
  chosen.forEach((c, k) => {
    if (c.p >= cfg.minDigit) return;
    const got = image(ink, mask, labels, c.box, c.run, cfg, null, true);
    if (got && plausible(mask, got.box, cfg)) alts.push({ k, ...got });
  });
  if (alts.length) {
    const pa = await scoreAll(verify, alts);
    alts.forEach((a, i) => { if (pa[i] > chosen[a.k].p) chosen[a.k] = { ...chosen[a.k], box: a.box, image: a.image, p: pa[i] }; });
  }
  // joined digits: a group as wide as tall that the verifier doubts, cut at its column valleys
  const splits = new Map(), segs = [];
  let budget = MAX_CANDIDATES - spec.length;
  for (let k = 0; k < chosen.length; k++) {
    const c = chosen[k], [x, y, w, h] = c.box;
    if (!(w >= 0.8 * h && c.p < cfg.sureDigit)) continue;
    const cuts = [0, ...valleys(groupMask(mask, labels, c.box, c.run), h), w], pairs = [];
    for (let a = 0; a < cuts.length; a++) {
      for (let b = a + 1; b < cuts.length; b++) {
        const cw = cuts[b] - cuts[a];
        if ((a === 0 && b === cuts.length - 1) || cw < 0.2 * h) continue;
        if (cw > 1.3 * h) break;
        pairs.push([a, b]);
      }
    }
    if (pairs.length > budget) break;  // the frame's work is spent: this piece and those after it stay whole
    budget -= pairs.length;
    for (const [a, b] of pairs) {
      const got = image(ink, mask, labels, c.box, c.run, cfg, [cuts[a], cuts[b]]);
      if (got && plausible(mask, got.box, cfg)) segs.push({ key: `${k},${a},${b}`, ...got, run: c.run });
    }
    splits.set(k, cuts);
  }
  if (segs.length) {
    const ps = await scoreAll(verify, segs);
    const seg = new Map(segs.map((c, k) => [c.key, { ...c, p: ps[k] }]));
    const replaced = new Set(), added = [];
    for (const [k, cuts] of splits) {
      const whole = cost(chosen[k].p) + PART;  // read or set aside, the piece kept whole is one part
      const costOf = (a, b) => {
        const s = seg.get(`${k},${a},${b}`);
        if (!s) return a === 0 && b === cuts.length - 1 ? whole : null;
        return partCost(s.p);
      };
      const runs = bestPartition(cuts.length - 1, costOf);
      if (runs.length > 1) {
        replaced.add(k);
        for (const [a, b] of runs) if (seg.has(`${k},${a},${b}`)) added.push(seg.get(`${k},${a},${b}`));
      }
    }
    chosen = chosen.filter((_, k) => !replaced.has(k)).concat(added);
  }
  let kept = chosen.filter((c) => c.p >= cfg.minDigit && ellipseMisfit(groupMask(mask, labels, c.box, c.run)) >= ELLIPSE);
  kept = kept.filter((c) => !(c.p < cfg.sureDigit && fromEdge(c.box, mask.w, mask.h)));
  kept = inNoWord(kept, chosen.filter((c) => c.p < cfg.minDigit).map((c) => c.box), cfg.sureDigit);  // each passed plausible() before it was scored
  if (kept.length) {
    const tallest = Math.max(...kept.map((c) => c.box[3]));
    kept = kept.filter((c) => c.box[3] >= cfg.relativeHeight * tallest);
  }
  return lines(kept.map((c) => c.box)).map(([i, line]) => ({ box: kept[i].box, image: kept[i].image, line, p: kept[i].p }));
}

// deploy/group.py ellipse_misfit: how far the ink m, its holes filled, is from the ellipse of its own
// moments (the share of its area that differs; 1 where it encloses too little or is far from one)
export function ellipseMisfit(m) {
  const { w, h } = m, W = w + 2, H = h + 2, pad = new Uint8Array(W * H), stack = [0];
  for (let r = 0; r < h; r++) for (let c = 0; c < w; c++) if (m.data[r * w + c]) pad[(r + 1) * W + c + 1] = 1;
  pad[0] = 2;
  while (stack.length) {  // the background, 4-connected, as cv2.floodFill: what the ink encloses stays 0
    const i = stack.pop(), r = (i / W) | 0, c = i - r * W;
    for (const j of [c > 0 ? i - 1 : -1, c + 1 < W ? i + 1 : -1, r > 0 ? i - W : -1, r + 1 < H ? i + W : -1]) {
      if (j >= 0 && pad[j] === 0) { pad[j] = 2; stack.push(j); }
    }
  }
  let n = 0, ink = 0, sx = 0, sy = 0, sxx = 0, syy = 0, sxy = 0;
  for (let r = 0; r < h; r++) {
    for (let c = 0; c < w; c++) {
      if (m.data[r * w + c]) ink++;
      if (pad[(r + 1) * W + c + 1] === 2) continue;
      n++; sx += c; sy += r; sxx += c * c; syy += r * r; sxy += c * r;
    }
  }
  if (n === 0 || n - ink < LOOP * n) return 1.0;
  const cx = sx / n, cy = sy / n;
  const vxx = sxx / n - cx * cx, vyy = syy / n - cy * cy, vxy = sxy / n - cx * cy, det = vxx * vyy - vxy * vxy;
  if (det <= 0 || Math.abs(n - 4 * Math.PI * Math.sqrt(det)) > 0.05 * n) return 1.0;
  let differ = 0;
  for (let r = 0; r < h; r++) {
    const dy = r - cy;
    for (let c = 0; c < w; c++) {
      const dx = c - cx, inside = vyy * dx * dx - 2 * vxy * dx * dy + vxx * dy * dy <= 4 * det;
      if (inside !== (pad[(r + 1) * W + c + 1] !== 2)) differ++;
    }
  }
  return differ / n;
}

// deploy/group.py from_edge: a long bar reaching in from the frame's edge (a sheet's edge, not a 1)
export function fromEdge([x, y, w, h], width, height) {
  const edge = x <= 1 || y <= 1 || x + w >= width - 1 || y + h >= height - 1;
  return edge && Math.max(w, h) >= 4 * Math.min(w, h);
}

// deploy/group.py in_no_word: the digits ({box, p}) that are not letters of a word
export function inNoWord(digits, others, sure = 0.5) {
  if (!digits.length || !others.length) return digits;  // no glyph set aside: no word of letters
  const boxes = [...digits.map((d) => d.box), ...others], n = digits.length, words = [];
  let prev = null, prevLine = null;
  for (const [i, line] of lines(boxes, false)) {
    if (prev === null || line !== prevLine || gap(boxes[prev], boxes[i]) > WORD_GAP * Math.max(boxes[prev][3], boxes[i][3])) words.push([]);
    words[words.length - 1].push(i);
    prev = i; prevLine = line;
  }
  const out = [];
  for (const word of words) {
    const ds = word.filter((i) => i < n);
    if (!ds.length) continue;
    const h = median(ds.map((i) => boxes[i][3]));
    const aside = word.filter((i) => i >= n && LETTER_SIZE[0] * h <= boxes[i][3] && boxes[i][3] <= LETTER_SIZE[1] * h).length;
    const doubted = ds.filter((i) => digits[i].p < sure).length, clear = ds.filter((i) => digits[i].p >= CLEAR).length;
    if (!(aside && aside + doubted >= clear)) out.push(...ds.map((i) => digits[i]));
  }
  return out;
}

// deploy/group.py _gap: the distance between two boxes' edges (0 where they overlap)
function gap(a, b) {
  return Math.max(b[0] - (a[0] + a[2]), a[0] - (b[0] + b[2]), b[1] - (a[1] + a[3]), a[1] - (b[1] + b[3]), 0);
}

const median = (v) => { const s = [...v].sort((a, b) => a - b), m = s.length >> 1; return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2; };

// deploy/group.py lines: [index, line] in reading order, along the writing's own direction
export function lines(boxes, steps = true) {
  if (!boxes.length) return [];
  const c = boxes.map(([x, y, w, h]) => [x + w / 2, y + h / 2]), hs = boxes.map((b) => b[3]);
  const height = median(hs), angles = [], tan60 = Math.tan((60 * Math.PI) / 180);
  for (let i = 0; i < c.length; i++) {
    let best = -1, bestD = Infinity;
    for (let j = 0; j < c.length; j++) {
      const dx = c[j][0] - c[i][0], dy = c[j][1] - c[i][1];
      if (!(dx > 0 && Math.abs(dy) <= tan60 * dx)) continue;
      const d = Math.hypot(dx, dy);
      if (d < bestD) { bestD = d; best = j; }
    }
    if (best >= 0 && bestD < 3 * Math.max(hs[i], height)) angles.push(Math.atan2(c[best][1] - c[i][1], c[best][0] - c[i][0]));
  }
  let theta = angles.length ? median(angles) : 0;
  if (Math.abs(theta) < (8 * Math.PI) / 180) theta = 0;
  const cos = Math.cos(theta), sin = Math.sin(theta);
  const along = c.map(([x, y]) => x * cos + y * sin), across = c.map(([x, y]) => -x * sin + y * cos);
  const order = along.map((_, i) => i).sort((a, b) => along[a] - along[b] || a - b);
  if (steps && Math.max(...across.map((a, i) => a - hs[i] / 2)) < Math.min(...across.map((a, i) => a + hs[i] / 2))) {
    return order.map((i) => [i, 0]);  // one level crosses them all: one line
  }
  const groups = [];
  for (const i of order) {
    let best = null, bestD = 0.6;
    for (const g of groups) {
      const j = g[g.length - 1], d = Math.abs(across[i] - across[j]) / Math.min(hs[i], hs[j]);
      if (d < bestD) { best = g; bestD = d; }
    }
    if (best) best.push(i); else groups.push([i]);
  }
  const key = groups.map((g) => median(g.map((i) => across[i])));
  const sorted = groups.map((g, k) => [g, key[k], k]).sort((a, b) => a[1] - b[1] || a[2] - b[2]).map(([g]) => g);
  // a line that starts where the one before it ends, a step up or down, continues it
  for (let k = 0; steps && k + 1 < sorted.length;) {
    let a = sorted[k], b = sorted[k + 1];
    if (along[b[0]] < along[a[0]]) [a, b] = [b, a];
    const last = a[a.length - 1], first = b[0];
    if (along[last] + hs[last] / 2 <= along[first] && Math.abs(across[first] - across[last]) < STEP * Math.min(hs[first], hs[last])
        && along[first] - along[last] < 3 * Math.max(hs[first], hs[last])) {
      sorted.splice(k, 2, [...a, ...b]);
    } else k++;
  }
  const out = [];
  sorted.forEach((g, n) => g.forEach((i) => out.push([i, n])));
  return out;
}

// deploy/preprocess.py segment with a verifier: the digits of a frame in reading order, in frame pixels
export async function segmentVerified(rgba, w, h, cfg = CONFIG, verify, single = false) {
  const { ink, mask, f, single: one } = scan(rgba, w, h, cfg, single, true);
  if (one) return segment(rgba, w, h, cfg, single);
  return (await read(ink, mask, cfg, verify)).map(({ box: [x, y, bw, bh], image: im, line, p }) =>
    ({ box: [x * f, y * f, bw * f, bh * f], line, image: im, p }));
}
