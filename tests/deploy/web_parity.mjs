// The web app's pipeline (deploy/web/preprocess.js, group.js) checked function by function against what
// the Python pipeline wrote: `node tests/deploy/web_parity.mjs DIR`, DIR written by
// tests/deploy/test_web_parity.py (DIR/cases.json and one raw .u8 file per image). Each JavaScript
// function gets the very input its Python counterpart got, so a difference points at one function.
// Prints one JSON line per check ({case, check, ok, detail}); exits 1 when any check fails.
//
// Tolerances: none where the values are whole numbers: grey (under OpenCV 5, whose 15-bit weights
// preprocess.js uses; under OpenCV 4, one level on at most 1% of pixels), the search-size image, ink map,
// hysteresis mask, mask without paper lines, pieces, merged groups, boxes, reading order, ink extent,
// valleys, ellipse misfits, lines, every 28x28 digit (toMnist, segment, segmentVerified: measured identical on the drawn
// inputs and the 94 development photos). 1e-9 for the doubles (the threshold, stroke widths), 1e-6 for
// the verifier's float32 probabilities.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

import * as G from '../../deploy/web/group.js';
import * as P from '../../deploy/web/preprocess.js';

const dir = process.argv[2];
const cases = JSON.parse(readFileSync(join(dir, 'cases.json'), 'utf8'));
const u8 = (c, name) => new Uint8Array(readFileSync(join(dir, c.name, `${name}.u8`)));
const image = (c, name, w, h) => P.img(w, h, u8(c, name));
const same = (a, b) => JSON.stringify(a) === JSON.stringify(b);
let failed = 0;

function report(c, check, ok, detail = '') {
  if (!ok) failed++;
  console.log(JSON.stringify({ case: c.name, check, ok, detail: String(detail).slice(0, 400) }));
}

function exactPixels(c, check, got, want) {
  let diff = 0, first = -1;
  for (let i = 0; i < want.length; i++) if (got[i] !== want[i]) { diff++; if (first < 0) first = i; }
  report(c, check, got.length === want.length && diff === 0,
    got.length !== want.length ? `length ${got.length}, expected ${want.length}` : `${diff} pixels differ, first at ${first}`);
}

// at most `maxCount` pixels differ, none by more than `maxDiff` grey levels (a 28x28 digit: none)
function nearPixels(c, check, got, want, maxDiff = 0, maxCount = 0) {
  let worst = 0, n = 0;
  for (let i = 0; i < want.length; i++) { const d = Math.abs(got[i] - want[i]); worst = Math.max(worst, d); n += d > 0 ? 1 : 0; }
  report(c, check, got.length === want.length && worst <= maxDiff && n <= maxCount, `${n} pixels differ, by at most ${worst} grey levels`);
}

function equal(c, check, got, want) {
  report(c, check, same(got, want), `got ${JSON.stringify(got)}, expected ${JSON.stringify(want)}`);
}

function close(c, check, got, want, tol) {
  const ok = got.length === want.length && got.every((v, i) => Math.abs(v - want[i]) <= tol);
  report(c, check, ok, `got ${JSON.stringify(got)}, expected ${JSON.stringify(want)}`);
}

// a verifier both sides compute alike in whole numbers: p = (pixels >= 128) / 196, at most 1
function verify(x, n) {
  const p = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    let on = 0;
    for (let j = 0; j < 784; j++) on += x[i * 784 + j] >= 128 ? 1 : 0;
    p[i] = Math.min(1, on / 196);
  }
  return p;
}

for (const c of cases) {
  const cfg = { ...P.CONFIG, ...c.config }, { w, h, sw, sh } = c;
  const rgba = u8(c, 'rgba');
  if (c.opencv_major >= 5) exactPixels(c, 'toGray', P.toGray(rgba, w, h).data, u8(c, 'gray'));
  else nearPixels(c, 'toGray (OpenCV 4: 14-bit weights)', P.toGray(rgba, w, h).data, u8(c, 'gray'), 1, Math.ceil(w * h / 100));
  const gray = image(c, 'gray', w, h);
  exactPixels(c, 'resizeArea (the search size)', c.f > 1 ? P.resizeArea(gray, sw, sh).data : gray.data, u8(c, 'shrunk'));
  const small = image(c, 'small', sw, sh);  // shrunk, inverted when light on dark
  exactPixels(c, 'inkMap', P.inkMap(small, c.k).data, u8(c, 'ink'));
  const ink = image(c, 'ink', sw, sh);
  close(c, 'inkThreshold', [P.inkThreshold(ink, cfg)], [c.threshold], 1e-9);
  exactPixels(c, 'hysteresis', P.hysteresis(ink, c.threshold, cfg.lowFrac * c.threshold).data, u8(c, 'hysteresis'));
  exactPixels(c, 'removePaperLines', P.removePaperLines(image(c, 'hysteresis', sw, sh), cfg.lineSpan).data, u8(c, 'mask'));
  const edged = image(c, 'mask', sw, sh);
  equal(c, 'pieceComponents: pieces', P.pieceComponents(edged, cfg).comps.map((p) => p.box), c.pieces);
  exactPixels(c, 'pieceComponents: the strips beyond the paper erased', edged.data, u8(c, 'mask_pieces'));
  equal(c, 'mergeGroups', P.mergeGroups(c.pieces), c.merges);
  equal(c, 'findBoxes', P.findBoxes(image(c, 'mask', sw, sh), cfg), c.boxes);
  equal(c, 'readingOrder', P.readingOrder(c.boxes).map((o) => [o.box, o.line]), c.reading);
  const mask = image(c, 'mask_pieces', sw, sh);  // as the search leaves it, and the digits are cut from it
  equal(c, 'inkExtent', P.inkExtent(mask, c.k_raw), c.extent);
  const mnist = u8(c, 'mnist'), strokes = [], valleys = [], hairless = [], ellipses = [];
  c.boxes.forEach(([x, y, bw, bh], i) => {
    const m = P.crop(mask, x, y, bw, bh);
    strokes.push(P.strokeWidth(m));
    valleys.push(G.valleys(m, bh));
    hairless.push(...G.withoutHairlines(m).data);
    ellipses.push(G.ellipseMisfit(m));
    nearPixels(c, `toMnist (box ${i})`, P.toMnist(P.crop(ink, x, y, bw, bh), m, cfg), mnist.subarray(784 * i, 784 * (i + 1)));
  });
  close(c, 'strokeWidth', strokes, c.strokes, 1e-9);
  equal(c, 'valleys', valleys, c.valleys);
  equal(c, 'ellipseMisfit', ellipses, c.ellipses);
  exactPixels(c, 'withoutHairlines', Uint8Array.from(hairless), u8(c, 'hairless'));
  equal(c, 'lines', G.lines(c.boxes), c.lines);
  equal(c, 'fromEdge', c.boxes.map((b) => G.fromEdge(b, c.sw, c.sh)), c.edge);
  equal(c, 'inNoWord', G.inNoWord(c.words.digits.map(([box, p]) => ({ box, p })), c.words.others).map((d) => d.box), c.words.kept);

  const whole = P.segment(rgba, w, h, cfg);
  equal(c, 'segment: boxes and lines', whole.map((d) => [d.box, d.line]), c.segment.map((d) => [d.box, d.line]));
  const images = u8(c, 'segment');
  whole.forEach((d, i) => nearPixels(c, `segment: digit ${i}`, d.image, images.subarray(784 * i, 784 * (i + 1))));

  const verified = await G.segmentVerified(rgba, w, h, cfg, verify);
  equal(c, 'segmentVerified: boxes and lines', verified.map((d) => [d.box, d.line]), c.verified.map((d) => [d.box, d.line]));
  // a lone digit is not verified: no p in JavaScript, Python's default of 1
  close(c, 'segmentVerified: p', verified.map((d) => d.p ?? 1), c.verified.map((d) => d.p), 1e-6);
  const vimages = u8(c, 'verified');
  verified.forEach((d, i) => nearPixels(c, `segmentVerified: digit ${i}`, d.image, vimages.subarray(784 * i, 784 * (i + 1))));
}
process.exit(failed ? 1 : 0);
