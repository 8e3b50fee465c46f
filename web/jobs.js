// jobs.js -- the Jobs views: the list (pick runs to compare) with the form to start
// training, and one job's page: progress, a live loss curve from GET /jobs/ID/events,
// every parameter, lineage, duration, the trainer's warnings, the error of a failed
// job in plain words, and the actions (cancel, resume, activate, download, TSM
// viewer, run again).
//
// Not flooding the daemon: progress events are applied as deltas (`loss_from` +
// `losses`, docs/jobs.md: every epoch reaches the page without a GET); from a daemon
// that sends only the last epoch's loss, skipped epochs are filled by one GET of the
// record at most every RESYNC_MS, one at a time. The page redraws a running job at
// most every LIVE_MS.
import { request, showError, outcome, onNet } from './api.js';
import { h, table, badge, duration, when, nameProblem, confirmDialog, stripPaths } from './dom.js';
import { LossChart, PALETTE, fmtLoss } from './chart.js';
import { activateVersion } from './models.js';

const ACTIVE = new Set(['queued', 'running']);
export const TERMINAL = new Set(['succeeded', 'failed', 'cancelled']);
const RESYNC_MS = 5000;
const LIVE_MS = 250; // redraws of a running job: at most 4 a second

// What the daemon uses when a field is left empty (api/train_spec.c, docs/jobs.md);
// the learning rate and its schedule depend on the objective.
const DEFAULTS = { epochs: 150, batch: 256, lr: 1e-4, seed: 0, window: 23, hidden: 512 };
const OBJECTIVE_DEFAULTS = { sola: { lr: 1e-4, schedule: 'constant' }, cycle: { lr: 1e-3, schedule: 'cosine' },
  'sola+cycle': { lr: 1e-3, schedule: 'cosine' } };
// docs/web.md's settings for a first try on `sola synth` data (small, fast)
const QUICK = { epochs: 40, batch: 8, lr: 0.003, hidden: 64 };

// ---- the form ---------------------------------------------------------------------

function trainForm(again) {
  const status = h('p', { class: 'muted', role: 'status', id: 'train-status' });
  const dsSel = h('select', { id: 'train-dataset', name: 'dataset', required: true });
  const dsInfo = h('p', { class: 'muted span', id: 'train-dataset-info' });
  const objSel = h('select', { id: 'train-objective' },
    h('option', { value: 'sola' }, 'sola (the paper\'s)'),
    h('option', { value: 'cycle' }, 'cycle (contrastive)'),
    h('option', { value: 'sola+cycle' }, 'sola+cycle (both)'));
  const baseSel = h('select', { id: 'train-base', name: 'base_model' });
  const baseInfo = h('p', { class: 'muted span', id: 'train-base-info' });
  const num = (key, label, attrs) => h('label', { for: `train-${key}` }, label,
    h('input', Object.assign({ id: `train-${key}`, name: key, type: 'number', placeholder: `default ${DEFAULTS[key]}` }, attrs)));
  const out = h('input', { id: 'train-output', name: 'output_model', autocomplete: 'off', placeholder: 'default: the dataset or base model name' });
  const outErr = h('span', { class: 'error', id: 'train-output-error', 'aria-live': 'polite' });
  const activate = h('input', { id: 'train-activate', type: 'checkbox' });
  const schedSel = h('select', { id: 'train-schedule' }, h('option', { value: '' }, 'default (constant)'),
    h('option', { value: 'constant' }, 'constant'), h('option', { value: 'cosine' }, 'cosine'));
  const stopCollapse = h('input', { id: 'train-stop-collapse', type: 'checkbox' });
  const quick = h('button', { type: 'button', id: 'train-quick', class: 'small' }, 'Quick-try settings');
  const form = h('form', { class: 'card grid-form', id: 'train-form', novalidate: true },
    h('h3', {}, 'Start training'),
    h('label', { for: 'train-dataset' }, 'Dataset', dsSel), dsInfo,
    h('label', { for: 'train-objective' }, 'Objective', objSel),
    h('label', { for: 'train-base' }, 'Start from', baseSel), baseInfo,
    h('label', { for: 'train-output' }, 'Output model', out, outErr),
    num('epochs', 'Epochs', { min: 1, step: 1 }),
    num('batch', 'Batch (windows per step)', { min: 1, step: 1 }),
    num('lr', 'Learning rate', { min: 0, step: 'any' }),
    h('label', { for: 'train-schedule' }, 'Schedule', schedSel),
    num('seed', 'Seed', { min: 0, step: 1 }),
    num('window', 'Window (snippets)', { min: 2, step: 1 }),
    num('hidden', 'Hidden channels (fresh model)', { min: 1, step: 1 }),
    h('p', { class: 'muted span' }, 'Empty fields use the daemon\'s defaults (shown greyed). ', quick,
      ' fills a short run that suits `sola synth` data: 40 epochs, batch 8, lr 0.003, hidden 64.'),
    h('label', { class: 'check span', for: 'train-stop-collapse' }, stopCollapse,
      'Stop if the collapse guard fires (the version then holds the last epoch it passed; otherwise the job only warns)'),
    h('label', { class: 'check span', for: 'train-activate' }, activate,
      'Make the result the active version when the job succeeds (otherwise activate it after looking at it; a new model\'s first version is always active)'),
    h('div', { class: 'row' }, h('button', { class: 'primary', type: 'submit' }, 'Start training'), status));
  const field = (k) => form.querySelector(`#train-${k}`);

  let models = [], dim = null, items = [];
  quick.addEventListener('click', () => { for (const [k, v] of Object.entries(QUICK)) field(k).value = v; shortItems(); });

  function fillBases() {
    const keep = baseSel.value;
    const fits = models.filter((m) => !m.embedded && (dim === null || m.C === dim));
    const others = models.filter((m) => !m.embedded && dim !== null && m.C !== dim);
    baseSel.replaceChildren(h('option', { value: '' }, 'a fresh model'),
      ...fits.map((m) => h('option', { value: m.name }, `${m.name} (v${m.active}, C ${m.C})`)));
    if ([...baseSel.options].some((o) => o.value === keep)) baseSel.value = keep;
    baseInfo.textContent = others.length
      ? `${others.map((m) => `${m.name} (C ${m.C})`).join(', ')} not offered: a base model must have the dataset's C (${dim}).` : '';
    field('hidden').disabled = !!baseSel.value;
  }

  function shortItems() {
    if (!items.length) return;
    const w = Number(field('window').value) || DEFAULTS.window;
    const short = items.filter((it) => it.T <= w);
    dsInfo.replaceChildren(`${items.length} items, C ${dim}. `,
      short.length ? h('span', { class: 'warn' }, `${short.length} of them (${short.slice(0, 3).map((it) => `${it.name} T ${it.T}`).join(', ')}${short.length > 3 ? ', …' : ''}) ${short.length > 1 ? 'are' : 'is'} not longer than the window (${w}) and will be skipped.`) : '');
  }

  async function describe() {
    dim = null; items = [];
    dsInfo.textContent = '';
    if (dsSel.value) {
      try {
        const d = await request('GET', `/datasets/${encodeURIComponent(dsSel.value)}`);
        dim = d.dim ?? null;
        items = d.items || [];
        shortItems();
      } catch (e) { dsInfo.textContent = `Could not read the dataset: ${e.message}`; }
    }
    fillBases();
  }

  async function load() {
    try {
      const ds = (await request('GET', '/datasets')).datasets || [];
      const keep = dsSel.value;
      dsSel.replaceChildren(...(ds.length ? ds.map((d) => h('option', { value: d.name }, `${d.name} (${d.n_items} items)`))
        : [h('option', { value: '' }, 'no datasets: upload one first')]));
      if (keep && ds.some((d) => d.name === keep)) dsSel.value = keep;
    } catch (e) {
      dsSel.replaceChildren(h('option', { value: '' }, e.status === 409 ? 'solad runs without --data' : 'could not list the datasets'));
    }
    try { models = (await request('GET', '/models')).models || []; } catch { models = []; }
    if (again) await prefill(again);
    again = null;
    await describe();
  }

  // "Run again": the form filled with a job's parameters (not activated by default)
  async function prefill(id) {
    try {
      const j = await request('GET', `/jobs/${id}`);
      const p = j.params || {};
      if (![...dsSel.options].some((o) => o.value === j.dataset)) dsSel.append(h('option', { value: j.dataset }, j.dataset));
      dsSel.value = j.dataset;
      objSel.value = p.objective || j.objective || 'sola';
      if (j.base_model) { baseSel.append(h('option', { value: j.base_model }, j.base_model)); baseSel.value = j.base_model; }
      out.value = j.output_model || '';
      for (const k of Object.keys(DEFAULTS)) if (p[k] !== undefined && p[k] !== null) field(k).value = p[k];
      if (p.schedule) schedSel.value = p.schedule;
      stopCollapse.checked = !!p.stop_on_collapse;
      objDefaults();
      status.textContent = `Filled from job ${id}: change what you want to try, then start.`;
    } catch (e) { status.textContent = `Could not read job ${id}: ${e.message}`; }
  }

  const objDefaults = () => {
    const d = OBJECTIVE_DEFAULTS[objSel.value] || OBJECTIVE_DEFAULTS.sola;
    field('lr').placeholder = `default ${d.lr}`;
    schedSel.options[0].textContent = `default (${d.schedule})`;
  };
  objSel.addEventListener('change', objDefaults);
  dsSel.addEventListener('change', describe);
  baseSel.addEventListener('change', () => { field('hidden').disabled = !!baseSel.value; });
  field('window').addEventListener('input', shortItems);
  out.addEventListener('input', () => {
    const v = out.value.trim();
    const p = v ? nameProblem(v) : '';
    outErr.textContent = p ? `The name ${p}.` : '';
    out.setCustomValidity(p ? `The name ${p}` : '');
  });

  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const spec = { dataset: dsSel.value, objective: objSel.value, activate: activate.checked };
    if (schedSel.value) spec.schedule = schedSel.value;
    if (stopCollapse.checked) spec.stop_on_collapse = true;
    const fail = (msg, el) => { status.className = 'error'; status.textContent = msg; if (el) el.focus(); };
    if (!spec.dataset) return fail('Choose a dataset to train on (upload one in the Datasets view).', dsSel);
    if (baseSel.value) spec.base_model = baseSel.value;
    const name = out.value.trim();
    if (name) {
      const p = nameProblem(name);
      if (p) return fail(`Output model: the name ${p}.`, out);
      spec.output_model = name;
    }
    for (const [k, parse] of [['epochs', parseInt], ['batch', parseInt], ['lr', parseFloat], ['seed', parseInt],
      ['window', parseInt], ['hidden', parseInt]]) {
      const raw = field(k).value.trim();
      if (!raw) continue;
      if (k === 'hidden' && spec.base_model) continue; // a base model fixes the shape
      const x = parse(raw);
      if (!Number.isFinite(x)) return fail(`${k}: enter a number (or leave it empty for the default)`, field(k));
      spec[k] = x;
    }
    status.className = 'muted';
    status.textContent = 'submitting…';
    try {
      const job = await request('POST', '/train', { json: spec });
      location.hash = `#/jobs/${job.id}`;
    } catch (e) {
      fail(`The daemon refused the job (${e.status || 'no answer'}): ${e.message}`);
    }
  });
  load();
  return { form, load };
}

// ---- the list ---------------------------------------------------------------------

export function jobsView(params) {
  const list = h('div', { id: 'jobs-list' }, h('p', { class: 'muted' }, 'loading…'));
  const selected = new Set();
  const compareB = h('button', { type: 'button', id: 'jobs-compare', disabled: true,
    onclick: () => { location.hash = `#/compare?jobs=${[...selected].sort((a, b) => a - b).join(',')}`; } }, 'Compare selected');
  const tf = trainForm(params && params.get('again'));
  const el = h('section', { 'aria-labelledby': 'jobs-title' },
    h('h2', { id: 'jobs-title' }, 'Jobs'),
    h('div', { class: 'row' }, compareB, h('span', { class: 'muted' }, 'Tick two or more runs to overlay their curves and compare their parameters.')),
    list, tf.form);
  let timer = null, stopped = false, delay = 2000;
  const paintCompare = () => {
    compareB.disabled = selected.size < 2;
    compareB.textContent = selected.size ? `Compare selected (${selected.size})` : 'Compare selected';
  };
  async function load() {
    clearTimeout(timer);
    let jobs;
    try {
      jobs = ((await request('GET', '/jobs')).jobs || []).sort((a, b) => b.id - a.id);
      delay = 2000;
    } catch (e) {
      list.replaceChildren(h('p', { class: 'error' }, e.status === 409
        ? 'solad runs without --data: no jobs. Restart it with --data DIR to train.'
        : `Could not list the jobs: ${e.message} (retrying)`));
      if (!stopped && e.status !== 409) timer = setTimeout(load, delay);
      delay = Math.min(15000, delay * 2);
      return;
    }
    list.replaceChildren(jobs.length ? table(['', 'job', 'state', 'dataset', 'output', 'epoch', 'loss', 'finished'],
      jobs.map((j) => h('tr', { 'data-job': j.id },
        h('td', {}, h('input', { type: 'checkbox', 'aria-label': `compare job ${j.id}`, checked: selected.has(j.id),
          onchange: (ev) => { if (ev.currentTarget.checked) selected.add(j.id); else selected.delete(j.id); paintCompare(); } })),
        h('td', {}, h('a', { href: `#/jobs/${j.id}` }, `job ${j.id}`)),
        h('td', {}, badge(j.state)),
        h('td', {}, j.dataset),
        h('td', {}, j.model_version ? `${j.output_model} v${j.model_version}` : j.output_model),
        h('td', {}, `${j.epoch}/${j.epochs}`),
        h('td', {}, fmtLoss(j.loss)),
        h('td', {}, when(j.finished))))) : h('p', {}, 'No jobs yet: start one below.'));
    paintCompare();
    if (!stopped) timer = setTimeout(load, jobs.some((j) => ACTIVE.has(j.state)) ? 2000 : 10000);
  }
  load();
  return { el, stop() { stopped = true; clearTimeout(timer); }, online() { load(); tf.load(); } };
}

// ---- one job ----------------------------------------------------------------------

// Plain words for common failures; '' when there is nothing to add to the daemon's.
export function explain(job) {
  const err = job.error || '';
  if (job.state === 'interrupted')
    return /resume/i.test(err) ? '' : 'solad stopped while this job ran. Press Resume to continue from its last checkpoint.';
  if (/not finite|non-finite|\bnan\b|\binf\b|diverged/i.test(err))
    return /hold NaN|windows or the model hold/i.test(err)
      ? 'A value in the data or the model is NaN or infinite. Check the uploaded files (sola info prints their range) and remove or fix the broken item.'
      : 'The loss became NaN or infinite (training diverged): run again with a lower learning rate.';
  if (/dimension|channels|\bC\b.*(differ|mismatch|but)|422/.test(err))
    return 'The dataset and the starting model disagree on the feature dimension: start from a fresh model or pick a model with the same C.';
  if (/no (usable )?videos|not longer than the window|longer than the window|too short/i.test(err))
    return 'Training needs sequences longer than the window: upload longer items, or lower the window.';
  if (/space|ENOSPC|disk/i.test(err)) return 'The daemon ran out of disk space; free some, then run the job again.';
  if (/not found|no dataset|no model/i.test(err)) return 'Something the job needs was deleted or renamed.';
  return '';
}

// The daemon's error, for a page user: no file paths, and the button instead of the API call.
export function pageError(job) {
  if (!job.error) return '';
  return stripPaths(job.error.replace(/POST \/jobs\/\d+\/resume continues/g, 'press Resume to continue')
    .replace(/POST \/jobs\/\d+\/resume/g, 'Resume'));
}

// A trainer warning in the page's words: the form's checkbox, not the API field.
export function pageWarning(msg) {
  return stripPaths(String(msg)).replace(/send stop_on_collapse/g, 'run again with "Stop if the collapse guard fires" ticked');
}

function params(job) {
  const p = Object.assign({}, job.params || {});
  for (const k of ['dataset', 'objective', 'output_model', 'base_model', 'activate']) delete p[k];
  return p;
}

// Trainer warnings (collapse, non-finite values) as the record or an event carries
// them: `warnings` [{epoch, step, kind, message}] or strings, or one `warning`.
function warningsOf(job) {
  const w = [];
  if (Array.isArray(job.warnings)) w.push(...job.warnings);
  if (job.warning) w.push(job.warning);
  return w.map((x) => (typeof x === 'string' ? { message: x }
    : { message: x.message || x.text || JSON.stringify(x), epoch: x.epoch, step: x.step, kind: x.kind || x.type }));
}

// The collapse guard's numbers (docs/jobs.md `collapse_guard`): one line for the Run card.
function guardText(g) {
  if (!g) return null;
  const f = (v) => (typeof v === 'number' ? v.toFixed(2) : '–');
  const lim = (v) => (typeof v === 'number' ? ` (limit ${v})` : '');
  const fired = g.fired_epoch ? `fired at epoch ${g.fired_epoch}` : g.collapse ? 'fired' : 'not fired';
  return `${fired}; at epoch ${g.epoch}: norm ratio ${f(g.norm_ratio)}${lim(g.max_norm_ratio)}, `
    + `one-vector share ${typeof g.const_share === 'number' ? `${Math.round(g.const_share * 100)}%` : '–'}${typeof g.max_const_share === 'number' ? ` (limit ${Math.round(g.max_const_share * 100)}%)` : ''}`;
}

export function jobView(id) {
  const title = h('h2', { id: 'job-title' }, `Job ${id}`);
  const state = h('span', { id: 'job-state' });
  const bar = h('progress', { id: 'job-progress', max: 1, value: 0, 'aria-label': 'training progress' });
  const barText = h('span', { id: 'job-progress-text' });
  const failure = h('div', { id: 'job-error', class: 'failure', hidden: true });
  const warnBox = h('div', { id: 'job-warnings', class: 'warnbox', hidden: true });
  const live = h('span', { class: 'muted', id: 'job-live', role: 'status' });
  const chart = new LossChart({ id: 'loss-chart', label: `loss per epoch of job ${id}`, empty: 'no loss yet: the first epoch has not finished' });
  const cancelB = h('button', { type: 'button', id: 'job-cancel', class: 'danger', onclick: () => cancel() }, 'Cancel');
  const resumeB = h('button', { type: 'button', id: 'job-resume', onclick: () => act('POST', `/jobs/${id}/resume`) }, 'Resume');
  const versionActs = h('span', { class: 'row inline', id: 'job-version-actions' });
  const againA = h('a', { class: 'button', id: 'job-again', href: `#/jobs?again=${id}` }, 'Run again…');
  const reloadB = h('button', { type: 'button', class: 'small', id: 'job-reload', title: 'read the job record again',
    onclick: () => { const mark = evCount; request('GET', `/jobs/${id}`).then((j) => onState(j, mark), showError); } }, '↻ Reload');
  const lineage = h('dl', { class: 'facts', id: 'job-lineage' });
  const timing = h('dl', { class: 'facts', id: 'job-timing' });
  const paramBox = h('div', { id: 'job-params' });
  const el = h('section', { 'aria-labelledby': 'job-title' },
    h('p', {}, h('a', { href: '#/jobs' }, '← all jobs')),
    h('div', { class: 'row' }, title, state, live, reloadB),
    h('div', { class: 'row progress-row' }, bar, barText),
    failure, warnBox,
    h('div', { class: 'row', id: 'job-actions' }, cancelB, resumeB, versionActs, againA),
    h('figure', { class: 'card' }, chart.el, h('figcaption', { class: 'muted' },
      'Mean training loss of each epoch (faint: raw; solid: smoothed), the live step as a hollow dot, the best epoch as a diamond.')),
    h('div', { class: 'detail-grid' },
      h('div', { class: 'card' }, h('h3', {}, 'Lineage'), lineage),
      h('div', { class: 'card' }, h('h3', {}, 'Run'), timing),
      h('div', { class: 'card' }, h('h3', {}, 'Parameters'), paramBox)));

  let job = null, history = [], liveStep = null, es = null, stopped = false, retry = null;
  let evCount = 0; // stream messages applied: a fetch issued before one of them is stale
  let syncing = false, lastSync = 0, syncTimer = null;
  let activeVersion = null, lastStatic = '', pending = false;
  let extraWarnings = [];

  function progressFraction() {
    const spe = job.steps_per_epoch || 0;
    const total = job.total_steps || (spe ? job.epochs * spe : 0);
    const done = job.global_step ?? (spe && job.epoch >= 1 ? (job.epoch - 1) * spe + (job.step || 0) : 0);
    let frac = job.epochs ? history.length / job.epochs : 0;
    if (job.state === 'running' && total) frac = Math.max(frac, done / total);
    if (job.state === 'succeeded') frac = 1;
    return { frac: Math.min(1, frac), done, total };
  }

  // the parts that change with every event: cheap, drawn once per frame
  function renderLive() {
    pending = false;
    if (!job) return;
    const { frac, done, total } = progressFraction();
    bar.value = frac;
    const eta = job.state === 'running' && job.eta_s != null ? ` · ETA ${duration(job.eta_s)}` : '';
    const steps = total ? ` · step ${Math.min(done, total)} of ${total}` : '';
    const bt = `${Math.round(frac * 100)}% · epoch ${Math.max(job.epoch || 0, history.length)} of ${job.epochs}${steps}${eta}`;
    if (barText.textContent !== bt) barText.textContent = bt;
    const pts = [];
    for (let i = 0; i < history.length; i++) if (history[i] !== undefined) pts.push({ x: i + 1, y: history[i] });
    const live = liveStep && job.state === 'running' ? liveStep : null;
    const empty = job.state === 'failed' || job.state === 'cancelled' || job.state === 'interrupted'
      ? `no epoch finished before the job was ${job.state === 'failed' ? 'stopped by the error above' : job.state}`
      : job.state === 'queued' ? 'queued: waiting for the job before it' : 'no loss yet: the first epoch has not finished';
    chart.set([{ name: `job ${id}`, color: PALETTE[0], points: pts, live }], { xmax: job.epochs, empty });
    chart.canvas.dataset.points = String(pts.length);
    chart.canvas.dataset.lastLoss = pts.length ? String(pts[pts.length - 1].y) : '';
    chart.canvas.dataset.state = job.state;
    renderStatic();
  }
  // while the job runs the page is redrawn at most every LIVE_MS (events may come in
  // at hundreds a second); a change of state is drawn on the next frame
  let lastRender = 0, lastState = null;
  function schedule() {
    if (pending) return;
    pending = true;
    const live = job && job.state === 'running' && lastState === 'running';
    const wait = live ? Math.max(0, lastRender + LIVE_MS - performance.now()) : 0;
    const go = () => requestAnimationFrame(() => { lastRender = performance.now(); lastState = job && job.state; renderLive(); });
    if (wait > 0) setTimeout(go, wait); else go();
  }

  // the parts that change with the job's state: rebuilt only when that changes
  function renderStatic() {
    const warns = [];
    for (const w of warningsOf(job).concat(extraWarnings)) if (!warns.some((x) => x.message === w.message)) warns.push(w);
    const key = JSON.stringify([job.state, job.error, job.model_version, job.finished, job.started, job.videos,
      job.skipped, job.runs, activeVersion, warns.length, job.params && job.params.epochs, !!job.collapse_guard,
      job.collapse_guard && (job.collapse_guard.fired_epoch || job.collapse_guard.collapse)]);
    const gs = document.getElementById('job-guard');
    if (gs && job.collapse_guard) { const t = guardText(job.collapse_guard); if (gs.textContent !== t) gs.textContent = t; }
    if (key === lastStatic) return;
    lastStatic = key;
    state.replaceChildren(badge(job.state));
    title.textContent = `Job ${id}${job.output_model ? ` · ${job.output_model}${job.model_version ? ` v${job.model_version}` : ''}` : ''}`;
    // failure / interruption
    const show = job.state === 'failed' || job.state === 'interrupted' || (job.state === 'cancelled' && !!job.error);
    failure.hidden = !show;
    if (show) {
      const hint = explain(job);
      const said = pageError(job);
      failure.replaceChildren(...[
        h('strong', {}, job.state === 'failed' ? 'This job failed. ' : `This job is ${job.state}. `),
        said ? h('span', { id: 'job-error-text' }, `The daemon said: ${said}`) : h('span', {}, 'No reason was recorded.'),
        hint ? h('p', { id: 'job-error-hint' }, hint) : null,
      ].filter(Boolean));
    }
    // trainer warnings (collapse, non-finite values)
    warnBox.hidden = !warns.length;
    if (warns.length) {
      warnBox.replaceChildren(h('strong', {}, `The trainer warned ${warns.length === 1 ? 'once' : `${warns.length} times`}:`),
        h('ul', {}, warns.slice(-5).map((w) => h('li', {},
          w.epoch ? `epoch ${w.epoch}${w.step ? `, step ${w.step}` : ''}: ` : '', w.kind ? `${w.kind}: ` : '', pageWarning(w.message)))));
    }
    cancelB.disabled = !['queued', 'running', 'interrupted'].includes(job.state);
    resumeB.disabled = job.state !== 'interrupted';
    resumeB.title = resumeB.disabled ? 'only a job interrupted by a restart of solad can resume' : 'continue from the last checkpoint';
    // version actions
    const v = job.model_version, m = job.output_model;
    if (job.state === 'succeeded' && v) {
      const isActive = activeVersion === v;
      versionActs.replaceChildren(
        isActive ? h('span', { class: 'badge state-succeeded', id: 'job-version-active' }, `v${v} is active`)
          : h('button', { type: 'button', id: 'job-activate', onclick: (ev) => activate(ev.currentTarget) }, `Activate v${v}`),
        h('a', { class: 'button', id: 'job-download', href: `/models/${encodeURIComponent(m)}/versions/${v}`, download: `${m}-${v}.safetensors` }, 'Download'),
        h('a', { class: 'button', id: 'job-tsm', href: `#/tsm?dataset=${encodeURIComponent(job.dataset)}&model=${encodeURIComponent(m)}&version=${v}` }, 'Open in TSM viewer'));
    } else versionActs.replaceChildren();
    // lineage
    const dd = (k, v2) => [h('dt', {}, k), h('dd', {}, v2 ?? '–')];
    lineage.replaceChildren(
      ...dd('dataset', h('a', { href: `#/datasets/${encodeURIComponent(job.dataset)}` }, job.dataset)),
      ...dd('objective', job.objective),
      ...dd('started from', job.base_model ? `${job.base_model} v${job.base_version ?? '(active)'}` : 'a fresh model'),
      ...dd('output', job.model_version ? h('a', { href: '#/models' }, `${job.output_model} v${job.model_version}`)
        : `${job.output_model} (a new version when it succeeds${job.activate ? ', made active' : ''})`),
      ...dd('activate when done', job.activate ? 'yes' : 'no'));
    const t0 = Date.parse(job.started), t1 = job.finished ? Date.parse(job.finished) : (job.state === 'running' ? Date.now() : NaN);
    timing.replaceChildren(
      ...dd('created', when(job.created)), ...dd('started', when(job.started)), ...dd('finished', when(job.finished)),
      ...dd(job.finished ? 'duration' : 'running for', Number.isFinite(t1 - t0) ? duration((t1 - t0) / 1000) : '–'),
      ...dd('videos', job.videos ? `${job.videos}${job.skipped ? ` (${job.skipped} not longer than the window, skipped)` : ''}` : '–'),
      ...dd('steps per epoch', job.steps_per_epoch || '–'),
      ...dd('windows/s', job.windows_per_s ? Math.round(job.windows_per_s) : '–'),
      ...dd('runs', job.runs ?? '–'),
      ...(job.collapse_guard ? dd('collapse guard', h('span', { id: 'job-guard' }, guardText(job.collapse_guard))) : []),
      ...(job.resumed_from ? dd('resumed from', `epoch ${job.resumed_from.epoch}, step ${job.resumed_from.step}`) : []),
      ...(job.runner ? dd('runner', job.runner) : []));
    const p = params(job);
    paramBox.replaceChildren(Object.keys(p).length
      ? h('dl', { class: 'facts' }, Object.entries(p).flatMap(([k, v2]) => dd(k, v2 === null ? '–' : String(v2))))
      : h('p', { class: 'muted' }, 'not recorded'));
    if (!ACTIVE.has(job.state) && job.state !== 'interrupted') live.textContent = '';
  }

  async function activeOf() {
    if (!job || job.state !== 'succeeded' || !job.model_version) return;
    try { activeVersion = (await request('GET', `/models/${encodeURIComponent(job.output_model)}`)).active; } catch { /* shown as not active */ }
    lastStatic = '';
    schedule();
  }

  async function activate(btn) {
    btn.disabled = true;
    try { if (await activateVersion(job.output_model, job.model_version, activeVersion)) await activeOf(); } catch (e) { showError(e); }
    btn.disabled = false;
  }

  async function cancel() {
    const running = job && job.state === 'running';
    if (!await confirmDialog(`Cancel job ${id}? ${running ? 'It stops within one training step and adds no model version; ' : ''}this cannot be undone (start it again with Run again).`,
      'Cancel the job', true)) return;
    act('DELETE', `/jobs/${id}`);
  }

  async function act(method, path) {
    try {
      const j = await request(method, path);
      const mark = evCount;
      if (j && j.id) onState(j, mark, true);
      else onState(await request('GET', `/jobs/${id}`), mark, true);
      if (ACTIVE.has(job.state)) follow(); // a resumed job streams again
    } catch (e) { showError(e); }
  }

  // A full record. From the stream it is the truth; a fetched one (mark = evCount when
  // the request left) is older than any stream message that came after, so it may
  // only add loss history. A finished job never goes back to queued/running (only
  // our own resume of an interrupted job moves it on).
  function onState(j, mark, ours) {
    const stale = mark !== undefined && mark < evCount;
    const regress = job && TERMINAL.has(job.state) && !TERMINAL.has(j.state);
    if (Array.isArray(j.loss_history)) {
      // a resumed run went back to its checkpoint: its record is the curve now;
      // otherwise a record only fills in (a lagging one never shrinks the curve)
      if (!stale && !regress && job && (j.runs || 0) > (job.runs || 0) && j.loss_history.length < history.length)
        truncate(j.loss_history.length);
      mergeHistory(j.loss_history);
    }
    if ((stale && !ours) || regress) { schedule(); return; }
    const before = job && job.state;
    job = j;
    liveStep = null;
    if (j.state !== before) { lastStatic = ''; if (j.state === 'succeeded') activeOf(); }
    schedule();
    if (TERMINAL.has(j.state)) {
      if (es) { es.close(); es = null; }
      clearTimeout(syncTimer); // nothing left to catch up with
      syncTimer = null;
    }
  }

  let known = 0; // defined entries of history
  function countKnown() { return known; }
  function setLoss(i, y) { if (history[i] === undefined) known++; history[i] = y; }
  function mergeHistory(full) {
    for (let i = 0; i < full.length; i++) setLoss(i, full[i]); // newer deltas beyond it kept
  }
  function truncate(n) {
    history.length = n;
    known = 0;
    for (const v of history) if (v !== undefined) known++;
  }

  // A progress event: its epochs' losses are added (a delta), the rest of the job
  // record updated. Missing epochs are fetched later, once (resync).
  function onProgress(p) {
    if (!job) job = {};
    if (TERMINAL.has(job.state)) return;
    const { losses, epoch_loss: one, epochs_done: done } = p;
    const rest = Object.assign({}, p);
    delete rest.losses;
    if (p.collapse_guard) rest.collapse_guard = Object.assign({}, job.collapse_guard || {}, p.collapse_guard);
    Object.assign(job, rest);
    if (Array.isArray(losses) && typeof p.loss_from === 'number') {
      // docs/jobs.md: losses[i] is epoch loss_from + i + 1; the curve is cut to
      // loss_from first (a resumed job that went back to its checkpoint)
      if (history.length > p.loss_from) truncate(p.loss_from);
      losses.forEach((y, k) => setLoss(p.loss_from + k, y));
    } else if (Array.isArray(losses) && typeof done === 'number') {
      losses.forEach((y, k) => setLoss(done - losses.length + k, y));
    } else if (typeof one === 'number' && typeof done === 'number' && done >= 1) {
      setLoss(done - 1, one);
    }
    if (typeof done === 'number' && countKnown() < Math.min(done, history.length)) resync();
    const spe = p.steps_per_epoch || 0;
    liveStep = typeof p.loss === 'number' && spe && p.step < spe ? { x: (p.epoch - 1) + p.step / spe, y: p.loss } : null;
    const w = warningsOf(p);
    if (w.length) extraWarnings = extraWarnings.concat(w).slice(-20);
    schedule();
  }

  // One GET of the whole record, never more often than RESYNC_MS, one at a time.
  function resync() {
    if (syncing || syncTimer || stopped) return;
    const wait = Math.max(0, lastSync + RESYNC_MS - Date.now());
    syncTimer = setTimeout(async () => {
      syncTimer = null;
      syncing = true;
      lastSync = Date.now();
      const mark = evCount;
      try { onState(await request('GET', `/jobs/${id}`), mark); } catch { /* the next event retries */ }
      syncing = false;
    }, wait);
  }

  function follow() {
    if (stopped || es) return;
    es = new EventSource(`/jobs/${id}/events`);
    live.textContent = 'connecting…';
    const handle = (fn) => (ev) => {
      outcome(true); // the daemon is there: counts as an answer for the health line
      evCount++;
      try { fn(JSON.parse(ev.data)); } catch (e) { showError(e, 'job event'); }
    };
    es.addEventListener('state', handle((j) => onState(j)));
    es.addEventListener('progress', handle(onProgress));
    es.addEventListener('warning', handle((w) => { extraWarnings = extraWarnings.concat([{ message: w.message }]).slice(-20); lastStatic = ''; schedule(); }));
    es.addEventListener('end', () => {
      es.close(); es = null;
      live.textContent = 'the daemon is restarting: reconnecting…';
      retry = setTimeout(follow, 3000);
    });
    es.onerror = () => {
      if (!es) return;
      if (es.readyState === EventSource.CLOSED) {
        es = null;
        reload();
      } else {
        live.textContent = 'connection lost: reconnecting…';
        request('GET', '/livez').catch(() => {}); // lets the health line say so
      }
    };
    es.onopen = () => { live.textContent = 'live'; };
  }

  // (Re)load the record, then follow it while it is not finished. A failure (solad
  // away) waits for the daemon to answer again: onNet calls online() -> reload().
  async function reload() {
    clearTimeout(retry);
    try {
      const mark = evCount;
      onState(await request('GET', `/jobs/${id}`), mark);
      if (!TERMINAL.has(job.state)) follow();
    } catch (e) {
      if (e.status === 404) { title.textContent = `Job ${id}: no such job`; live.textContent = ''; return; }
      live.textContent = e.status === 0 ? 'solad is not answering: waiting for it…' : `could not load the job: ${e.message}`;
      if (e.status !== 0) retry = setTimeout(reload, 5000);
    }
  }
  reload();
  const onResize = () => chart.redraw();
  window.addEventListener('resize', onResize);
  const offNet = onNet((ok) => { if (!ok) live.textContent = 'solad is not answering: waiting for it…'; });
  return {
    el,
    online() { if (!es) reload(); },
    stop() {
      stopped = true;
      clearTimeout(retry);
      clearTimeout(syncTimer);
      if (es) es.close();
      offNet();
      window.removeEventListener('resize', onResize);
    },
  };
}

