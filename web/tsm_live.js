// tsm_live.js -- the TSM viewer's "live stream" card: follow an open stream of online
// refine (docs/streaming.md) and draw the TSM of its refined snippets as they are
// handed out. The daemon keeps no refined history: GET /streams/ID/events sends each
// batch of refined rows once (base64 float32), so the map starts at the first row
// handed out after the page connected and grows by one row and one column per
// snippet; the last MAX_ROWS are kept (older ones scroll out).
import { request } from './api.js';
import { h } from './dom.js';
import { drawHeatmap, fmt } from './plot.js';

const MAX_ROWS = 1024;

function decodeRows(b64, dim) {
  const bin = atob(b64), bytes = new Uint8Array(bin.length);
  for (let k = 0; k < bin.length; k++) bytes[k] = bin.charCodeAt(k);
  const all = new Float32Array(bytes.buffer);
  const out = [];
  for (let r = 0; r + dim <= all.length; r += dim) out.push(all.subarray(r, r + dim));
  return out;
}

// The growing map: unit rows (each over its norm + 1e-8, as the TSM of docs/spec.md section 3)
// and their similarities S[i][j], in a square buffer of capacity MAX_ROWS.
function liveMap() {
  const rows = [];
  let S = new Float32Array(0), cap = 0, first = 0;
  function grow(n) {
    if (n <= cap) return;
    const c2 = Math.min(MAX_ROWS, Math.max(64, cap * 2, n));
    const S2 = new Float32Array(c2 * c2);
    for (let i = 0; i < rows.length; i++) S2.set(S.subarray(i * cap, i * cap + rows.length), i * c2);
    S = S2;
    cap = c2;
  }
  function add(y, index) {
    let n2 = 0;
    for (let c = 0; c < y.length; c++) n2 += y[c] * y[c];
    const inv = 1 / (Math.sqrt(n2) + 1e-8), u = new Float32Array(y.length);
    for (let c = 0; c < y.length; c++) u[c] = y[c] * inv;
    if (rows.length === MAX_ROWS) { // scroll: drop the oldest row and column
      rows.shift();
      first++;
      for (let i = 0; i < rows.length; i++) S.copyWithin(i * cap, (i + 1) * cap + 1, (i + 1) * cap + 1 + rows.length);
    }
    if (!rows.length) first = index;
    grow(rows.length + 1);
    const t = rows.length;
    rows.push(u);
    for (let j = 0; j <= t; j++) {
      let d = 0;
      const v = rows[j];
      for (let c = 0; c < u.length; c++) d += u[c] * v[c];
      S[t * cap + j] = d;
      S[j * cap + t] = d;
    }
  }
  function square() { // T x T contiguous, for drawHeatmap
    const T = rows.length, out = new Float32Array(T * T);
    for (let i = 0; i < T; i++) out.set(S.subarray(i * cap, i * cap + T), i * T);
    return out;
  }
  return { add, square, get T() { return rows.length; }, get first() { return first; } };
}

export function liveCard() {
  const sel = h('select', { id: 'tsm-live-stream' });
  const refreshB = h('button', { type: 'button', id: 'tsm-live-refresh' }, 'Refresh');
  const followB = h('button', { type: 'button', class: 'primary', id: 'tsm-live-follow' }, 'Follow');
  const stopB = h('button', { type: 'button', id: 'tsm-live-stop', disabled: true }, 'Stop');
  const status = h('p', { id: 'tsm-live-status', role: 'status', 'aria-live': 'polite', class: 'muted' },
    'No stream followed.');
  const canvas = h('canvas', { id: 'tsm-live', class: 'live-heatmap', role: 'img', hidden: true,
    'aria-label': 'TSM of the followed stream, growing as refined snippets arrive' });
  const el = h('div', { class: 'card', id: 'tsm-live-card' },
    h('h3', {}, 'Follow a live stream'),
    h('p', { class: 'muted' }, 'Streams fed to POST /refine or /v2 with a sequence_id (docs/streaming.md). '
      + 'The map grows by one row and column per refined snippet, from the first one handed out after you start following.'),
    h('div', { class: 'row' }, h('label', { for: 'tsm-live-stream' }, 'Stream ', sel), refreshB, followB, stopB),
    status, canvas);

  let es = null, map = null, drawn = 0, pending = false, info = null;

  async function refresh() {
    try {
      const r = await request('GET', '/streams');
      const list = r.streams || [];
      sel.replaceChildren(...(list.length ? list.map((s) => h('option', { value: s.id },
        `${s.id} (${s.model} v${s.version}, C ${s.dim}, ${s.received} received)`))
        : [h('option', { value: '' }, 'no open streams')]));
    } catch (e) {
      sel.replaceChildren(h('option', { value: '' }, `cannot list streams: ${e.message}`));
    }
  }

  function draw() {
    pending = false;
    if (!map || !map.T || map.T === drawn) return;
    drawn = map.T;
    const data = map.square();
    let lo = Infinity, hi = -Infinity;
    for (let k = 0; k < data.length; k++) { if (data[k] < lo) lo = data[k]; if (data[k] > hi) hi = data[k]; }
    drawHeatmap(canvas, data, map.T, lo, hi > lo ? hi : lo + 1e-6, 'viridis');
    canvas.hidden = false;
    canvas.dataset.t = String(map.T);
    canvas.dataset.first = String(map.first);
    canvas.tsm = data; // the values drawn, for the console and the browser test
    status.textContent = `Following ${info.id} (${info.model} v${info.version}, R ${info.radius}): snippets `
      + `${map.first} … ${map.first + map.T - 1} drawn, colour ${fmt(lo, 3)} … ${fmt(hi, 3)}.`;
  }

  function stop(why) {
    if (es) { es.close(); es = null; }
    followB.disabled = false;
    stopB.disabled = true;
    if (why) status.textContent = why;
  }

  function follow() {
    const id = sel.value;
    if (!id) { status.textContent = 'Choose an open stream first (Refresh lists them).'; return; }
    stop();
    map = liveMap();
    drawn = 0;
    followB.disabled = true;
    stopB.disabled = false;
    status.textContent = `Connecting to ${id}…`;
    es = new EventSource(`/streams/${encodeURIComponent(id)}/events?format=b64`);
    es.addEventListener('state', (ev) => {
      info = JSON.parse(ev.data);
      status.textContent = `Following ${info.id} (${info.model} v${info.version}): waiting for refined snippets…`;
    });
    es.addEventListener('rows', (ev) => {
      const d = JSON.parse(ev.data);
      decodeRows(d.rows_b64, d.dim).forEach((y, k) => map.add(y, d.offset + k));
      if (!pending) { pending = true; requestAnimationFrame(draw); }
    });
    es.addEventListener('end', (ev) => {
      let reason = '';
      try { reason = JSON.parse(ev.data).reason; } catch { /* keep it empty */ }
      draw();
      stop(`${status.textContent} The stream is over (${reason}).`);
      el.dataset.ended = reason || 'yes';
    });
    es.onerror = () => { if (es && es.readyState === EventSource.CLOSED) stop(`Lost the stream ${id} (it is not open any more?).`); };
  }

  refreshB.addEventListener('click', refresh);
  followB.addEventListener('click', follow);
  stopB.addEventListener('click', () => stop('Stopped following.'));
  refresh();
  return { el, stop: () => stop() };
}
