// tsm.js -- the TSM viewer: the temporal self-similarity map of a stored dataset item
// (GET /tsm) or of a dropped .npy (POST /tsm), raw and refined side by side on one
// colour scale with a legend, the value under the pointer (or the keyboard cursor),
// and the difference between the refined maps of two versions.
import { request, showError } from './api.js';
import { h } from './dom.js';
import { parseNpy, drawHeatmap, drawLegend, fmt } from './plot.js';

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

export function tsmView(params) {
  const dsSel = h('select', { id: 'tsm-dataset' });
  const itemSel = h('select', { id: 'tsm-item' });
  const fileIn = h('input', { id: 'tsm-file', type: 'file', accept: '.npy', hidden: true });
  const fileName = h('span', { class: 'muted', id: 'tsm-file-name' }, 'no file');
  const modelSel = h('select', { id: 'tsm-model' });
  const verSel = h('select', { id: 'tsm-version' });
  const cmpSel = h('select', { id: 'tsm-compare' });
  const scaleSel = h('select', { id: 'tsm-scale' },
    h('option', { value: 'fit' }, 'fit to the data (shared)'), h('option', { value: 'full' }, 'full range −1 … 1'));
  const showB = h('button', { type: 'button', class: 'primary', id: 'tsm-show' }, 'Show');
  const readout = h('p', { id: 'tsm-readout', role: 'status', 'aria-live': 'polite', class: 'readout' },
    'Point at a map (or focus it and use the arrow keys) to read S[i, j].');
  const maps = h('div', { class: 'maps', id: 'tsm-maps' });
  const drop = h('div', { class: 'dropzone small-drop', id: 'tsm-drop' },
    'Drop an .npy sequence here, or ',
    h('button', { type: 'button', onclick: () => fileIn.click() }, 'choose one…'), ' ', fileName);
  const el = h('section', { 'aria-labelledby': 'tsm-title' },
    h('h2', { id: 'tsm-title' }, 'TSM viewer'),
    h('div', { class: 'card grid-form tsm-controls' },
      h('label', { for: 'tsm-dataset' }, 'Dataset', dsSel),
      h('label', { for: 'tsm-item' }, 'Item', itemSel),
      drop, fileIn,
      h('label', { for: 'tsm-model' }, 'Model', modelSel),
      h('label', { for: 'tsm-version' }, 'Version', verSel),
      h('label', { for: 'tsm-compare' }, 'Compare with version', cmpSel),
      h('label', { for: 'tsm-scale' }, 'Colour scale', scaleSel),
      h('div', { class: 'row' }, showB)),
    readout, maps);

  let models = [], file = null, datasets = [];

  function fillVersions() {
    const m = models.find((x) => x.name === modelSel.value);
    const vs = m ? [...m.versions].sort((a, b) => b - a) : [];
    verSel.replaceChildren(...vs.map((v) => h('option', { value: v, selected: m && v === m.active },
      `v${v}${m && v === m.active ? ' (active)' : ''}`)));
    cmpSel.replaceChildren(h('option', { value: '' }, 'none'),
      ...vs.map((v) => h('option', { value: v }, `v${v}${m && v === m.active ? ' (active)' : ''}`)));
  }

  async function fillItems() {
    itemSel.replaceChildren();
    if (!dsSel.value) return;
    try {
      const d = await request('GET', `/datasets/${encodeURIComponent(dsSel.value)}`);
      itemSel.replaceChildren(...(d.items || []).map((it) => h('option', { value: it.name }, `${it.name} (T ${it.T})`)));
      const want = params.get('item');
      if (want && [...itemSel.options].some((o) => o.value === want)) itemSel.value = want;
      // prefer a model whose C matches the dataset
      const match = models.find((m) => m.C === d.dim && m.name === modelSel.value) || models.find((m) => m.C === d.dim);
      if (match && !params.get('model')) { modelSel.value = match.name; fillVersions(); }
    } catch (e) { showError(e); }
  }

  (async () => {
    try {
      models = (await request('GET', '/models')).models || [];
      modelSel.replaceChildren(...models.map((m) => h('option', { value: m.name }, `${m.name} (C ${m.C ?? '?'})`)));
      if (params.get('model')) modelSel.value = params.get('model');
      fillVersions();
    } catch (e) { showError(e, 'models for the TSM viewer'); }
    try {
      datasets = (await request('GET', '/datasets')).datasets || [];
      dsSel.replaceChildren(h('option', { value: '' }, datasets.length ? '— choose —' : 'no datasets'),
        ...datasets.map((d) => h('option', { value: d.name }, d.name)));
      if (params.get('dataset')) dsSel.value = params.get('dataset');
      else if (datasets.length === 1) dsSel.value = datasets[0].name;
      await fillItems();
      if (params.get('item') && itemSel.value) show();
    } catch (e) { if (e.status !== 404) showError(e, 'datasets for the TSM viewer'); }
  })();

  modelSel.addEventListener('change', fillVersions);
  dsSel.addEventListener('change', () => { file = null; fileName.textContent = 'no file'; fillItems(); });
  itemSel.addEventListener('change', () => { file = null; fileName.textContent = 'no file'; });
  fileIn.addEventListener('change', () => { if (fileIn.files[0]) useFile(fileIn.files[0]); fileIn.value = ''; });
  drop.addEventListener('dragover', (ev) => { ev.preventDefault(); drop.classList.add('over'); });
  drop.addEventListener('dragleave', () => drop.classList.remove('over'));
  drop.addEventListener('drop', (ev) => {
    ev.preventDefault();
    drop.classList.remove('over');
    const f = ev.dataTransfer.files[0];
    if (f) useFile(f);
  });
  function useFile(f) {
    if (!/\.npy$/i.test(f.name)) { showError(new Error(`${f.name}: the viewer takes one .npy sequence [T, C]`)); return; }
    file = f;
    fileName.textContent = `${f.name} (used instead of the dataset item)`;
    show();
  }
  showB.addEventListener('click', () => show());

  async function show() {
    const src = file ? { file } : { dataset: dsSel.value, item: itemSel.value };
    if (!file && (!src.dataset || !src.item)) { showError(new Error('choose a dataset item or drop an .npy file first')); return; }
    const model = modelSel.value, vA = Number(verSel.value) || 0, vB = Number(cmpSel.value) || 0;
    showB.disabled = true;
    maps.replaceChildren(h('p', { class: 'muted' }, 'computing…'));
    const jobs = [fetchTsm(src, 'raw'), model ? fetchTsm(src, 'refined', model, vA) : Promise.reject(new Error('no model to refine with'))];
    if (vB && vB !== vA) jobs.push(fetchTsm(src, 'refined', model, vB));
    const res = await Promise.allSettled(jobs);
    showB.disabled = false;
    const panels = [];
    const label = (r, what) => (r.version ? `${what} · ${r.model} v${r.version}` : what);
    if (res[0].status === 'fulfilled') panels.push({ title: 'raw', t: res[0].value, cmap: 'viridis', id: 'tsm-raw' });
    else showError(res[0].reason, 'raw TSM');
    if (res[1].status === 'fulfilled') panels.push({ title: label(res[1].value, 'refined'), t: res[1].value, cmap: 'viridis', id: 'tsm-refined' });
    else showError(res[1].reason, 'refined TSM');
    if (res[2]) {
      if (res[2].status === 'fulfilled') {
        const b = res[2].value;
        panels.push({ title: label(b, 'refined'), t: b, cmap: 'viridis', id: 'tsm-refined-b' });
        if (res[1].status === 'fulfilled') {
          const a = res[1].value, d = new Float32Array(a.data.length);
          for (let k = 0; k < d.length; k++) d[k] = a.data[k] - b.data[k];
          panels.push({ title: `difference v${vA || a.version} − v${vB}`, t: { T: a.T, data: d }, cmap: 'diverging', id: 'tsm-diff' });
        }
      } else showError(res[2].reason, `refined TSM of v${vB}`);
    }
    render(panels);
  }

  function render(panels) {
    maps.replaceChildren();
    if (!panels.length) { maps.append(h('p', { class: 'error' }, 'Nothing to show: see the errors above.')); return; }
    // one scale for the similarity maps, a symmetric one for the difference
    let lo = Infinity, hi = -Infinity, dmax = 0;
    for (const p of panels) {
      const d = p.t.data;
      if (p.cmap === 'diverging') { for (let k = 0; k < d.length; k++) dmax = Math.max(dmax, Math.abs(d[k])); continue; }
      for (let k = 0; k < d.length; k++) { if (d[k] < lo) lo = d[k]; if (d[k] > hi) hi = d[k]; }
    }
    if (scaleSel.value === 'full' || !(hi > lo)) { lo = -1; hi = 1; }
    if (!(dmax > 0)) dmax = 1e-6;
    const simCards = [], diffCards = [], diffLegends = [];
    for (const p of panels) {
      const [plo, phi] = p.cmap === 'diverging' ? [-dmax, dmax] : [lo, hi];
      const c = h('canvas', { id: p.id, class: 'heatmap', tabindex: 0, role: 'img',
        'aria-label': `${p.title}: ${p.t.T}×${p.t.T} similarity map; arrow keys move the cursor` });
      drawHeatmap(c, p.t.data, p.t.T, plo, phi, p.cmap);
      c.dataset.t = String(p.t.T);
      const card = h('figure', { class: 'card map' }, h('figcaption', {}, p.title), c);
      if (p.cmap === 'diverging') {
        const leg = h('canvas', { class: 'legend', role: 'img' });
        card.append(leg);
        diffLegends.push([leg, -dmax, dmax, 'diverging', 'difference']);
      }
      (p.cmap === 'diverging' ? diffCards : simCards).push(card);
      attachReadout(c, p, panels);
    }
    const legend = h('canvas', { class: 'legend', id: 'tsm-legend', role: 'img' });
    maps.append(h('div', { class: 'map-row' }, ...simCards, ...diffCards),
      h('figure', { class: 'card legend-card' },
        h('figcaption', {}, 'S[i, j] (cosine similarity): one scale for the raw and refined maps'), legend));
    requestAnimationFrame(() => {
      drawLegend(legend, lo, hi, 'viridis', 'similarity');
      for (const args of diffLegends) drawLegend(...args);
    });
  }

  let cursor = null;
  function attachReadout(c, p, panels) {
    const T = p.t.T;
    const say = (i, j) => {
      const vals = panels.filter((q) => q.t.T === T).map((q) => `${q.title}: ${fmt(q.t.data[i * T + j], 4)}`);
      readout.textContent = `i = ${i}, j = ${j} · S[i, j] ${vals.join(' · ')}`;
      c.title = `i ${i}, j ${j}: ${fmt(p.t.data[i * T + j], 4)}`;
    };
    c.addEventListener('mousemove', (ev) => {
      const r = c.getBoundingClientRect();
      const j = Math.min(T - 1, Math.max(0, Math.floor(((ev.clientX - r.left) / r.width) * T)));
      const i = Math.min(T - 1, Math.max(0, Math.floor(((ev.clientY - r.top) / r.height) * T)));
      cursor = [i, j];
      say(i, j);
    });
    c.addEventListener('keydown', (ev) => {
      const d = { ArrowUp: [-1, 0], ArrowDown: [1, 0], ArrowLeft: [0, -1], ArrowRight: [0, 1] }[ev.key];
      if (!d) return;
      ev.preventDefault();
      const [i0, j0] = cursor || [0, 0];
      const step = ev.shiftKey ? 10 : 1;
      cursor = [Math.min(T - 1, Math.max(0, i0 + d[0] * step)), Math.min(T - 1, Math.max(0, j0 + d[1] * step))];
      say(...cursor);
    });
    c.addEventListener('focus', () => say(...(cursor || [0, 0])));
  }

  return { el };
}
