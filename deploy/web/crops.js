// "Save crops": the digits of the last frame, exactly as the model saw them (28x28, white on black), as
// a zip of <label>/<source>_f<frame>_x<x>_y<y>_w<w>_h<h>.png: the layout `edgedigits deploy --collect`
// writes, so `edgedigits train --data <unzipped folder> --from MODEL` fine-tunes on them as they are.

const CRC = new Uint32Array(256).map((_, n) => {
  let c = n;
  for (let k = 0; k < 8; k++) c = c & 1 ? 0xEDB88320 ^ (c >>> 1) : c >>> 1;
  return c;
});
const crc32 = (b) => { let c = ~0; for (const v of b) c = CRC[(c ^ v) & 255] ^ (c >>> 8); return ~c >>> 0; };

// A zip of stored (uncompressed) files: PNGs are compressed already. files: [{ name, data: Uint8Array }].
export function zip(files) {
  const parts = [], central = [];
  let offset = 0;
  for (const f of files) {
    const name = new TextEncoder().encode(f.name), crc = crc32(f.data);
    const head = (sig, extra) => {
      const h = new DataView(new ArrayBuffer(extra ? 46 : 30));
      let i = 0;
      const u32 = (v) => { h.setUint32(i, v, true); i += 4; }, u16 = (v) => { h.setUint16(i, v, true); i += 2; };
      u32(sig); if (extra) u16(20);  // version made by
      u16(20); u16(0x800); u16(0); u16(0); u16(0x21);  // version needed, UTF-8 names, stored, time, date (1980-01-01)
      u32(crc); u32(f.data.length); u32(f.data.length); u16(name.length); u16(0);
      if (extra) { u16(0); u16(0); u16(0); u32(0); u32(offset); }
      return new Uint8Array(h.buffer);
    };
    const local = head(0x04034b50, false);
    parts.push(local, name, f.data);
    central.push(head(0x02014b50, true), name);
    offset += local.length + name.length + f.data.length;
  }
  const size = central.reduce((n, p) => n + p.length, 0), end = new DataView(new ArrayBuffer(22));
  end.setUint32(0, 0x06054b50, true); end.setUint16(8, files.length, true); end.setUint16(10, files.length, true);
  end.setUint32(12, size, true); end.setUint32(16, offset, true);
  return new Blob([...parts, ...central, end], { type: 'application/zip' });
}

async function png(image) {  // a 28x28 digit, grey in RGB: OpenCV reads it back as the same bytes
  const c = new OffscreenCanvas(28, 28), ctx = c.getContext('2d'), px = ctx.createImageData(28, 28);
  image.forEach((v, i) => { px.data.set([v, v, v, 255], 4 * i); });
  ctx.putImageData(px, 0, 0);
  return new Uint8Array(await (await c.convertToBlob({ type: 'image/png' })).arrayBuffer());
}

// result: recognize()'s, with each digit's image, probs and box; labels: the model's class names.
export async function cropsZip(result, labels, source, frame) {
  const files = [];
  for (const d of result.digits) {
    let best = 0;  // the folder of the class read (its best guess when it showed "?"), as --collect does
    for (let k = 1; k < d.probs.length; k++) if (d.probs[k] > d.probs[best]) best = k;
    const [x, y, w, h] = d.box.map(Math.round);
    files.push({ name: `${labels[best]}/${source}_f${String(frame).padStart(6, '0')}_x${x}_y${y}_w${w}_h${h}.png`, data: await png(d.image) });
  }
  return zip(files);
}
