// The camera preprocessing of deploy/preprocess.py, step for step, in plain JavaScript.
//
// The Python pipeline uses OpenCV; each function here reproduces the OpenCV call it mirrors (same
// border rules, same rounding, same kernel anchors, OpenCV 5's weights) so both turn the same image into
// the same 28x28 digits, pixel for pixel (tests/deploy/test_web_parity.py checks each function in Node,
// tests/deploy/test_web.py the app in Chromium). Images are
// {data: Uint8Array, w, h}, one byte per pixel, row-major.

const MAX_PIECES = 400;  // deploy/preprocess.py MAX_PIECES

// SegmentConfig of deploy/preprocess.py (the app's model.json carries the Python values, which win).
export const CONFIG = {
  maxSide: 320, smallDigit: 20, minHeight: 8, minInkFrac: 0.35, minContrast: 20, lowFrac: 0.5,
  paperFrac: 1 / 12, lineSpan: 0.8, maxAspect: 2.2, maxStroke: 0.4, relativeHeight: 0.4,
  strokeTarget: 2.6, singleSide: 64, minDigit: 0.1, sureDigit: 0.5,
};

export const img = (w, h, data) => ({ w, h, data: data || new Uint8Array(w * h) });
const round = (v) => Math.floor(v + 0.5);  // deploy/preprocess.py _round
const rint = (v) => { const f = Math.floor(v); const d = v - f; return d > 0.5 || (d === 0.5 && f % 2 !== 0) ? f + 1 : f; };  // cvRound: half to even
const sat = (v) => (v < 0 ? 0 : v > 255 ? 255 : v);

// cv2.cvtColor(RGBA -> GRAY): Y = 0.299 R + 0.587 G + 0.114 B in OpenCV 5's 15-bit fixed point (OpenCV 4's
// 14-bit weights differ by one grey level on 0.25% of random colours)
export function toGray(rgba, w, h) {
  const out = img(w, h);
  for (let i = 0, j = 0; i < w * h; i++, j += 4) {
    out.data[i] = (rgba[j] * 9798 + rgba[j + 1] * 19235 + rgba[j + 2] * 3735 + 16384) >> 15;
  }
  return out;
}

// cv2.resize(..., INTER_AREA): each output pixel is the area-weighted mean of the input it covers
export function resizeArea(src, dw, dh) {
  const fx = src.w / dw, fy = src.h / dh, out = img(dw, dh);
  if (fx < 1 || fy < 1) return enlargeArea(src, dw, dh);  // a digit smaller than 20 px, brought up to it
  if (Number.isInteger(fx) && Number.isInteger(fy)) {  // OpenCV's fast path: whole blocks, mean rounded
    const inv = Math.fround(1 / (fx * fy));
    for (let dy = 0; dy < dh; dy++) {
      for (let dx = 0; dx < dw; dx++) {
        let s = 0;
        for (let y = dy * fy; y < (dy + 1) * fy; y++) {
          const row = y * src.w;
          for (let x = dx * fx; x < (dx + 1) * fx; x++) s += src.data[row + x];
        }
        // OpenCV rounds the 2x2 mean half up in integers, other whole factors half to even in float32
        out.data[dy * dw + dx] = fx === 2 && fy === 2 ? (s + 2) >> 2 : sat(rint(Math.fround(s * inv)));
      }
    }
    return out;
  }
  // OpenCV's tables and sums, in float32 as it computes them: per output index, the first source index and
  // the weights that follow
  const f32 = Math.fround, tabs = (sn, dn) => {
    const scale = 1 / (dn / sn), start = new Int32Array(dn), weights = [];
    for (let d = 0; d < dn; d++) {
      const f1 = d * scale, f2 = f1 + scale, cell = Math.min(scale, sn - f1);
      const s2 = Math.min(Math.floor(f2), sn - 1), s1 = Math.min(Math.ceil(f1), s2), w = [];
      start[d] = s1 - f1 > 1e-3 ? s1 - 1 : s1;
      if (s1 - f1 > 1e-3) w.push(f32((s1 - f1) / cell));
      for (let s = s1; s < s2; s++) w.push(f32(1 / cell));
      if (f2 - s2 > 1e-3) w.push(f32(Math.min(Math.min(f2 - s2, 1), cell) / cell));
      weights.push(Float32Array.from(w));
    }
    return [start, weights];
  };
  const [xs, xw] = tabs(src.w, dw), [ys, yw] = tabs(src.h, dh);
  const rows = new Float32Array(src.h * dw);  // horizontal pass for every source row
  for (let y = 0; y < src.h; y++) {
    for (let dx = 0; dx < dw; dx++) {
      const w = xw[dx], x0 = xs[dx], base = y * src.w + x0;
      let s = 0;
      for (let k = 0; k < w.length; k++) s = f32(s + f32(src.data[base + k] * w[k]));
      rows[y * dw + dx] = s;
    }
  }
  for (let dy = 0; dy < dh; dy++) {
    const w = yw[dy], y0 = ys[dy];
    for (let dx = 0; dx < dw; dx++) {
      let s = 0;
      for (let k = 0; k < w.length; k++) s = f32(s + f32(rows[(y0 + k) * dw + dx] * w[k]));
      out.data[dy * dw + dx] = sat(rint(s));
    }
  }
  return out;
}

// cv2.resize(..., INTER_AREA) when either side grows: OpenCV's bilinear with "area" weights (a pixel
// repeated, blended only across its edge), 11-bit fixed-point weights
function enlargeArea(src, dw, dh) {
  const f32 = Math.fround, coefs = (sn, dn) => {
    const inv = dn / sn, scale = 1 / inv, idx = new Int32Array(dn), a0 = new Int32Array(dn), a1 = new Int32Array(dn);
    for (let d = 0; d < dn; d++) {
      let s = Math.floor(d * scale), f = f32((d + 1) - (s + 1) * inv);
      f = f <= 0 ? 0 : f32(f - Math.floor(f));
      if (s >= sn - 1) { s = sn - 1; f = 0; }
      idx[d] = s;
      a0[d] = rint(f32(1 - f) * 2048);  // saturate_cast<short>(weight * INTER_RESIZE_COEF_SCALE)
      a1[d] = rint(f * 2048);
    }
    return [idx, a0, a1];
  };
  const [xi, xa0, xa1] = coefs(src.w, dw), [yi, yb0, yb1] = coefs(src.h, dh), out = img(dw, dh);
  const rows = new Int32Array(src.h * dw);
  for (let y = 0; y < src.h; y++) {
    for (let dx = 0; dx < dw; dx++) {
      const x0 = xi[dx], x1 = Math.min(x0 + 1, src.w - 1);
      rows[y * dw + dx] = src.data[y * src.w + x0] * xa0[dx] + src.data[y * src.w + x1] * xa1[dx];
    }
  }
  for (let dy = 0; dy < dh; dy++) {
    const r0 = yi[dy] * dw, r1 = Math.min(yi[dy] + 1, src.h - 1) * dw, b0 = yb0[dy], b1 = yb1[dy];
    for (let dx = 0; dx < dw; dx++) {  // rounded as OpenCV's vector code does: cv2.resize's own results
      out.data[dy * dw + dx] = sat(((((rows[r0 + dx] >> 4) * b0) >> 16) + (((rows[r1 + dx] >> 4) * b1) >> 16) + 2) >> 2);
    }
  }
  return out;
}

// cv2.resize(..., INTER_LINEAR_EXACT): bilinear with 8-bit fixed-point weights, rounded once at the end
export function resizeLinear(src, dw, dh) {
  const coefs = (sn, dn) => {
    const scale = sn / dn, idx = new Int32Array(dn), a = new Int32Array(dn);
    for (let d = 0; d < dn; d++) {
      let f = (d + 0.5) * scale - 0.5, s = Math.floor(f);
      f -= s;
      if (s < 0) { s = 0; f = 0; }
      if (s >= sn - 1) { s = sn - 1; f = 0; }
      idx[d] = s;
      a[d] = rint(f * 256);
    }
    return [idx, a];
  };
  const [xi, xa] = coefs(src.w, dw), [yi, ya] = coefs(src.h, dh), out = img(dw, dh);
  const rows = new Int32Array(src.h * dw);  // horizontal pass, 8 fractional bits
  for (let y = 0; y < src.h; y++) {
    for (let dx = 0; dx < dw; dx++) {
      const x0 = xi[dx], x1 = Math.min(x0 + 1, src.w - 1), a = xa[dx];
      rows[y * dw + dx] = src.data[y * src.w + x0] * (256 - a) + src.data[y * src.w + x1] * a;
    }
  }
  for (let dy = 0; dy < dh; dy++) {
    const r0 = yi[dy] * dw, r1 = Math.min(yi[dy] + 1, src.h - 1) * dw, b = ya[dy];
    for (let dx = 0; dx < dw; dx++) out.data[dy * dw + dx] = (rows[r0 + dx] * (256 - b) + rows[r1 + dx] * b + 32768) >>> 16;
  }
  return out;
}

// cv2.resize(..., INTER_NEAREST)
export function resizeNearest(src, dw, dh) {
  const out = img(dw, dh), sx = src.w / dw, sy = src.h / dh;
  for (let y = 0; y < dh; y++) {
    const yy = Math.min(Math.floor(y * sy), src.h - 1);
    for (let x = 0; x < dw; x++) out.data[y * dw + x] = src.data[yy * src.w + Math.min(Math.floor(x * sx), src.w - 1)];
  }
  return out;
}

// cv2.dilate with a kw x kh rectangle, anchor at the centre, pixels outside ignored. Each 1-D pass is
// van Herk / Gil-Werman: three comparisons per pixel whatever the kernel size. Erosion is dilation of
// the inverted image (min(x) = 255 - max(255 - x)).
function dilateRows(data, w, h, k) {
  const a = Math.floor(k / 2), len = w + k, buf = new Uint8Array(len), g = new Uint8Array(len), hh = new Uint8Array(len);
  for (let y = 0; y < h; y++) {
    const r = y * w;
    buf.fill(0);
    buf.set(data.subarray(r, r + w), a);
    for (let i = 0; i < len; i++) { const v = buf[i], p = g[i - 1]; g[i] = i % k === 0 || p < v ? v : p; }
    for (let i = len - 1; i >= 0; i--) { const v = buf[i], p = hh[i + 1]; hh[i] = i === len - 1 || (i + 1) % k === 0 || p < v ? v : p; }
    for (let i = 0; i < w; i++) { const u = hh[i], v = g[i + k - 1]; data[r + i] = u > v ? u : v; }
  }
}

function dilateCols(data, w, h, k) {  // on whole rows at once, so memory is read in order
  const a = Math.floor(k / 2), len = h + k;
  const B = new Uint8Array(len * w), G = new Uint8Array(len * w), H = new Uint8Array(len * w);
  B.set(data, a * w);
  for (let i = 0; i < len; i++) {
    const r = i * w;
    if (i % k === 0) { G.set(B.subarray(r, r + w), r); continue; }
    for (let x = r; x < r + w; x++) { const p = G[x - w], v = B[x]; G[x] = p < v ? v : p; }
  }
  for (let i = len - 1; i >= 0; i--) {
    const r = i * w;
    if (i === len - 1 || (i + 1) % k === 0) { H.set(B.subarray(r, r + w), r); continue; }
    for (let x = r; x < r + w; x++) { const p = H[x + w], v = B[x]; H[x] = p < v ? v : p; }
  }
  for (let y = 0; y < h; y++) {
    const lo = y * w, hi = (y + k - 1) * w;
    for (let x = 0; x < w; x++) { const u = H[lo + x], v = G[hi + x]; data[lo + x] = u > v ? u : v; }
  }
}

export function dilateRect(src, kw, kh) {
  const data = new Uint8Array(src.data);
  if (kw > 1) dilateRows(data, src.w, src.h, kw);
  if (kh > 1) dilateCols(data, src.w, src.h, kh);
  return img(src.w, src.h, data);
}

const invert = (s) => img(s.w, s.h, s.data.map((v) => 255 - v));
export const erodeRect = (s, kw, kh) => invert(dilateRect(invert(s), kw, kh));

// cv2.getStructuringElement(MORPH_ELLIPSE, (2r+1, 2r+1)) as row spans
function ellipseSpans(r) {
  const spans = [], c = r, inv = r ? 1 / (r * r) : 0;
  for (let i = 0; i <= 2 * r; i++) {
    const dy = i - r;
    const dx = Math.abs(dy) <= r ? rint(c * Math.sqrt((r * r - dy * dy) * inv)) : -1;
    spans.push(dx < 0 ? null : [Math.max(c - dx, 0), Math.min(c + dx + 1, 2 * r + 1)]);
  }
  return spans;
}

// cv2.dilate with the ellipse; with erode, cv2.erode with BORDER_CONSTANT 0 (outside is background).
// The ellipse is rows of centred spans: a running maximum along each row per span width, then the
// maximum over the ellipse's rows: O(pixels x r), not O(pixels x r^2) (a 1600x1200 frame read by
// tests/deploy/test_web_parity.py: 312 s -> 11 s in Node)
function dilateEllipse(src, r, erode = false) {
  const { w, h } = src, spans = ellipseSpans(r), pad = erode ? 255 : 0;  // eroding = dilating the inverse
  const data = erode ? src.data.map((v) => 255 - v) : src.data, out = new Uint8Array(w * h), byWidth = new Map();
  const rowMax = (d) => {  // max over [x - d, x + d] of each row, outside the image counting as `pad`
    const m = new Uint8Array(w * h), q = new Int32Array(w + 2 * d + 1);
    for (let y = 0; y < h; y++) {
      let head = 0, tail = 0;
      const at = (i) => (i < 0 || i >= w ? pad : data[y * w + i]);
      for (let i = -d; i < w + d; i++) {  // a deque of positions whose values decrease
        const v = at(i);
        while (tail > head && at(q[tail - 1]) <= v) tail--;
        q[tail++] = i;
        if (q[head] < i - 2 * d) head++;
        if (i - d >= 0) m[y * w + i - d] = at(q[head]);
      }
    }
    return m;
  };
  for (let i = 0; i <= 2 * r; i++) {
    if (!spans[i]) continue;
    const d = (spans[i][1] - spans[i][0] - 1) / 2, dy = i - r;  // the spans are centred on the middle column
    if (!byWidth.has(d)) byWidth.set(d, rowMax(d));
    const m = byWidth.get(d);
    for (let y = 0; y < h; y++) {
      const yy = y + dy;
      if (yy < 0 || yy >= h) { if (pad) out.fill(pad, y * w, (y + 1) * w); continue; }
      for (let x = 0; x < w; x++) { const v = m[yy * w + x]; if (v > out[y * w + x]) out[y * w + x] = v; }
    }
  }
  if (erode) for (let i = 0; i < out.length; i++) out[i] = 255 - out[i];
  return img(w, h, out);
}

// cv2.blur: k x k mean, BORDER_REFLECT_101
export function boxBlur(src, k) {
  const a = Math.floor(k / 2), reflect = (i, n) => (n === 1 ? 0 : i < 0 ? -i : i >= n ? 2 * n - 2 - i : i);
  const tmp = new Float64Array(src.w * src.h), out = img(src.w, src.h);
  for (let y = 0; y < src.h; y++) {
    for (let x = 0; x < src.w; x++) {
      let s = 0;
      for (let j = x - a; j < x - a + k; j++) s += src.data[y * src.w + reflect(j, src.w)];
      tmp[y * src.w + x] = s;
    }
  }
  for (let y = 0; y < src.h; y++) {
    for (let x = 0; x < src.w; x++) {
      let s = 0;
      for (let i = y - a; i < y - a + k; i++) s += tmp[reflect(i, src.h) * src.w + x];
      out.data[y * src.w + x] = sat(rint(s / (k * k)));
    }
  }
  return out;
}

// deploy/preprocess.py _light_on_dark: chalk on a board, MNIST's white-on-black digits
function lightOnDark(gray) {
  const hist = new Float64Array(256);
  let n = 0;
  for (let y = 0; y < gray.h; y += 2) for (let x = 0; x < gray.w; x += 2) { hist[gray.data[y * gray.w + x]]++; n++; }
  let cum = 0, median = -1, bright = -1;
  for (let i = 0; i < 256; i++) {
    cum += hist[i] / n;
    if (median < 0 && cum >= 0.5) median = i;
    if (bright < 0 && cum >= 0.995) bright = i;
  }
  return median < 80 && bright > median + 100;
}

// deploy/preprocess.py ink_map: dark strokes on uneven, tinted paper -> bright ink on black
export function inkMap(gray, kPx) {
  const small = resizeArea(gray, Math.max(gray.w >> 2, 1), Math.max(gray.h >> 2, 1));
  const k = Math.max(3, round(kPx / 4) | 1);
  const closed = erodeRect(dilateRect(small, k, k), k, k);  // closing
  const blurred = boxBlur(closed, k);
  for (let i = 0; i < closed.data.length; i++) if (blurred.data[i] < closed.data[i]) closed.data[i] = blurred.data[i];
  const paper = resizeLinear(closed, gray.w, gray.h);
  const out = img(gray.w, gray.h);
  for (let i = 0; i < out.data.length; i++) out.data[i] = sat(paper.data[i] - gray.data[i]);
  return out;
}

export function inkThreshold(ink, cfg = CONFIG) {
  const hist = new Float64Array(256);  // every other pixel of every other row, as preprocess.py
  for (let y = 0; y < ink.h; y += 2) for (let x = 0; x < ink.w; x += 2) hist[ink.data[y * ink.w + x]]++;
  const total = Math.ceil(ink.h / 2) * Math.ceil(ink.w / 2);
  let omega = 0, mu = 0, muT = 0, best = -1, otsu = 0, strongest = -1;
  for (let i = 0; i < 256; i++) muT += (hist[i] / total) * i;
  for (let i = 0; i < 256; i++) {
    omega += hist[i] / total;
    mu += (hist[i] / total) * i;
    if (omega > 1e-9 && omega < 1 - 1e-9) {
      const between = (muT * omega - mu) ** 2 / (omega * (1 - omega));
      if (between > best) { best = between; otsu = i; }
    }
    if (strongest < 0 && omega >= 0.998) strongest = i;
  }
  return Math.max(otsu, cfg.minInkFrac * strongest, cfg.minContrast);
}

// 8-connected components (cv2.connectedComponentsWithStats): labels from 1 in OpenCV's order, and boxes.
// OpenCV labels 2x2 blocks (Spaghetti), rows of blocks top to bottom, so a piece is numbered by the first
// block it has ink in: one starting a row lower but further left can come first.
export function components(bin) {
  const { w, h, data } = bin, labels = new Int32Array(w * h), boxes = [null], stack = [];
  for (let b = 0; b < w * h; b++) {
    const bx = 2 * (b % Math.ceil(w / 2)), by = 2 * Math.floor(b / Math.ceil(w / 2));
    if (by >= h) break;
    let start = -1;  // the block's pixels are 8-connected: at most one new piece starts in it
    for (const [dx, dy] of [[0, 0], [1, 0], [0, 1], [1, 1]]) {
      const x = bx + dx, y = by + dy, p = y * w + x;
      if (start < 0 && x < w && y < h && data[p] && !labels[p]) start = p;
    }
    if (start < 0) continue;
    const id = boxes.length;
    let x0 = w, y0 = h, x1 = -1, y1 = -1;
    stack.push(start);
    labels[start] = id;
    while (stack.length) {
      const p = stack.pop(), x = p % w, y = (p - x) / w;
      if (x < x0) x0 = x; if (x > x1) x1 = x; if (y < y0) y0 = y; if (y > y1) y1 = y;
      for (let dy = -1; dy <= 1; dy++) {
        for (let dx = -1; dx <= 1; dx++) {
          const xx = x + dx, yy = y + dy, q = yy * w + xx;
          if (xx >= 0 && yy >= 0 && xx < w && yy < h && data[q] && !labels[q]) { labels[q] = id; stack.push(q); }
        }
      }
    }
    boxes.push([x0, y0, x1 - x0 + 1, y1 - y0 + 1]);
  }
  return { labels, boxes };
}

// deploy/preprocess.py hysteresis: pixels above high, and those above low connected to them
export function hysteresis(ink, high, low) {
  const weak = img(ink.w, ink.h);
  for (let i = 0; i < ink.data.length; i++) weak.data[i] = ink.data[i] > low ? 255 : 0;
  const { labels, boxes } = components(weak), strong = new Uint8Array(boxes.length), out = img(ink.w, ink.h);
  for (let i = 0; i < ink.data.length; i++) if (ink.data[i] > high) strong[labels[i]] = 1;
  for (let i = 0; i < ink.data.length; i++) out.data[i] = labels[i] && strong[labels[i]] ? 255 : 0;
  return out;
}

export function binarize(ink, cfg = CONFIG) {
  const t = inkThreshold(ink, cfg);
  return removePaperLines(hysteresis(ink, t, cfg.lowFrac * t), cfg.lineSpan);
}

function longRuns(small, length, horizontal, span) {
  const kw = horizontal ? length : 1, kh = horizontal ? 1 : length;
  const runs = dilateRect(erodeRect(small, kw, kh), kw, kh);  // opening
  const { labels, boxes } = components(runs), keep = new Uint8Array(boxes.length), out = img(small.w, small.h);
  const area = new Int32Array(boxes.length);
  for (let i = 0; i < labels.length; i++) area[labels[i]]++;
  let lines = 0;
  for (let i = 1; i < boxes.length; i++) {
    const extent = boxes[i][horizontal ? 2 : 3];  // long and thin (a digit's stroke in a close-up is thick)
    if (extent >= span && area[i] <= 3 * extent) { keep[i] = 1; lines++; }
  }
  if (lines < 2) return out;  // one long stroke alone: the stem of a digit, or a lone line
  for (let i = 0; i < out.data.length; i++) out.data[i] = keep[labels[i]] ? 255 : 0;
  return out;
}

// deploy/preprocess.py remove_paper_lines
export function removePaperLines(mask, lineSpan) {
  const { w, h } = mask;
  let rows = 0, cols = 0;
  for (let y = 0; y < h; y++) {
    let s = 0;
    for (let x = 0; x < w; x++) s += mask.data[y * w + x];
    if (s / w / 255 >= lineSpan / 2) rows++;
  }
  for (let x = 0; x < w; x++) {
    let s = 0;
    for (let y = 0; y < h; y++) s += mask.data[y * w + x];
    if (s / h / 255 >= lineSpan / 2) cols++;
  }
  if (rows < 2 && cols < 2) return mask;
  const small = resizeArea(mask, Math.max(w >> 2, 1), Math.max(h >> 2, 1));
  for (let i = 0; i < small.data.length; i++) small.data[i] = small.data[i] > 40 ? 255 : 0;
  const hor = longRuns(small, Math.max(2, Math.floor(small.w / 8)), true, round(small.w * lineSpan));
  let level = false;  // upright lines only beside level ones (squared paper): alone, they are digits' stems
  for (let i = 0; i < hor.data.length && !level; i++) level = hor.data[i] > 0;
  if (!level) return mask;
  const ver = longRuns(small, Math.max(2, Math.floor(small.h / 8)), false, round(small.h * lineSpan));
  for (let i = 0; i < hor.data.length; i++) hor.data[i] |= ver.data[i];
  const wide = dilateRect(resizeNearest(hor, w, h), 3, 3), out = img(w, h);
  for (let i = 0; i < out.data.length; i++) out.data[i] = sat(mask.data[i] - wide.data[i]);
  return out;
}

// deploy/preprocess.py components: the ink's pieces (label, box); a strip hugging the frame's edge is erased
export function pieceComponents(mask, cfg = CONFIG) {
  const { w, h } = mask, { labels, boxes } = components(dilateRect(mask, 3, 3));
  const n = boxes.length, top = new Int32Array(n), bottom = new Int32Array(n), left = new Int32Array(n), right = new Int32Array(n);
  for (let x = 0; x < w; x++) { top[labels[x]]++; bottom[labels[(h - 1) * w + x]]++; }
  for (let y = 0; y < h; y++) { left[labels[y * w]]++; right[labels[y * w + w - 1]]++; }
  const beyond = new Uint8Array(n);
  let erase = false;
  for (let i = 1; i < n; i++) {
    const [, , bw, bh] = boxes[i];
    beyond[i] = (Math.max(top[i], bottom[i]) * 3 > w && bh * 3 < bw) || (Math.max(left[i], right[i]) * 3 > h && bw * 3 < bh) ? 1 : 0;
    erase = erase || beyond[i] === 1;
  }
  if (erase) for (let i = 0; i < mask.data.length; i++) if (beyond[labels[i]]) mask.data[i] = 0;
  const minPiece = Math.max(2, Math.floor(cfg.minHeight / 3));
  let keep = [];
  for (let i = 1; i < n; i++) if (!beyond[i] && Math.max(boxes[i][2], boxes[i][3]) >= minPiece) keep.push(i);
  if (keep.length > MAX_PIECES) {  // a frame of clutter: its largest pieces are enough
    keep = keep.map((i, k) => [i, k]).sort((p, q) => boxes[q[0]][2] * boxes[q[0]][3] - boxes[p[0]][2] * boxes[p[0]][3] || p[1] - q[1])
      .slice(0, MAX_PIECES).map((p) => p[0]).sort((p, q) => p - q);
  }
  return { labels, comps: keep.map((i) => ({ id: i, box: boxes[i] })) };
}

export function pieces(mask, cfg = CONFIG) {
  return pieceComponents(mask, cfg).comps.map((c) => c.box);
}

// deploy/preprocess.py merge_groups: the pieces of one digit (one above the other sharing most of a
// column, or one inside the other), every pair of group boxes tested each round, at most 8 rounds
export function mergeGroups(boxes) {
  let groups = boxes.map((_, i) => [i]), b = boxes.map((x) => x.slice());
  for (let round = 0; round < 8 && groups.length > 1; round++) {
    const parent = groups.map((_, i) => i);
    const root = (i) => { while (parent[i] !== i) { parent[i] = parent[parent[i]]; i = parent[i]; } return i; };
    let any = false;
    for (let i = 0; i < b.length; i++) {
      for (let j = i + 1; j < b.length; j++) {
        const o = b[i], q = b[j];
        const ox = Math.min(o[0] + o[2], q[0] + q[2]) - Math.max(o[0], q[0]);
        const oy = Math.min(o[1] + o[3], q[1] + q[3]) - Math.max(o[1], q[1]);
        const stacked = ox > 0.6 * Math.min(o[2], q[2]) && -oy < 0.25 * Math.max(o[3], q[3]);
        const inside = ox > 0.5 * Math.min(o[2], q[2]) && oy > 0.5 * Math.min(o[3], q[3]);
        if (stacked || inside) { parent[root(i)] = root(j); any = true; }
      }
    }
    if (!any) break;
    const joined = new Map();
    for (let i = 0; i < groups.length; i++) {
      const r = root(i);
      if (!joined.has(r)) joined.set(r, []);
      joined.get(r).push(i);
    }
    const members = [...joined.values()];
    groups = members.map((m) => m.flatMap((i) => groups[i]));
    b = members.map((m) => unionBox(m.map((i) => b[i])));
  }
  return groups;
}

export function unionBox(boxes) {
  const x0 = Math.min(...boxes.map((q) => q[0])), y0 = Math.min(...boxes.map((q) => q[1]));
  const x1 = Math.max(...boxes.map((q) => q[0] + q[2])), y1 = Math.max(...boxes.map((q) => q[1] + q[3]));
  return [x0, y0, x1 - x0, y1 - y0];
}

function merge(boxes) {
  return mergeGroups(boxes).map((g) => unionBox(g.map((i) => boxes[i])));
}

export function findBoxes(mask, cfg = CONFIG) {
  const keep = [];
  for (const [x, y, bw, bh] of merge(pieces(mask, cfg))) {
    if (bh < cfg.minHeight || bw / bh > cfg.maxAspect) continue;
    const box = crop(mask, x, y, bw, bh);
    let on = 0;
    for (const v of box.data) on += v ? 1 : 0;
    if (on < 0.03 * bw * bh || strokeWidth(box) > cfg.maxStroke * bh) continue;
    keep.push([x, y, bw, bh]);
  }
  if (!keep.length) return keep;
  const tallest = Math.max(...keep.map((b) => b[3]));
  return keep.filter((b) => b[3] >= cfg.relativeHeight * tallest);
}

function singleBox(boxes) {
  if (!boxes.length) return [];
  const largest = Math.max(...boxes.map((b) => Math.max(b[2], b[3])));
  const big = boxes.filter((b) => Math.max(b[2], b[3]) >= largest / 5);
  const x0 = Math.min(...big.map((b) => b[0])), y0 = Math.min(...big.map((b) => b[1]));
  const x1 = Math.max(...big.map((b) => b[0] + b[2])), y1 = Math.max(...big.map((b) => b[1] + b[3]));
  return [[x0, y0, x1 - x0, y1 - y0]];
}

const median = (v) => { const s = [...v].sort((a, b) => a - b), m = s.length >> 1; return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2; };

// deploy/preprocess.py reading_order: left to right, a box joins the line whose last box it overlaps most
export function readingOrder(boxes) {
  const lines = [];
  for (const b of [...boxes].sort((a, c) => a[0] - c[0])) {
    let best = null, bestOverlap = 0.5;
    for (const line of lines) {
      const o = line[line.length - 1];
      const overlap = (Math.min(o[1] + o[3], b[1] + b[3]) - Math.max(o[1], b[1])) / Math.min(o[3], b[3]);
      if (overlap > bestOverlap) { best = line; bestOverlap = overlap; }
    }
    if (best) best.push(b); else lines.push([b]);
  }
  lines.sort((p, q) => median(p.map((b) => b[1] + b[3] / 2)) - median(q.map((b) => b[1] + b[3] / 2)));
  const out = [];
  lines.forEach((l, i) => l.forEach((b) => out.push({ box: b, line: i })));
  return out;
}

export function crop(src, x, y, w, h) {
  const out = img(w, h);
  for (let r = 0; r < h; r++) out.data.set(src.data.subarray((y + r) * src.w + x, (y + r) * src.w + x + w), r * w);
  return out;
}

export function strokeWidth(mask) {
  let area = 0, interior = 0;
  const { w, h, data } = mask, at = (x, y) => (x >= 0 && y >= 0 && x < w && y < h ? data[y * w + x] : 0);
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      if (!data[y * w + x]) continue;
      area++;
      if (at(x - 1, y) && at(x + 1, y) && at(x, y - 1) && at(x, y + 1)) interior++;
    }
  }
  return (2 * area) / Math.max(area - interior, 1);
}

export function boundingRect(mask) {
  let x0 = mask.w, y0 = mask.h, x1 = -1, y1 = -1;
  for (let y = 0; y < mask.h; y++) for (let x = 0; x < mask.w; x++) if (mask.data[y * mask.w + x]) {
    if (x < x0) x0 = x; if (x > x1) x1 = x; if (y < y0) y0 = y; if (y > y1) y1 = y;
  }
  return x1 < 0 ? null : [x0, y0, x1 - x0 + 1, y1 - y0 + 1];
}

export const count = (m) => { let n = 0; for (const v of m.data) n += v ? 1 : 0; return n; };

const LARGE = 80;  // deploy/preprocess.py LARGE
const pad = (src, w, h) => {  // zeros to the right and below, to w x h
  const out = img(w, h);
  for (let y = 0; y < src.h; y++) out.data.set(src.data.subarray(y * src.w, (y + 1) * src.w), y * w);
  return out;
};

// deploy/preprocess.py to_mnist: one digit's ink and mask -> 28x28, MNIST's layout
export function toMnist(ink, mask, cfg = CONFIG) {
  const out = new Uint8Array(784), r0 = boundingRect(mask);
  if (!r0) return out;
  const keep = dilateRect(mask, 3, 3);
  const masked = img(ink.w, ink.h);
  for (let i = 0; i < masked.data.length; i++) masked.data[i] = keep.data[i] ? ink.data[i] : 0;
  let digit = crop(masked, ...r0);
  let m = crop(mask, ...r0);
  const k = Math.floor(Math.max(digit.w, digit.h) / LARGE);
  if (k >= 2) {  // a large piece is first shrunk by a whole factor, padded to a multiple of it
    const dw = Math.ceil(digit.w / k), dh = Math.ceil(digit.h / k);
    digit = resizeArea(pad(digit, dw * k, dh * k), dw, dh);
    m = resizeArea(pad(m, dw * k, dh * k), dw, dh);
    for (let i = 0; i < m.data.length; i++) m.data[i] = m.data[i] > 0 ? 255 : 0;
  }
  const grow = (cfg.strokeTarget * Math.max(digit.w, digit.h) / 20 - strokeWidth(m)) / 2;
  if (grow >= 0.5) {  // a thin pen: thicken
    const r = round(grow), padded = img(digit.w + 2 * r, digit.h + 2 * r);
    for (let y = 0; y < digit.h; y++) padded.data.set(digit.data.subarray(y * digit.w, (y + 1) * digit.w), (y + r) * padded.w + r);
    digit = dilateEllipse(padded, r);
  } else if (grow <= -1) {  // a marker: thin, if a stroke survives
    const r = round(-grow), thin = dilateEllipse(m, r, true);
    if (count(thin) >= Math.floor(count(m) / 4)) {
      for (let i = 0; i < digit.data.length; i++) if (!thin.data[i]) digit.data[i] = 0;
      digit = crop(digit, ...boundingRect(thin));
    }
  }
  const scale = 20 / Math.max(digit.w, digit.h);
  const nw = Math.max(1, round(digit.w * scale)), nh = Math.max(1, round(digit.h * scale));
  const small = resizeArea(digit, nw, nh);
  let peak = 0;
  for (const v of small.data) peak = Math.max(peak, v);
  const f = new Float32Array(nw * nh);
  let m00 = 0, m10 = 0, m01 = 0;
  for (let y = 0; y < nh; y++) for (let x = 0; x < nw; x++) {
    const v = Math.fround(small.data[y * nw + x] * Math.fround(peak ? 255 / peak : 1));
    f[y * nw + x] = v;
    m00 += v; m10 += v * x; m01 += v * y;
  }
  const cx = m00 ? m10 / m00 : nw / 2, cy = m00 ? m01 / m00 : nh / 2;
  const ox = Math.min(Math.max(round(14 - cx), 0), 28 - nw), oy = Math.min(Math.max(round(14 - cy), 0), 28 - nh);
  for (let y = 0; y < nh; y++) for (let x = 0; x < nw; x++) out[(oy + y) * 28 + ox + x] = Math.min(255, Math.max(0, Math.trunc(f[y * nw + x])));
  return out;
}

const shrink = (gray, f) => (f > 1 ? resizeArea(gray, Math.floor(gray.w / f), Math.floor(gray.h / f)) : gray);

// deploy/preprocess.py ink_extent: the tallest cluster of ink, pieces less than k apart joined, at 1/4 size
export function inkExtent(mask, k) {
  const small = resizeArea(mask, Math.max(mask.w >> 2, 1), Math.max(mask.h >> 2, 1));
  for (let i = 0; i < small.data.length; i++) small.data[i] = small.data[i] > 0 ? 1 : 0;
  const r = Math.max(1, round(k / 4)), { boxes } = components(dilateRect(small, r, r));
  let tallest = 0;
  for (let i = 1; i < boxes.length; i++) tallest = Math.max(tallest, boxes[i][3]);
  return 4 * tallest;
}

// deploy/preprocess.py drop_specks: specks of at most 3x3 pixels (the dots of dotted squared paper) removed
export function dropSpecks(mask) {
  const { labels, boxes } = components(mask), speck = boxes.map((b, i) => i > 0 && b[2] <= 3 && b[3] <= 3);
  if (!speck.some(Boolean)) return mask;
  const out = img(mask.w, mask.h);
  for (let i = 0; i < mask.data.length; i++) out.data[i] = speck[labels[i]] ? 0 : mask.data[i];
  return out;
}

// deploy/preprocess.py _search: the paper over a narrow window, then over half the ink's extent in a close-up
function search(small, cfg, single, specks = false) {
  let k = Math.min(small.w, small.h) * cfg.paperFrac, ink, mask, boxes;
  for (let pass = 0; pass < 2; pass++) {
    ink = inkMap(small, round(k));
    mask = binarize(ink, cfg);
    if (specks) mask = dropSpecks(mask);
    boxes = single ? singleBox(pieces(mask, cfg)) : findBoxes(mask, cfg);
    const extent = inkExtent(mask, k);
    if (extent / 2 <= 1.5 * k) break;
    k = Math.min(extent / 2, Math.min(small.w, small.h) / 3);
  }
  return { ink, mask, boxes };
}

// deploy/preprocess.py segment, up to the search: grey, inverted if light on dark, searched at the
// search size and again at twice the resolution for small or no digits. {ink, mask, boxes, f, single}
export function scan(rgba, w, h, cfg = CONFIG, single = false, specks = false) {
  let gray = toGray(rgba, w, h);
  single = single || Math.max(w, h) <= cfg.singleSide;
  let f = Math.ceil(Math.max(w, h) / cfg.maxSide);  // the smallest whole factor that fits maxSide
  let small = shrink(gray, f);
  if (lightOnDark(small)) { gray = invert(gray); small = shrink(gray, f); }  // judged at the search size
  let found = search(small, cfg, single, specks && !single);
  const tallest = Math.max(0, ...found.boxes.map((b) => b[3]));
  if ((f > 1 && tallest > 0 && tallest < cfg.smallDigit) || (f >= 3 && !found.boxes.length)) {
    const fine = Math.ceil(f / 2), again = search(shrink(gray, fine), cfg, single, specks && !single);  // small or no digits: twice the resolution
    if (again.boxes.length) { f = fine; found = again; }
  }
  return { ...found, f, single };
}

// deploy/preprocess.py segment without a verifier: every digit of a frame by the geometric rules, in
// reading order; with single, the image is one digit
export function segment(rgba, w, h, cfg = CONFIG, single = false) {
  if (w === 28 && h === 28) {  // already a model input: as it is (deploy/preprocess.py segment)
    const gray = toGray(rgba, w, h);
    let sum = 0;
    for (const v of gray.data) sum += v;
    const image = sum / 784 > 127 ? gray.data.map((v) => 255 - v) : gray.data;
    return [{ box: [0, 0, 28, 28], line: 0, image }];
  }
  const { ink, mask, boxes, f } = scan(rgba, w, h, cfg, single);
  return readingOrder(boxes).map(({ box: [x, y, bw, bh], line }) => ({
    box: [x * f, y * f, bw * f, bh * f],  // in the frame's pixels
    line,
    image: toMnist(crop(ink, x, y, bw, bh), crop(mask, x, y, bw, bh), cfg),
  }));
}
