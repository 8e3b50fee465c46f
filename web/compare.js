// compare.js -- compare runs (#/compare?jobs=3,5): their loss curves overlaid on one
// chart (same smoothing / log scale / hover as a job's page), and a table of their
// parameters, lineage and results side by side with the rows that differ marked.
// Jobs are picked from the list on the page (or ticked in the Jobs view).
import { request } from './api.js';
import { h, badge, duration, when } from './dom.js';
import { LossChart, PALETTE, fmtLoss, best } from './chart.js';

const ROWS = [
  // [label, value of a job record] -- lineage and results first, then every parameter
  ['state', (j) => j.state],
  ['dataset', (j) => j.dataset],
  ['objective', (j) => j.objective],
  ['started from', (j) => (j.base_model ? `${j.base_model} v${j.base_version ?? '?'}` : 'fresh model')],
  ['output', (j) => (j.model_version ? `${j.output_model} v${j.model_version}` : j.output_model)],
  ['epochs done', (j) => `${(j.loss_history || []).length} / ${j.epochs}`],
  ['final loss', (j) => { const h2 = j.loss_history || []; return h2.length ? fmtLoss(h2[h2.length - 1]) : '–'; }],
  ['best loss', (j) => { const b = best((j.loss_history || []).map((y, i) => ({ x: i + 1, y }))); return b ? `${fmtLoss(b.y)} @ epoch ${b.x}` : '–'; }],
  ['duration', (j) => { const d = (Date.parse(j.finished) - Date.parse(j.started)) / 1000; return Number.isFinite(d) ? duration(d) : '–'; }],
  ['videos (skipped)', (j) => (j.videos ? `${j.videos} (${j.skipped || 0})` : '–')],
  ['finished', (j) => when(j.finished)],
];
const SKIP_PARAMS = new Set(['dataset', 'objective', 'output_model', 'base_model']);

export function compareView(params) {
  const ids = (params.get('jobs') || '').split(',').map(Number).filter((x) => Number.isInteger(x) && x > 0);
  const picked = new Set(ids);
  const chart = new LossChart({ id: 'compare-chart', label: 'loss per epoch of the compared jobs',
    empty: 'pick two or more jobs below' });
  const legend = h('ul', { class: 'legend-list', id: 'compare-legend' });
  const onlyDiff = h('input', { type: 'checkbox', id: 'compare-only-diff' });
  const tableBox = h('div', { id: 'compare-table' });
  const picker = h('div', { id: 'compare-picker', class: 'picker' }, h('p', { class: 'muted' }, 'loading the jobs…'));
  const note = h('p', { class: 'muted', id: 'compare-note', role: 'status' });
  const el = h('section', { 'aria-labelledby': 'compare-title' },
    h('p', {}, h('a', { href: '#/jobs' }, '← all jobs')),
    h('h2', { id: 'compare-title' }, 'Compare runs'),
    note,
    h('figure', { class: 'card' }, chart.el, legend),
    h('div', { class: 'card' },
      h('div', { class: 'row' }, h('h3', {}, 'Parameters and results'),
        h('label', { class: 'check', for: 'compare-only-diff' }, onlyDiff, ' only rows that differ')),
      tableBox),
    h('div', { class: 'card' }, h('h3', {}, 'Jobs to compare'), picker));

  let jobs = new Map(), stopped = false, timer = null, all = [];

  function render() {
    const list = [...picked].filter((id) => jobs.has(id)).sort((a, b) => a - b).map((id) => jobs.get(id));
    const series = list.map((j, k) => ({
      name: `job ${j.id}`, color: PALETTE[k % PALETTE.length],
      points: (j.loss_history || []).map((y, i) => ({ x: i + 1, y })),
    }));
    chart.set(series, { xmax: Math.max(1, ...list.map((j) => j.epochs || 1)),
      empty: list.length ? 'no epoch finished in these jobs yet' : 'pick two or more jobs below' });
    legend.replaceChildren(...list.map((j, k) => h('li', { 'data-job': j.id },
      h('span', { class: 'swatch', style: { '--c': PALETTE[k % PALETTE.length] } }),
      h('a', { href: `#/jobs/${j.id}` }, `job ${j.id}`), ` · ${j.dataset} → ${j.output_model}${j.model_version ? ` v${j.model_version}` : ''} `, badge(j.state))));
    note.textContent = list.length < 2 ? 'Pick at least two jobs below to compare them.' : `${list.length} runs.`;
    // the table: one column per job, one row per field; differing rows marked
    const keys = [];
    for (const j of list) for (const k of Object.keys(j.params || {})) if (!SKIP_PARAMS.has(k) && !keys.includes(k)) keys.push(k);
    const rows = ROWS.map(([label, f]) => [label, list.map(f)])
      .concat(keys.map((k) => [k, list.map((j) => (j.params && j.params[k] !== undefined && j.params[k] !== null ? String(j.params[k]) : '–'))]));
    const body = rows.map(([label, vals]) => {
      const differs = list.length > 1 && new Set(vals.map(String)).size > 1;
      return h('tr', { class: differs ? 'differs' : '', 'data-row': label, hidden: onlyDiff.checked && !differs },
        h('th', { scope: 'row' }, label, differs ? h('span', { class: 'sr-only' }, ' (differs)') : null),
        ...vals.map((v) => h('td', {}, v ?? '–')));
    });
    tableBox.replaceChildren(list.length ? h('div', { class: 'scroll', tabindex: 0 }, h('table', { class: 'compare' },
      h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, ''), ...list.map((j, k) => h('th', { scope: 'col' },
        h('span', { class: 'swatch', style: { '--c': PALETTE[k % PALETTE.length] } }), `job ${j.id}`)))),
      h('tbody', {}, body))) : h('p', { class: 'muted' }, 'No jobs picked.'));
  }
  onlyDiff.addEventListener('change', render);

  function paintPicker() {
    picker.replaceChildren(all.length ? h('ul', { class: 'picker-list' }, all.map((j) => h('li', {},
      h('label', { class: 'check' }, h('input', { type: 'checkbox', checked: picked.has(j.id), 'data-job': j.id,
        onchange: (ev) => toggle(j.id, ev.currentTarget.checked) }),
      ` job ${j.id} · ${j.dataset} → ${j.output_model}${j.model_version ? ` v${j.model_version}` : ''} · ${j.state} · loss ${fmtLoss(j.loss)}`))))
      : h('p', {}, 'No jobs yet.'));
  }

  async function toggle(id, on) {
    if (on) picked.add(id); else picked.delete(id);
    history.replaceState(null, '', `#/compare?jobs=${[...picked].sort((a, b) => a - b).join(',')}`);
    if (on && !jobs.has(id)) await fetchJob(id);
    render();
  }

  async function fetchJob(id) {
    try { jobs.set(id, await request('GET', `/jobs/${id}`)); } catch (e) {
      note.textContent = `Could not read job ${id}: ${e.message}`;
    }
  }

  // running jobs among the picked ones are reread every 5 s (nothing else polls)
  async function load() {
    clearTimeout(timer);
    try { all = ((await request('GET', '/jobs')).jobs || []).sort((a, b) => b.id - a.id); paintPicker(); } catch (e) {
      picker.replaceChildren(h('p', { class: 'error' }, `Could not list the jobs: ${e.message}`));
    }
    await Promise.all([...picked].filter((id) => !jobs.has(id) || !['succeeded', 'failed', 'cancelled'].includes(jobs.get(id).state)).map(fetchJob));
    render();
    if (!stopped && [...picked].some((id) => jobs.has(id) && ['queued', 'running'].includes(jobs.get(id).state)))
      timer = setTimeout(load, 5000);
  }
  load();
  const onResize = () => chart.redraw();
  window.addEventListener('resize', onResize);
  return { el, online: load, stop() { stopped = true; clearTimeout(timer); window.removeEventListener('resize', onResize); } };
}
