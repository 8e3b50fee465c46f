// chart.js -- loss curves on <canvas>, as TensorBoard and W&B draw them: one or more
// series, an exponential-moving-average smoothing (debiased, so the start is not
// pulled towards 0) drawn over the faint raw line, a linear or log y axis with round
// ticks (1, 2, 5 x 10^k), the best (lowest) epoch of each series marked, and a hover
// / keyboard cursor that reads every series at one epoch. Redraws are coalesced to
// one per animation frame, so a burst of events costs one draw (none while the tab
// is hidden).
import { h } from './dom.js';

export const PALETTE = ['#1f77b4', '#d62728', '#2ca02c', '#9467bd', '#ff7f0e', '#17becf', '#8c564b', '#e377c2'];

const PREFS_KEY = 'sola-chart';
const LIVE_MS = 250;
function loadPrefs() {
  try { return Object.assign({ smoothing: 0.6, log: false }, JSON.parse(localStorage.getItem(PREFS_KEY) || '{}')); } catch {
    return { smoothing: 0.6, log: false };
  }
}
function savePrefs(p) {
  try { localStorage.setItem(PREFS_KEY, JSON.stringify(p)); } catch { /* storage disabled */ }
}

export function fmtLoss(v) {
  if (v === null || v === undefined || !Number.isFinite(v)) return '–';
  const a = Math.abs(v);
  if (a !== 0 && (a < 1e-3 || a >= 1e5)) return v.toExponential(3);
  return v.toPrecision(4);
}

// ---- ticks ------------------------------------------------------------------------

// A round step (1, 2 or 5 x 10^k) giving about `count` intervals over span.
export function niceStep(span, count) {
  if (!(span > 0)) return 1;
  const raw = span / Math.max(1, count);
  const p = 10 ** Math.floor(Math.log10(raw));
  const f = raw / p;
  return (f <= 1 ? 1 : f <= 2 ? 2 : f <= 5 ? 5 : 10) * p;
}

// Round ticks covering [lo, hi]: {lo, hi, ticks} with lo/hi widened to ticks.
export function niceTicks(lo, hi, count) {
  if (!(hi > lo)) { const d = Math.abs(lo) * 0.05 || 0.01; lo -= d; hi += d; }
  const step = niceStep(hi - lo, count);
  const a = Math.floor(lo / step + 1e-9) * step, b = Math.ceil(hi / step - 1e-9) * step;
  const ticks = [];
  for (let v = a, k = 0; v <= b + step * 1e-6 && k < 50; k++, v = a + k * step)
    ticks.push(Number(v.toPrecision(12)));
  return { lo: a, hi: b, ticks, step };
}

// Log-axis ticks over [lo, hi] (both > 0): decades, plus 2 and 5 when few decades.
export function logTicks(lo, hi) {
  const a = Math.floor(Math.log10(lo) + 1e-9), b = Math.ceil(Math.log10(hi) - 1e-9);
  const ticks = [];
  const decades = Math.max(1, b - a);
  const mults = decades <= 2 ? [1, 2, 5] : [1];
  for (let e = a; e <= b; e++) for (const m of mults) {
    const v = m * 10 ** e;
    if (v >= lo * 0.999 && v <= hi * 1.001) ticks.push(Number(v.toPrecision(12)));
  }
  if (ticks.length < 2) { // a narrow range inside one decade: round linear ticks in log space
    return { lo, hi, ticks: niceTicks(lo, hi, 4).ticks.filter((v) => v >= lo && v <= hi) };
  }
  return { lo, hi, ticks };
}

function tickLabel(v, step) {
  if (v === 0) return '0';
  const a = Math.abs(v);
  if (a >= 1e5 || a < 1e-3) return v.toExponential(step && Math.abs(step / v) < 0.1 ? 1 : 0);
  const digits = step ? Math.max(0, Math.min(6, -Math.floor(Math.log10(step) + 1e-9))) : 3;
  return v.toFixed(digits);
}

// ---- smoothing --------------------------------------------------------------------

// Debiased EMA (TensorBoard's): out[i] = sum_k w^k y[i-k] (1-w) / (1 - w^(i+1)).
export function smooth(ys, w) {
  if (!(w > 0)) return ys.slice();
  const out = new Array(ys.length);
  let last = 0, n = 0;
  for (let i = 0; i < ys.length; i++) {
    const y = ys[i];
    if (!Number.isFinite(y)) { out[i] = y; continue; }
    last = last * w + (1 - w) * y;
    n++;
    out[i] = last / (1 - w ** n);
  }
  return out;
}

const wgt0 = (w) => (w > 0 ? w : 0);

export function best(points) {
  let b = null;
  for (const p of points) if (Number.isFinite(p.y) && (!b || p.y < b.y)) b = p;
  return b;
}

// ---- the chart --------------------------------------------------------------------

// new LossChart({id, label, empty}) -> .el (controls + canvas + hover readout);
// .set(series, {xmax, empty}) with series = [{name, color, points: [{x, y}], live: {x, y}}].
export class LossChart {
  constructor(opts = {}) {
    const id = opts.id || 'loss-chart';
    this.prefs = loadPrefs();
    this.series = [];
    this.xmax = 1;
    this.empty = opts.empty || 'no loss yet';
    this.hoverX = null;
    this.pending = false;
    this.lastDraw = 0;
    this.canvas = h('canvas', { id, class: 'chart', tabindex: 0, role: 'img',
      'aria-label': opts.label || 'loss per epoch' });
    this.readout = h('p', { class: 'chart-readout muted', id: `${id}-hover`, 'aria-live': 'polite' }, ' ');
    this.smoothIn = h('input', { type: 'range', min: 0, max: 0.99, step: 0.01, value: this.prefs.smoothing,
      id: `${id}-smoothing`, 'aria-label': 'smoothing' });
    this.smoothOut = h('output', { for: `${id}-smoothing` }, this.prefs.smoothing.toFixed(2));
    this.logIn = h('input', { type: 'checkbox', id: `${id}-log`, checked: this.prefs.log });
    this.controls = h('div', { class: 'row chart-controls' },
      h('label', { for: `${id}-smoothing` }, 'Smoothing ', this.smoothIn, ' ', this.smoothOut),
      h('label', { class: 'check', for: `${id}-log` }, this.logIn, ' log scale'));
    this.el = h('div', { class: 'chart-box' }, this.controls, this.canvas, this.readout);
    this.smoothIn.addEventListener('input', () => {
      this.prefs.smoothing = Number(this.smoothIn.value);
      this.smoothOut.textContent = this.prefs.smoothing.toFixed(2);
      savePrefs(this.prefs);
      this.redraw();
    });
    this.logIn.addEventListener('change', () => { this.prefs.log = this.logIn.checked; savePrefs(this.prefs); this.redraw(); });
    this.canvas.addEventListener('mousemove', (ev) => {
      if (!this.layout) return;
      const r = this.canvas.getBoundingClientRect();
      this.hoverX = this.layout.invX(ev.clientX - r.left);
      this.redraw();
    });
    this.canvas.addEventListener('mouseleave', () => { this.hoverX = null; this.redraw(); });
    this.canvas.addEventListener('keydown', (ev) => {
      const d = { ArrowLeft: -1, ArrowRight: 1, Home: -Infinity, End: Infinity }[ev.key];
      if (d === undefined || !this.series.length) return;
      ev.preventDefault();
      const n = Math.max(...this.series.map((s) => s.points.length));
      const step = ev.shiftKey ? 10 : 1;
      let x = this.hoverX ?? n;
      x = d === -Infinity ? 1 : d === Infinity ? n : Math.round(x) + d * step;
      this.hoverX = Math.min(Math.max(1, x), Math.max(1, n));
      this.redraw();
    });
    this.canvas.addEventListener('blur', () => { this.hoverX = null; this.redraw(); });
  }

  set(series, opts = {}) {
    this.series = series;
    if (opts.xmax !== undefined) this.xmax = opts.xmax;
    if (opts.empty !== undefined) this.empty = opts.empty;
    this.redraw(opts.lazy);
  }

  // one draw per frame, whatever the number of updates; live data (lazy) at most
  // every LIVE_MS, so that a fast job costs a few draws a second
  redraw(lazy) {
    if (this.pending) return;
    this.pending = true;
    const wait = lazy ? Math.max(0, this.lastDraw + LIVE_MS - performance.now()) : 0;
    const go = () => requestAnimationFrame(() => { this.pending = false; this.lastDraw = performance.now(); this.draw(); });
    if (wait > 0) setTimeout(go, wait); else go();
  }

  draw() {
    const canvas = this.canvas;
    if (!canvas.isConnected) return;
    const dpr = window.devicePixelRatio || 1;
    const w = canvas.clientWidth || 500, hgt = canvas.clientHeight || 260;
    const W = Math.round(w * dpr), H = Math.round(hgt * dpr);
    if (canvas.width !== W || canvas.height !== H) { canvas.width = W; canvas.height = H; } // no realloc per draw
    const ctx = canvas.getContext('2d');
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    const css = getComputedStyle(document.body);
    const fg = css.getPropertyValue('--fg').trim() || '#111';
    const muted = css.getPropertyValue('--muted').trim() || '#666';
    const bg = css.getPropertyValue('--card').trim() || '#fff';
    ctx.clearRect(0, 0, w, hgt);
    ctx.font = '12px system-ui, sans-serif';
    const L = 64, R = 22, Tp = 12, Bm = 38;
    const pw = Math.max(10, w - L - R), ph = Math.max(10, hgt - Tp - Bm);
    const all = [];
    for (const s of this.series) {
      for (const p of s.points) if (Number.isFinite(p.y)) all.push(p.y);
      if (s.live && Number.isFinite(s.live.y)) all.push(s.live.y);
    }
    this.layout = null;
    if (!all.length) {
      ctx.fillStyle = muted;
      ctx.textAlign = 'center';
      ctx.textBaseline = 'middle';
      ctx.fillText(this.empty, w / 2, hgt / 2);
      canvas.dataset.ticks = '';
      canvas.dataset.empty = this.empty;
      canvas.dataset.best = '';
      this.readout.textContent = ' ';
      return;
    }
    let ylo = Infinity, yhi = -Infinity;
    for (const y of all) { if (y < ylo) ylo = y; if (y > yhi) yhi = y; }
    const canLog = ylo > 0;
    const log = this.prefs.log && canLog;
    this.logIn.disabled = !canLog;
    this.logIn.title = canLog ? '' : 'a log scale needs losses above 0';
    let yt;
    if (log) {
      const pad = (Math.log10(yhi) - Math.log10(ylo)) * 0.05 || 0.02;
      yt = logTicks(10 ** (Math.log10(ylo) - pad), 10 ** (Math.log10(yhi) + pad));
    } else {
      yt = niceTicks(ylo, yhi, 5);
    }
    const tf = log ? Math.log10 : (v) => v;
    const t0 = tf(yt.lo), t1 = tf(yt.hi);
    const Y = (y) => Tp + (1 - (tf(y) - t0) / (t1 - t0 || 1)) * ph;
    let xmax = Math.max(1, this.xmax || 1);
    for (const s of this.series) {
      const n = s.points.length ? s.points[s.points.length - 1].x : 0;
      if (n > xmax) xmax = n;
      if (s.live && s.live.x > xmax) xmax = s.live.x;
    }
    const xt = niceTicks(0, xmax, Math.max(2, Math.min(8, Math.floor(pw / 70))));
    const xhi = xt.hi;
    const X = (x) => L + (x / xhi) * pw;
    this.layout = { invX: (px) => Math.max(0, ((px - L) / pw) * xhi) };
    // grid, ticks, labels
    ctx.strokeStyle = muted;
    ctx.fillStyle = fg;
    ctx.lineWidth = 1;
    ctx.textAlign = 'right';
    ctx.textBaseline = 'middle';
    for (const v of yt.ticks) {
      const y = Y(v);
      if (y < Tp - 0.5 || y > Tp + ph + 0.5) continue;
      ctx.fillText(tickLabel(v, log ? v / 10 : yt.step), L - 6, y);
      ctx.globalAlpha = 0.15;
      ctx.beginPath(); ctx.moveTo(L, y); ctx.lineTo(L + pw, y); ctx.stroke();
      ctx.globalAlpha = 1;
    }
    ctx.textAlign = 'center';
    ctx.textBaseline = 'top';
    xt.ticks.forEach((v, k) => {
      ctx.textAlign = k === xt.ticks.length - 1 && X(v) > w - 20 ? 'right' : 'center';
      ctx.fillText(String(v), X(v), Tp + ph + 4);
    });
    ctx.textAlign = 'center';
    ctx.fillText('epoch', L + pw / 2, Tp + ph + 20);
    ctx.save();
    ctx.translate(12, Tp + ph / 2);
    ctx.rotate(-Math.PI / 2);
    ctx.textBaseline = 'middle';
    ctx.fillText(log ? 'loss (log scale)' : 'loss', 0, 0);
    ctx.restore();
    canvas.dataset.empty = '';
    canvas.dataset.ylabel = log ? 'loss (log scale)' : 'loss';
    canvas.dataset.smoothing = String(wgt0(this.prefs.smoothing));
    ctx.beginPath();
    ctx.moveTo(L, Tp); ctx.lineTo(L, Tp + ph); ctx.lineTo(L + pw, Tp + ph);
    ctx.stroke();
    canvas.dataset.ticks = yt.ticks.map((v) => tickLabel(v, log ? v / 10 : yt.step)).join(' ');
    canvas.dataset.xticks = xt.ticks.join(' ');
    // series
    const wgt = this.prefs.smoothing;
    ctx.save();
    ctx.beginPath();
    ctx.rect(L, Tp - 2, pw + 2, ph + 4);
    ctx.clip();
    const drawn = [];
    for (const s of this.series) {
      const ys = s.points.map((p) => p.y);
      const sm = smooth(ys, wgt);
      drawn.push({ s, sm });
      const line = (vals, alpha, width) => {
        ctx.globalAlpha = alpha;
        ctx.strokeStyle = s.color;
        ctx.lineWidth = width;
        ctx.beginPath();
        let open = false, lastPx = -1;
        for (let i = 0; i < vals.length; i++) {
          const v = vals[i];
          if (!Number.isFinite(v) || (log && v <= 0)) { open = false; continue; }
          const px = X(s.points[i].x), py = Y(v);
          if (open && px - lastPx < 0.25 && i < vals.length - 1) continue; // sub-pixel: skip
          if (open) ctx.lineTo(px, py); else ctx.moveTo(px, py);
          open = true;
          lastPx = px;
        }
        ctx.stroke();
      };
      if (wgt > 0) { line(ys, 0.25, 1); line(sm, 1, 2); } else line(ys, 1, 2);
      ctx.globalAlpha = 1;
      if (s.points.length <= 60) {
        ctx.fillStyle = s.color;
        for (const p of s.points) if (Number.isFinite(p.y)) { ctx.beginPath(); ctx.arc(X(p.x), Y(p.y), 2.2, 0, 7); ctx.fill(); }
      }
      if (s.live && Number.isFinite(s.live.y)) {
        ctx.strokeStyle = s.color;
        ctx.lineWidth = 1.5;
        ctx.beginPath(); ctx.arc(X(s.live.x), Y(s.live.y), 4, 0, 7); ctx.stroke();
      }
    }
    ctx.restore();
    // best marker: a diamond on the lowest epoch loss of each series
    const bests = [];
    for (const s of this.series) {
      const b = best(s.points);
      if (!b) continue;
      bests.push({ s, b });
      const x = X(b.x), y = Y(b.y);
      ctx.fillStyle = s.color;
      ctx.strokeStyle = bg;
      ctx.lineWidth = 1.5;
      ctx.beginPath(); ctx.moveTo(x, y - 6); ctx.lineTo(x + 6, y); ctx.lineTo(x, y + 6); ctx.lineTo(x - 6, y); ctx.closePath();
      ctx.fill(); ctx.stroke();
    }
    if (this.series.length === 1 && bests.length) {
      const { b } = bests[0];
      const label = `best ${fmtLoss(b.y)} @ epoch ${b.x}`;
      ctx.textBaseline = 'bottom';
      const x = X(b.x), tw = ctx.measureText(label).width;
      const left = x + 8 + tw > L + pw;
      const tx = left ? Math.max(L + 2, x - 8 - tw) : x + 8, ty = Math.max(Tp + 16, Y(b.y) - 8);
      ctx.fillStyle = bg;
      ctx.globalAlpha = 0.85;
      ctx.fillRect(tx - 3, ty - 15, tw + 6, 17);
      ctx.globalAlpha = 1;
      ctx.fillStyle = fg;
      ctx.textAlign = 'left';
      ctx.fillText(label, tx, ty);
    }
    canvas.dataset.best = bests.map(({ b }) => `${b.x}:${b.y}`).join(' ');
    // hover cursor
    if (this.hoverX !== null) {
      const e = Math.max(1, Math.round(this.hoverX));
      const parts = [];
      ctx.strokeStyle = muted;
      ctx.lineWidth = 1;
      ctx.setLineDash([4, 3]);
      ctx.beginPath(); ctx.moveTo(X(e), Tp); ctx.lineTo(X(e), Tp + ph); ctx.stroke();
      ctx.setLineDash([]);
      for (const { s, sm } of drawn) {
        const i = indexOf(s.points, e);
        if (i < 0) continue;
        const p = s.points[i];
        ctx.fillStyle = s.color;
        ctx.beginPath(); ctx.arc(X(p.x), Y(wgt > 0 ? sm[i] : p.y), 4, 0, 7); ctx.fill();
        const name = this.series.length > 1 ? `${s.name}: ` : '';
        parts.push(`${name}${fmtLoss(p.y)}${wgt > 0 ? ` (smoothed ${fmtLoss(sm[i])})` : ''}`);
      }
      this.readout.textContent = parts.length ? `epoch ${e} · loss ${parts.join(' · ')}` : `epoch ${e}: no loss recorded`;
    } else {
      const b = bests.length === 1 ? bests[0].b : null;
      this.readout.textContent = b ? `Point at the curve (or focus it and use ← →) to read a value. Best: ${fmtLoss(b.y)} at epoch ${b.x}.`
        : 'Point at the curves (or focus the chart and use ← →) to read every run at one epoch.';
    }
  }
}

// index of the point with x === e (points sorted by x; usually x = index + 1)
function indexOf(points, e) {
  if (!points.length) return -1;
  const guess = e - points[0].x;
  if (guess >= 0 && guess < points.length && points[guess].x === e) return guess;
  let lo = 0, hi = points.length - 1;
  while (lo <= hi) {
    const m = (lo + hi) >> 1;
    if (points[m].x === e) return m;
    if (points[m].x < e) lo = m + 1; else hi = m - 1;
  }
  return -1;
}
