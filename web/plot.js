// plot.js -- drawing on <canvas>: TSM heatmaps in the viridis colormap the daemon's
// PNGs use (the same anchor colours as core/formats/heatmap.c, linearly interpolated), a
// diverging map for differences and colour legends (loss curves: chart.js). Also
// reads the .npy replies of GET/POST /tsm (always v1.0 '<f4' C order from solad, but
// checked) and the header of a dropped .npy.

const VIRIDIS = [
  [0x44, 0x01, 0x54], [0x47, 0x2d, 0x7b], [0x3b, 0x52, 0x8b], [0x2c, 0x72, 0x8e],
  [0x21, 0x91, 0x8c], [0x28, 0xae, 0x80], [0x5e, 0xc9, 0x62], [0xad, 0xdc, 0x30],
  [0xfd, 0xe7, 0x25],
];
// blue - white - red, for signed differences (colour-blind safe ends)
const DIVERGING = [[0x21, 0x66, 0xac], [0xf7, 0xf7, 0xf7], [0xb2, 0x18, 0x2b]];

function ramp(anchors, f, out) {
  if (!(f >= 0)) f = 0; // NaN too
  if (f > 1) f = 1;
  const pos = f * (anchors.length - 1);
  let i = Math.floor(pos);
  if (i >= anchors.length - 1) i = anchors.length - 2;
  const t = pos - i, a = anchors[i], b = anchors[i + 1];
  out[0] = Math.round(a[0] + t * (b[0] - a[0]));
  out[1] = Math.round(a[1] + t * (b[1] - a[1]));
  out[2] = Math.round(a[2] + t * (b[2] - a[2]));
  return out;
}

export const colormaps = {
  viridis: (f, out) => ramp(VIRIDIS, f, out),
  diverging: (f, out) => ramp(DIVERGING, f, out),
};

// ---- .npy -------------------------------------------------------------------------

// The header of an .npy (the first bytes are enough): {descr, fortran, shape, start}.
// Throws a plain message.
export function npyHeader(buf) {
  const u8 = new Uint8Array(buf);
  const magic = [0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59];
  if (u8.length < 10 || magic.some((m, i) => u8[i] !== m)) throw new Error('not an .npy file (bad magic)');
  const major = u8[6];
  const dv = new DataView(buf);
  let hlen, off;
  if (major === 1) { hlen = dv.getUint16(8, true); off = 10; } else { hlen = dv.getUint32(8, true); off = 12; }
  if (off + hlen > u8.length) throw new Error('.npy header is truncated');
  const header = new TextDecoder('latin1').decode(u8.subarray(off, off + hlen));
  const descr = /'descr':\s*'([^']*)'/.exec(header);
  const fortran = /'fortran_order':\s*(True|False)/.exec(header);
  const shapeM = /'shape':\s*\(([^)]*)\)/.exec(header);
  if (!descr || !fortran || !shapeM) throw new Error(`.npy header not understood: ${header.slice(0, 80)}`);
  const shape = shapeM[1].split(',').map((s) => s.trim()).filter((s) => s).map(Number);
  return { descr: descr[1], fortran: fortran[1] === 'True', shape, start: off + hlen };
}

// Parses a float32 .npy; returns {shape, data: Float32Array}. Throws a plain message.
export function parseNpy(buf) {
  const { descr, fortran, shape, start } = npyHeader(buf);
  if (descr !== '<f4') throw new Error(`expected float32 ('<f4') data, got '${descr}'`);
  if (fortran) throw new Error('expected C order data');
  const n = shape.reduce((a, b) => a * b, 1);
  if (buf.byteLength - start < n * 4) throw new Error(`.npy data is truncated (${shape.join('x')} floats expected)`);
  const data = start % 4 === 0 ? new Float32Array(buf, start, n) : new Float32Array(buf.slice(start, start + n * 4));
  return { shape, data };
}

// ---- heatmaps ---------------------------------------------------------------------

// Draws a [T, T] map onto canvas (one pixel per cell; CSS scales it up, pixelated).
// lo/hi map to the two ends of the colormap.
export function drawHeatmap(canvas, data, T, lo, hi, cmap) {
  canvas.width = T;
  canvas.height = T;
  const ctx = canvas.getContext('2d');
  const img = ctx.createImageData(T, T);
  const px = img.data, rgb = [0, 0, 0], span = hi > lo ? hi - lo : 1;
  const f = colormaps[cmap];
  for (let k = 0; k < T * T; k++) {
    f((data[k] - lo) / span, rgb);
    px[4 * k] = rgb[0];
    px[4 * k + 1] = rgb[1];
    px[4 * k + 2] = rgb[2];
    px[4 * k + 3] = 255;
  }
  ctx.putImageData(img, 0, 0);
}

// A horizontal colour bar with ticks at lo, the middle and hi.
export function drawLegend(canvas, lo, hi, cmap, label) {
  const dpr = window.devicePixelRatio || 1;
  const w = canvas.clientWidth || 300, h = 46;
  canvas.width = Math.round(w * dpr);
  canvas.height = Math.round(h * dpr);
  const ctx = canvas.getContext('2d');
  ctx.scale(dpr, dpr);
  const css = getComputedStyle(document.body);
  const fg = css.getPropertyValue('--fg').trim() || '#111';
  ctx.clearRect(0, 0, w, h);
  const rgb = [0, 0, 0], f = colormaps[cmap], x0 = 8, x1 = w - 8, barH = 14;
  for (let x = x0; x < x1; x++) {
    f((x - x0) / (x1 - x0 - 1), rgb);
    ctx.fillStyle = `rgb(${rgb[0]},${rgb[1]},${rgb[2]})`;
    ctx.fillRect(x, 4, 1, barH);
  }
  ctx.fillStyle = fg;
  ctx.font = '12px system-ui, sans-serif';
  ctx.textBaseline = 'top';
  const ticks = [[lo, 'left', x0], [(lo + hi) / 2, 'center', (x0 + x1) / 2], [hi, 'right', x1]];
  for (const [v, align, x] of ticks) {
    ctx.textAlign = align;
    ctx.fillRect(Math.min(Math.max(x, x0), x1 - 1), 18, 1, 4);
    ctx.fillText(fmt(v), x, 24);
  }
  canvas.setAttribute('aria-label', `${label}: colour scale from ${fmt(lo)} to ${fmt(hi)}`);
}

export function fmt(v, digits = 3) {
  if (v === null || v === undefined || Number.isNaN(v)) return '–';
  if (v !== 0 && (Math.abs(v) < 1e-3 || Math.abs(v) >= 1e5)) return v.toExponential(2);
  return v.toFixed(digits);
}
