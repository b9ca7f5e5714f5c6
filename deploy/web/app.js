// The edgedigits web app: the phone's camera -> digits on paper -> the model, all in the browser.
// Nothing leaves the device: the model and runtime are files of this app, cached by sw.js for offline use.
import { cropsZip } from './crops.js';
import { segmentVerified } from './group.js';
import { CONFIG, segment } from './preprocess.js';

const $ = (id) => document.getElementById(id);
const video = $('video'), overlay = $('overlay'), work = document.createElement('canvas');
const MAX_SIDE = 640;  // camera frames are processed at most this size: the pipeline's 640x480 budget
const PHOTO_SIDE = 1600;  // a photo is read once: keep enough pixels for a small digit in a 12 MP picture

const state = { frames: 0, last: null, history: [], stream: null, cameras: [], cameraIndex: 0, fps: 0, running: false };
window.edgedigits = state;

function say(msg) { $('status').textContent = msg; }
function fail(msg) { const m = $('message'); m.textContent = msg; m.hidden = false; }

// ------------------------------------------------------------------------------------ the model
async function loadModel() {
  const meta = await (await fetch('model.json')).json();
  if (meta.input.dtype !== 'float32') throw new Error(`the app feeds float32 digits; ${meta.model} takes ${meta.input.dtype}`);
  meta.segmentConfig = { ...CONFIG, ...(meta.segment || {}) };  // the Python pipeline's settings win
  const n = meta.labels.length;
  const ort = await import('./runtime/ort.wasm.min.mjs');
  ort.env.wasm.wasmPaths = new URL('runtime/', location.href).href;
  ort.env.wasm.numThreads = 1;  // no SharedArrayBuffer needed: works without cross-origin isolation
  const session = await ort.InferenceSession.create(meta.model, { executionProviders: ['wasm'] });
  const runner = (s, input, output) => async (digits, count) => {
    const x = new Float32Array(count * 784);
    for (let i = 0; i < x.length; i++) x[i] = digits[i] * meta.pixel_scale;  // the contract (model.json)
    const out = await s.run({ [input]: new ort.Tensor('float32', x, [count, 28, 28, 1]) });
    return out[output].data;
  };
  const run = runner(session, meta.input.name, meta.output.name);
  let verify = null;  // the digit verifier: which pieces are digits (group.js); a model of other classes has none
  if (meta.verifier) {
    const v = meta.verifier;
    const probs = runner(await ort.InferenceSession.create(v.model, { executionProviders: ['wasm'] }), v.input, v.output);
    verify = async (digits, count) => {
      const p = await probs(digits, count), out = new Float32Array(count);
      for (let i = 0; i < count; i++) out[i] = p[2 * i + 1];  // [not a digit, a digit]
      return out;
    };
  }
  return { meta, run, n, verify };
}

// ---------------------------------------------------------------------------------- one frame
function packDigits(found) {
  const digits = new Uint8Array(found.length * 784);
  found.forEach((d, i) => digits.set(d.image, i * 784));
  return digits;
}

// deploy/camera.py readable: a piece the verifier is sure of, or one the classifier reads confidently
function readable(d, p, model) {
  if (d.p === undefined || d.p >= model.meta.segmentConfig.sureDigit) return true;
  let best = 0;
  for (let k = 1; k < p.length; k++) if (p[k] > p[best]) best = k;
  return p[best] >= model.meta.confidence;
}

async function recognize(model, rgba, w, h, single = false) {
  const t0 = performance.now();
  const found = model.verify ? await segmentVerified(rgba, w, h, model.meta.segmentConfig, model.verify, single)
    : segment(rgba, w, h, model.meta.segmentConfig, single);
  const t1 = performance.now();
  let probs = new Float32Array(0), kept = found;
  if (found.length) {
    const all = await model.run(packDigits(found), found.length);
    // a piece the verifier doubts and the classifier cannot read is not a digit: no "?" for it (camera.py)
    const keep = found.map((_, i) => i).filter((i) => readable(found[i], all.subarray(i * model.n, (i + 1) * model.n), model));
    kept = keep.map((i) => found[i]);
    probs = new Float32Array(keep.length * model.n);
    keep.forEach((i, k) => probs.set(all.subarray(i * model.n, (i + 1) * model.n), k * model.n));
  }
  const t2 = performance.now();
  let text = '', line = 0;
  const results = kept.map((d, i) => {
    const p = probs.subarray(i * model.n, (i + 1) * model.n);
    let best = 0;
    for (let k = 1; k < model.n; k++) if (p[k] > p[best]) best = k;
    const label = p[best] >= model.meta.confidence ? model.meta.labels[best] : '?';
    if (d.line !== line) { text += ' '; line = d.line; }
    text += label;
    return { label, confidence: p[best], box: d.box, image: Array.from(d.image), probs: Array.from(p) };
  });
  return { text, digits: results, timings: { preprocess_ms: t1 - t0, inference_ms: t2 - t1, total_ms: t2 - t0 } };
}

function draw(result, scale, background = null) {
  const ctx = overlay.getContext('2d');
  ctx.clearRect(0, 0, overlay.width, overlay.height);
  if (background) ctx.drawImage(background, 0, 0, overlay.width, overlay.height);
  const size = Math.max(12, Math.round(Math.min(overlay.width, overlay.height) / 22));  // labels scale with the picture
  ctx.lineWidth = Math.max(2, size / 8);
  ctx.font = `bold ${size}px system-ui`;
  for (const d of result.digits) {
    const [x, y, w, h] = d.box.map((v) => v / scale);
    ctx.strokeStyle = ctx.fillStyle = d.label === '?' ? '#ffa000' : '#00d060';
    ctx.strokeRect(x, y, w, h);
    ctx.fillText(`${d.label} ${Math.round(d.confidence * 100)}%`, x, y > size + 4 ? y - 4 : y + h + size);
  }
  $('text').textContent = result.text || '–';
  const t = result.timings;
  $('stats').textContent = `preprocess ${t.preprocess_ms.toFixed(1)} ms · inference ${t.inference_ms.toFixed(1)} ms · ` +
    (background ? '' : `${state.fps} FPS · `) + `${state.model.meta.runtime} (${state.model.meta.format})`;
}

function grab(source, sw, sh, maxSide = MAX_SIDE) {
  const scale = Math.min(1, maxSide / Math.max(sw, sh));
  work.width = Math.round(sw * scale); work.height = Math.round(sh * scale);
  const ctx = work.getContext('2d', { willReadFrequently: true });
  ctx.imageSmoothingQuality = 'high';  // an area average when shrinking: thin pen strokes survive
  ctx.drawImage(source, 0, 0, work.width, work.height);
  return { data: ctx.getImageData(0, 0, work.width, work.height).data, w: work.width, h: work.height, scale };
}

async function loop() {
  if (!state.running) return;
  $('stage').classList.remove('photo');
  if (video.readyState >= 2 && video.videoWidth) {
    const t0 = performance.now();
    const f = grab(video, video.videoWidth, video.videoHeight);
    const result = await recognize(state.model, f.data, f.w, f.h);
    overlay.width = video.clientWidth; overlay.height = video.clientHeight;
    const now = performance.now();  // frames per second: the frames completed in the last second, counted
    state.done = (state.done || []).filter((t) => t > now - 1000).concat(now);
    state.fps = state.done.length;
    state.frames++;
    state.last = result;
    result.timings.frame_ms = performance.now() - t0;  // grab + preprocess + inference
    state.history.push(result.timings);
    if (state.history.length > 1000) state.history.shift();
    draw(result, f.scale * video.videoWidth / video.clientWidth);
  }
  requestAnimationFrame(loop);
}

// ------------------------------------------------------------------------------------ cameras
async function startCamera() {
  $('message').hidden = true;
  if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
    fail('The camera needs a secure context: open this page over HTTPS, or on localhost. Photo mode still works.');
    return;
  }
  try {
    if (state.stream) state.stream.getTracks().forEach((t) => t.stop());
    const cam = state.cameras[state.cameraIndex];
    const constraints = { audio: false, video: cam ? { deviceId: { exact: cam.deviceId } } : { facingMode: 'environment', width: { ideal: 1280 } } };
    state.stream = await navigator.mediaDevices.getUserMedia(constraints);
    video.srcObject = state.stream;
    await video.play();
    state.cameras = (await navigator.mediaDevices.enumerateDevices()).filter((d) => d.kind === 'videoinput');
    $('switch').disabled = state.cameras.length < 2;
    say('reading digits from the camera');
    if (!state.running) { state.running = true; requestAnimationFrame(loop); }
  } catch (e) {
    const why = {
      NotAllowedError: 'Camera access was refused. Allow the camera for this site in the browser settings, or use Photo.',
      NotFoundError: 'No camera was found on this device. Use Photo to read digits from a picture.',
      OverconstrainedError: 'This camera cannot be used. Try Switch camera, or use Photo.',
      NotReadableError: 'The camera is in use by another app. Close it and press Start camera.',
    }[e.name] || `The camera could not start (${e.name}: ${e.message}). Use Photo instead.`;
    fail(why);
    say('camera unavailable');
  }
}

// A photo (Photo button, or a picture from the gallery): shown in the page's flow, where the video would
// be, scaled to fit the screen, with the result, the stats and any message below it.
async function fromPhoto(file, single = false) {
  state.running = false;
  if (state.stream) { state.stream.getTracks().forEach((t) => t.stop()); state.stream = null; }
  const bitmap = await createImageBitmap(file);
  const f = grab(bitmap, bitmap.width, bitmap.height, PHOTO_SIDE);
  const result = await recognize(state.model, f.data, f.w, f.h, single);
  result.box_scale = 1 / f.scale;
  result.digits.forEach((d) => { d.box = d.box.map((v) => Math.round(v / f.scale)); });  // in the photo's pixels
  state.last = result;
  $('stage').classList.add('photo');
  overlay.width = Math.min(bitmap.width, 1280);
  overlay.height = Math.round(overlay.width * bitmap.height / bitmap.width);
  draw(result, bitmap.width / overlay.width, bitmap);
  say('read from a photo');
  return result;
}

// ------------------------------------------------------------------------------------- start
async function main() {
  if ('serviceWorker' in navigator) {
    navigator.serviceWorker.register('sw.js').catch((e) => console.warn('offline cache unavailable:', e));
  }
  state.model = await loadModel();
  say(`model ready (${state.model.meta.format}, ${state.model.meta.runtime})`);
  // for tests and the curious: run the pipeline on any RGBA image
  state.recognize = (rgba, w, h, single = false) => recognize(state.model, rgba, w, h, single);
  state.readPhoto = async (url, single = false) => fromPhoto(await (await fetch(url)).blob(), single);
  state.segment = segment;
  $('start').onclick = startCamera;
  $('switch').onclick = () => { state.cameraIndex = (state.cameraIndex + 1) % state.cameras.length; startCamera(); };
  $('photo').onchange = (e) => e.target.files[0] && fromPhoto(e.target.files[0]);
  $('crops').onclick = async () => {  // the last frame's digits as the model saw them, to fine-tune on
    if (!state.last || !state.last.digits.length) { say('no digits to save yet'); return; }
    const a = document.createElement('a');
    a.href = URL.createObjectURL(await cropsZip(state.last, state.model.meta.labels, state.running ? 'camera' : 'photo', state.frames));
    a.download = `crops-${state.frames}.zip`;
    a.click();
    setTimeout(() => URL.revokeObjectURL(a.href), 10000);
    say(`saved ${state.last.digits.length} crops`);
  };
  await startCamera();
}

state.ready = main().catch((e) => { fail(`Could not start: ${e.message}`); throw e; });
