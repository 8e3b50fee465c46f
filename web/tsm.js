// tsm.js -- the TSM viewer: the temporal self-similarity map of a stored dataset item
// (GET /tsm) or of a dropped .npy (POST /tsm, its C checked against the model's
// first), raw and refined side by side, each with axes in frames (or seconds, given
// the feature stride), its own colour scale and legend (per map, percentiles, shared
// or the full -1..1), a cursor that the pointer or the arrow keys move over every map
// at once, and the difference between the refined maps of two versions.
import { request } from './api.js';
import { h } from './dom.js';
import { parseNpy, npyHeader, drawHeatmap, drawLegend, fmt } from './plot.js';
import { niceTicks } from './chart.js';
import { liveCard } from './tsm_live.js';

const SPF_KEY = 'sola-tsm-spf';

async function fetchTsm(src, kind, model, version) {
  const q = new URLSearchParams({ tsm: kind, format: 'npy' });
  if (kind === 'refined') { q.set('model', model); if (version) q.set('version', String(version)); }
  let r;
  if (src.file) {
    r = await request('POST', `/tsm?${q}`, { body: src.file, binary: true,
      headers: { 'Content-Type': 'application/x-npy', Accept: 'application/x-npy' } });
  } else {
    q.set('dataset', src.dataset);
    q.set('item', src.item);
    r = await request('GET', `/tsm?${q}`, { binary: true, headers: { Accept: 'application/x-npy' } });
  }
  const a = parseNpy(r.buf);
  if (a.shape.length !== 2 || a.shape[0] !== a.shape[1]) throw new Error(`TSM has shape ${a.shape.join('×')}, expected T×T`);
  return { T: a.shape[0], data: a.data, model: r.headers.get('X-Model'), version: r.headers.get('X-Model-Version') };
}

// [lo, hi] of a map: min-max, or the 2nd-98th percentiles (of at most 200k samples).
function range(data, mode) {
  if (mode === 'pct') {
    const n = data.length, stride = Math.max(1, Math.floor(n / 200000));
    const s = new Float32Array(Math.ceil(n / stride));
    for (let k = 0, i = 0; i < n; i += stride) s[k++] = data[i];
    s.sort();
    const lo = s[Math.floor(0.02 * (s.length - 1))], hi = s[Math.ceil(0.98 * (s.length - 1))];
    if (hi > lo) return [lo, hi];
  }
  let lo = Infinity, hi = -Infinity;
  for (let k = 0; k < data.length; k++) { const v = data[k]; if (v < lo) lo = v; if (v > hi) hi = v; }
  return hi > lo ? [lo, hi] : [lo - 1e-6, hi + 1e-6];
}

// Ticks along one axis of a T-frame map: frames, or seconds when spf (seconds per
// feature frame) is given. Returns [{pos: fraction along the axis, label}].
function axisTicks(T, spf, px) {
  const count = Math.max(2, Math.min(8, Math.floor(px / 60)));
  if (spf > 0) {
    const t = niceTicks(0, T * spf, count);
    return t.ticks.filter((v) => v <= T * spf + 1e-9).map((v) => ({ pos: v / spf / T, label: `${Number(v.toPrecision(6))}` }));
  }
  const t = niceTicks(0, T, count);
  return t.ticks.filter((v) => v <= T).map((v) => ({ pos: v / T, label: String(v) }));
}

function drawAxis(canvas, T, spf, vertical) {
  const dpr = window.devicePixelRatio || 1;
  const w = canvas.clientWidth || 40, hgt = canvas.clientHeight || 40;
  canvas.width = Math.round(w * dpr);
  canvas.height = Math.round(hgt * dpr);
  const ctx = canvas.getContext('2d');
  ctx.scale(dpr, dpr);
  const css = getComputedStyle(document.body);
  ctx.fillStyle = css.getPropertyValue('--fg').trim() || '#111';
  ctx.strokeStyle = css.getPropertyValue('--muted').trim() || '#666';
  ctx.font = '11px system-ui, sans-serif';
  const len = vertical ? hgt : w;
  const ticks = axisTicks(T, spf, len);
  const unit = spf > 0 ? 'time (s)' : 'frame';
  if (vertical) {
    ctx.textAlign = 'right';
    ctx.textBaseline = 'middle';
    for (const t of ticks) {
      const y = Math.min(hgt - 1, t.pos * hgt);
      ctx.fillRect(w - 5, y, 5, 1);
      ctx.fillText(t.label, w - 7, Math.min(Math.max(y, 6), hgt - 6));
    }
    ctx.save();
    ctx.translate(8, hgt / 2);
    ctx.rotate(-Math.PI / 2);
    ctx.textAlign = 'center';
    ctx.fillText(`${unit} i`, 0, 0);
    ctx.restore();
  } else {
    ctx.textAlign = 'center';
    ctx.textBaseline = 'top';
    for (const t of ticks) {
      const x = Math.min(w - 1, t.pos * w);
      ctx.fillRect(x, 0, 1, 5);
      ctx.textAlign = x < 10 ? 'left' : x > w - 10 ? 'right' : 'center';
      ctx.fillText(t.label, x, 7);
    }
    ctx.textAlign = 'center';
    ctx.fillText(`${unit} j`, w / 2, 22);
  }
  canvas.dataset.ticks = ticks.map((t) => t.label).join(' ');
}

export function tsmView(params) {
  const dsSel = h('select', { id: 'tsm-dataset' });
  const itemSel = h('select', { id: 'tsm-item' });
  const fileIn = h('input', { id: 'tsm-file', type: 'file', accept: '.npy', hidden: true });
  const fileName = h('span', { class: 'muted', id: 'tsm-file-name' }, 'no file');
  const fileErr = h('p', { class: 'error', id: 'tsm-file-error', role: 'alert', hidden: true });
  const modelSel = h('select', { id: 'tsm-model' });
  const verSel = h('select', { id: 'tsm-version' });
  const cmpSel = h('select', { id: 'tsm-compare' });
  const scaleSel = h('select', { id: 'tsm-scale' },
    h('option', { value: 'pct' }, 'each map: 2nd–98th percentile'),
    h('option', { value: 'map' }, 'each map: its min … max'),
    h('option', { value: 'shared' }, 'one scale for raw and refined'),
    h('option', { value: 'full' }, 'full range −1 … 1'));
  let spfSaved = '';
  try { spfSaved = localStorage.getItem(SPF_KEY) || ''; } catch { /* storage disabled */ }
  const spfIn = h('input', { id: 'tsm-spf', type: 'number', min: 0, step: 'any', value: spfSaved, placeholder: 'frames only',
    title: 'feature stride in seconds, e.g. 16 frames at 30 fps = 0.5333' });
  const showB = h('button', { type: 'button', class: 'primary', id: 'tsm-show' }, 'Show');
  const HINT = 'Point at a map (or focus it and use the arrow keys, Shift for steps of 10) to read S[i, j] on every map.';
  const readout = h('p', { id: 'tsm-readout', role: 'status', 'aria-live': 'polite', class: 'readout' }, HINT);
  const maps = h('div', { class: 'maps', id: 'tsm-maps' });
  const drop = h('div', { class: 'dropzone small-drop', id: 'tsm-drop' },
    'Drop an .npy sequence [T, C] here, or ',
    h('button', { type: 'button', onclick: () => fileIn.click() }, 'choose one…'), ' ', fileName);
  const el = h('section', { 'aria-labelledby': 'tsm-title' },
    h('h2', { id: 'tsm-title' }, 'TSM viewer'),
    h('p', { class: 'muted' }, 'S[i, j] is the cosine similarity of snippets i and j. Actions show as bright blocks along the diagonal; refinement should make them sharper.'),
    h('div', { class: 'card grid-form tsm-controls' },
      h('label', { for: 'tsm-dataset' }, 'Dataset', dsSel),
      h('label', { for: 'tsm-item' }, 'Item', itemSel),
      drop, fileErr, fileIn,
      h('label', { for: 'tsm-model' }, 'Model', modelSel),
      h('label', { for: 'tsm-version' }, 'Version', verSel),
      h('label', { for: 'tsm-compare' }, 'Compare with version', cmpSel),
      h('label', { for: 'tsm-scale' }, 'Colour scale', scaleSel),
      h('label', { for: 'tsm-spf' }, 'Seconds per feature frame (optional)', spfIn),
      h('div', { class: 'row' }, showB)),
    readout, maps);
  const live = liveCard(); // a stream of online refine, followed as it goes (tsm_live.js)
  el.append(live.el);

  let models = [], file = null, fileC = null, panels = [], cursor = null;

  function fillVersions() {
    const m = models.find((x) => x.name === modelSel.value);
    const vs = m ? [...m.versions].sort((a, b) => b - a) : [];
    const want = Number(params.get('version')) || (m && m.active);
    verSel.replaceChildren(...vs.map((v) => h('option', { value: v, selected: v === want },
      `v${v}${m && v === m.active ? ' (active)' : ''}`)));
    cmpSel.replaceChildren(h('option', { value: '' }, 'none'),
      ...vs.map((v) => h('option', { value: v }, `v${v}${m && v === m.active ? ' (active)' : ''}`)));
  }

  function pickModelFor(C) {
    if (params.get('model') || C == null) return;
    const cur = models.find((m) => m.name === modelSel.value);
    if (cur && cur.C === C) return;
    const match = models.find((m) => m.C === C && !m.embedded) || models.find((m) => m.C === C);
    if (match) { modelSel.value = match.name; fillVersions(); }
  }

  async function fillItems() {
    itemSel.replaceChildren();
    if (!dsSel.value) return;
    try {
      const d = await request('GET', `/datasets/${encodeURIComponent(dsSel.value)}`);
      itemSel.replaceChildren(...(d.items || []).map((it) => h('option', { value: it.name }, `${it.name} (T ${it.T})`)));
      const want = params.get('item');
      if (want && [...itemSel.options].some((o) => o.value === want)) itemSel.value = want;
      pickModelFor(d.dim); // prefer a model whose C matches the dataset
    } catch (e) { say(`Could not read dataset ${dsSel.value}: ${e.message}`, true); }
  }

  async function load() {
    try {
      models = (await request('GET', '/models')).models || [];
      modelSel.replaceChildren(...models.map((m) => h('option', { value: m.name }, `${m.name} (C ${m.C ?? '?'})`)));
      if (params.get('model')) modelSel.value = params.get('model');
      fillVersions();
    } catch (e) { say(`Could not list the models: ${e.message}`, true); return; }
    try {
      const datasets = (await request('GET', '/datasets')).datasets || [];
      dsSel.replaceChildren(h('option', { value: '' }, datasets.length ? '— choose —' : 'no datasets'),
        ...datasets.map((d) => h('option', { value: d.name }, d.name)));
      if (params.get('dataset')) dsSel.value = params.get('dataset');
      else if (datasets.length === 1) dsSel.value = datasets[0].name;
      await fillItems();
      if (!itemSel.value && params.get('dataset') && itemSel.options.length) itemSel.selectedIndex = 0;
      if ((params.get('item') || params.get('dataset')) && itemSel.value) show();
    } catch (e) {
      if (e.status !== 409) say(`Could not list the datasets: ${e.message}`, true);
      else dsSel.replaceChildren(h('option', { value: '' }, 'no datasets (solad runs without --data)'));
    }
  }
  load();

  function say(text, error) {
    readout.textContent = text;
    readout.classList.toggle('error', !!error);
  }

  modelSel.addEventListener('change', () => { params.delete('version'); fillVersions(); checkFile(); });
  dsSel.addEventListener('change', () => { clearFile(); params.delete('item'); fillItems(); });
  itemSel.addEventListener('change', clearFile);
  fileIn.addEventListener('change', () => { if (fileIn.files[0]) useFile(fileIn.files[0]); fileIn.value = ''; });
  drop.addEventListener('dragover', (ev) => { ev.preventDefault(); drop.classList.add('over'); });
  drop.addEventListener('dragleave', () => drop.classList.remove('over'));
  drop.addEventListener('drop', (ev) => {
    ev.preventDefault();
    drop.classList.remove('over');
    const f = ev.dataTransfer.files[0];
    if (f) useFile(f);
  });
  spfIn.addEventListener('input', () => {
    try { localStorage.setItem(SPF_KEY, spfIn.value); } catch { /* storage disabled */ }
    redrawAxes();
    if (cursor) moveCursor(...cursor);
  });
  scaleSel.addEventListener('change', () => { if (panels.length) render(panels); });

  function clearFile() { file = null; fileC = null; fileName.textContent = 'no file'; fileErr.hidden = true; }

  // The .npy header of a dropped file, read locally: a [T, C] whose C the chosen model
  // does not have is refused here, naming both, instead of after the upload.
  async function useFile(f) {
    clearFile();
    const fail = (msg) => { fileErr.textContent = msg; fileErr.hidden = false; };
    if (!/\.npy$/i.test(f.name)) return fail(`${f.name}: the viewer takes one .npy sequence [T, C].`);
    let hd;
    try { hd = npyHeader(await f.slice(0, 65536).arrayBuffer()); } catch (e) { return fail(`${f.name}: ${e.message}`); }
    if (hd.shape.length !== 2) return fail(`${f.name} has shape [${hd.shape.join(', ')}]: the viewer takes one video, [T, C].`);
    file = f;
    fileC = hd.shape[1];
    fileName.textContent = `${f.name} [T ${hd.shape[0]}, C ${fileC}] (used instead of the dataset item)`;
    pickModelFor(fileC);
    if (checkFile()) show();
  }

  function checkFile() {
    if (!file) return true;
    const m = models.find((x) => x.name === modelSel.value);
    if (m && m.C && m.C !== fileC) {
      const fits = models.filter((x) => x.C === fileC).map((x) => x.name);
      fileErr.textContent = `${file.name} has C ${fileC} but model ${m.name} has C ${m.C}: `
        + (fits.length ? `choose ${fits.join(' or ')}.` : `no model here has C ${fileC}; train one on features like these.`);
      fileErr.hidden = false;
      return false;
    }
    fileErr.hidden = true;
    return true;
  }
  showB.addEventListener('click', () => show());

  async function show() {
    const src = file ? { file } : { dataset: dsSel.value, item: itemSel.value };
    if (!file && (!src.dataset || !src.item)) { say('Choose a dataset item or drop an .npy file first.', true); return; }
    if (!checkFile()) { say('Nothing drawn: the file and the model disagree on C (see above).', true); maps.replaceChildren(); return; }
    const model = modelSel.value, vA = Number(verSel.value) || 0, vB = Number(cmpSel.value) || 0;
    showB.disabled = true;
    panels = [];
    cursor = null;
    say('computing…');
    maps.replaceChildren(h('p', { class: 'muted' }, 'computing…'));
    const jobs = [fetchTsm(src, 'raw'), model ? fetchTsm(src, 'refined', model, vA) : Promise.reject(new Error('no model to refine with'))];
    if (vB && vB !== vA) jobs.push(fetchTsm(src, 'refined', model, vB));
    const res = await Promise.allSettled(jobs);
    showB.disabled = false;
    const out = [], errors = [];
    const label = (r, what) => (r.version ? `${what} · ${r.model} v${r.version}` : what);
    if (res[0].status === 'fulfilled') out.push({ title: 'raw', t: res[0].value, cmap: 'viridis', id: 'tsm-raw' });
    else errors.push(`raw TSM: ${res[0].reason.message}`);
    if (res[1].status === 'fulfilled') out.push({ title: label(res[1].value, 'refined'), t: res[1].value, cmap: 'viridis', id: 'tsm-refined' });
    else errors.push(`refined TSM: ${res[1].reason.message}`);
    if (res[2]) {
      if (res[2].status === 'fulfilled') {
        const b = res[2].value;
        out.push({ title: label(b, 'refined'), t: b, cmap: 'viridis', id: 'tsm-refined-b' });
        if (res[1].status === 'fulfilled') {
          const a = res[1].value, d = new Float32Array(a.data.length);
          for (let k = 0; k < d.length; k++) d[k] = a.data[k] - b.data[k];
          out.push({ title: `difference v${vA || a.version} − v${vB}`, t: { T: a.T, data: d }, cmap: 'diverging', id: 'tsm-diff' });
        }
      } else errors.push(`refined TSM of v${vB}: ${res[2].reason.message}`);
    }
    render(out, errors);
  }

  let axes = [];
  function redrawAxes() {
    const spf = Number(spfIn.value) || 0;
    for (const [c, T, vertical] of axes) drawAxis(c, T, spf, vertical);
  }

  function render(list, errors = []) {
    panels = list;
    axes = [];
    maps.replaceChildren();
    if (errors.length) maps.append(h('ul', { class: 'error', id: 'tsm-errors' }, errors.map((e) => h('li', {}, e))));
    if (!list.length) { say('Nothing to show: see the errors above.', true); return; }
    say(errors.length ? `Some maps could not be computed (see above). ${HINT}` : HINT, errors.length > 0);
    const mode = scaleSel.value;
    let shared = null;
    if (mode === 'shared') {
      let lo = Infinity, hi = -Infinity;
      for (const p of list) if (p.cmap !== 'diverging') { const [a, b] = range(p.t.data, 'map'); lo = Math.min(lo, a); hi = Math.max(hi, b); }
      shared = [lo, hi];
    }
    const legends = [];
    const cards = list.map((p) => {
      let lo, hi;
      if (p.cmap === 'diverging') {
        let m = 0;
        for (let k = 0; k < p.t.data.length; k++) m = Math.max(m, Math.abs(p.t.data[k]));
        if (!(m > 0)) m = 1e-6;
        [lo, hi] = [-m, m];
      } else if (mode === 'full') [lo, hi] = [-1, 1];
      else if (shared) [lo, hi] = shared;
      else [lo, hi] = range(p.t.data, mode);
      p.lo = lo; p.hi = hi;
      const c = h('canvas', { id: p.id, class: 'heatmap', tabindex: 0, role: 'img',
        'aria-label': `${p.title}: ${p.t.T}×${p.t.T} similarity map; arrow keys move the cursor` });
      drawHeatmap(c, p.t.data, p.t.T, lo, hi, p.cmap);
      c.dataset.t = String(p.t.T);
      c.dataset.lo = String(lo);
      c.dataset.hi = String(hi);
      const box = h('div', { class: 'cursor', 'aria-hidden': 'true', hidden: true });
      const cross = h('div', { class: 'crosshair', 'aria-hidden': 'true', hidden: true }, h('span', { class: 'ch-h' }), h('span', { class: 'ch-v' }));
      const wrap = h('div', { class: 'map-wrap' }, c, cross, box);
      const left = h('canvas', { class: 'axis axis-y', 'aria-hidden': 'true' });
      const bottom = h('canvas', { class: 'axis axis-x', 'aria-hidden': 'true' });
      axes.push([left, p.t.T, true], [bottom, p.t.T, false]);
      const leg = h('canvas', { class: 'legend', role: 'img', id: `${p.id}-legend` });
      legends.push([leg, lo, hi, p.cmap, p.cmap === 'diverging' ? 'difference' : `${p.title} similarity`]);
      p.box = box; p.cross = cross; p.canvas = c;
      attach(c, p);
      const scaleNote = p.cmap === 'diverging' ? 'symmetric about 0' : mode === 'pct' ? '2nd–98th percentile of this map'
        : mode === 'map' ? 'min … max of this map' : mode === 'shared' ? 'shared by the raw and refined maps' : 'full −1 … 1';
      return h('figure', { class: 'card map', 'data-map': p.id },
        h('figcaption', {}, p.title),
        h('div', { class: 'map-grid' }, left, wrap, h('span'), bottom),
        leg, h('p', { class: 'muted small' }, `colour scale: ${scaleNote}`));
    });
    maps.append(h('div', { class: 'map-row' }, ...cards));
    requestAnimationFrame(() => {
      for (const args of legends) drawLegend(...args);
      redrawAxes();
    });
  }

  // the cursor: the same cell outlined on every map of the same T, and the readout
  function moveCursor(i, j) {
    cursor = [i, j];
    const spf = Number(spfIn.value) || 0;
    const at = (k) => (spf > 0 ? `${k} (${fmt(k * spf, 2)} s)` : String(k));
    const vals = [];
    for (const q of panels) {
      const T = q.t.T;
      if (i >= T || j >= T) continue;
      const size = 100 / T;
      q.box.hidden = false;
      q.box.style.left = `${j * size}%`;
      q.box.style.top = `${i * size}%`;
      q.box.style.width = `${size}%`;
      q.box.style.height = `${size}%`;
      q.cross.hidden = false;
      q.cross.style.setProperty('--x', `${(j + 0.5) * size}%`);
      q.cross.style.setProperty('--y', `${(i + 0.5) * size}%`);
      q.canvas.dataset.cursor = `${i},${j}`;
      vals.push(`${q.title}: ${fmt(q.t.data[i * T + j], 4)}`);
    }
    say(`i = ${at(i)}, j = ${at(j)} · S[i, j] ${vals.join(' · ')}`);
  }

  function attach(c, p) {
    const T = p.t.T;
    c.addEventListener('mousemove', (ev) => {
      const r = c.getBoundingClientRect();
      const j = Math.min(T - 1, Math.max(0, Math.floor(((ev.clientX - r.left) / r.width) * T)));
      const i = Math.min(T - 1, Math.max(0, Math.floor(((ev.clientY - r.top) / r.height) * T)));
      moveCursor(i, j);
    });
    c.addEventListener('keydown', (ev) => {
      const d = { ArrowUp: [-1, 0], ArrowDown: [1, 0], ArrowLeft: [0, -1], ArrowRight: [0, 1] }[ev.key];
      if (!d) return;
      ev.preventDefault();
      const [i0, j0] = cursor || [0, 0];
      const step = ev.shiftKey ? 10 : 1;
      moveCursor(Math.min(T - 1, Math.max(0, i0 + d[0] * step)), Math.min(T - 1, Math.max(0, j0 + d[1] * step)));
    });
    c.addEventListener('focus', () => moveCursor(...(cursor || [0, 0])));
  }

  const onResize = () => redrawAxes();
  window.addEventListener('resize', onResize);
  return { el, online: () => { if (!models.length) load(); }, stop() { window.removeEventListener('resize', onResize); live.stop(); } };
}
