// jobs.js -- the Jobs views: the list with a form to start training, and one job's
// page (progress bar, ETA, a live loss curve from GET /jobs/ID/events, cancel and
// resume, and the error of a failed job in plain words).
import { request, showError } from './api.js';
import { h, table, badge, duration, when, cleanName } from './dom.js';
import { drawLossChart, fmt } from './plot.js';

const ACTIVE = new Set(['queued', 'running']);

function trainForm() {
  const status = h('p', { class: 'muted', role: 'status' });
  const dsSel = h('select', { id: 'train-dataset', name: 'dataset', required: true });
  const baseSel = h('select', { id: 'train-base', name: 'base_model' },
    h('option', { value: '' }, 'a fresh model'));
  const num = (id, label, value, attrs) => h('label', { for: id }, label,
    h('input', Object.assign({ id, name: id.replace('train-', ''), type: 'number', value }, attrs)));
  const out = h('input', { id: 'train-output', name: 'output_model', placeholder: 'default: the dataset or base model name' });
  const activate = h('input', { id: 'train-activate', type: 'checkbox', checked: true });
  const form = h('form', { class: 'card grid-form', id: 'train-form' },
    h('h3', {}, 'Start training'),
    h('label', { for: 'train-dataset' }, 'Dataset', dsSel),
    h('label', { for: 'train-base' }, 'Start from', baseSel),
    h('label', { for: 'train-output' }, 'Output model', out),
    num('train-epochs', 'Epochs', 150, { min: 1, step: 1 }),
    num('train-batch', 'Batch', 256, { min: 1, step: 1 }),
    num('train-lr', 'Learning rate', 0.0001, { min: 0, step: 'any' }),
    num('train-hidden', 'Hidden channels (fresh model)', 512, { min: 1, step: 1 }),
    h('label', { class: 'check', for: 'train-activate' }, activate, 'Activate the result when done'),
    h('div', { class: 'row' }, h('button', { class: 'primary', type: 'submit' }, 'Start training'), status));

  (async () => {
    try {
      const ds = (await request('GET', '/datasets')).datasets || [];
      dsSel.replaceChildren(...(ds.length ? ds.map((d) => h('option', { value: d.name }, `${d.name} (${d.n_items} items)`))
        : [h('option', { value: '' }, 'no datasets: upload one first')]));
    } catch (e) { showError(e, 'datasets for the training form'); }
    try {
      const ms = (await request('GET', '/models')).models || [];
      for (const m of ms) if (!m.embedded) baseSel.append(h('option', { value: m.name }, `${m.name} (v${m.active}, C ${m.C})`));
    } catch (e) { showError(e, 'models for the training form'); }
  })();

  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const v = (id) => form.querySelector(`#${id}`).value;
    const spec = { dataset: dsSel.value, activate: activate.checked };
    if (!spec.dataset) { showError(new Error('choose a dataset to train on (upload one in the Datasets view)')); return; }
    if (baseSel.value) spec.base_model = baseSel.value;
    if (out.value.trim()) spec.output_model = cleanName(out.value.trim());
    for (const [id, key, parse] of [['train-epochs', 'epochs', parseInt], ['train-batch', 'batch', parseInt],
      ['train-lr', 'lr', parseFloat], ['train-hidden', 'hidden', parseInt]]) {
      const x = parse(v(id));
      if (!Number.isFinite(x)) { showError(new Error(`${key}: enter a number`)); return; }
      if (key === 'hidden' && spec.base_model) continue; // a base model fixes the shape
      spec[key] = x;
    }
    status.textContent = 'submitting…';
    try {
      const job = await request('POST', '/train', { json: spec });
      location.hash = `#/jobs/${job.id}`;
    } catch (e) {
      status.textContent = '';
      showError(e);
    }
  });
  return form;
}

export function jobsView() {
  const list = h('div', {}, h('p', { class: 'muted' }, 'loading…'));
  const el = h('section', { 'aria-labelledby': 'jobs-title' },
    h('h2', { id: 'jobs-title' }, 'Jobs'), list, trainForm());
  let timer = null, stopped = false;
  async function load() {
    try {
      const jobs = ((await request('GET', '/jobs')).jobs || []).sort((a, b) => b.id - a.id);
      list.replaceChildren(jobs.length ? table(['job', 'state', 'dataset', 'output', 'epoch', 'loss', 'created'],
        jobs.map((j) => h('tr', { 'data-job': j.id },
          h('td', {}, h('a', { href: `#/jobs/${j.id}` }, `job ${j.id}`)),
          h('td', {}, badge(j.state)),
          h('td', {}, j.dataset),
          h('td', {}, j.model_version ? `${j.output_model} v${j.model_version}` : j.output_model),
          h('td', {}, `${j.epoch}/${j.epochs}`),
          h('td', {}, fmt(j.loss, 4)),
          h('td', {}, when(j.created))))) : h('p', {}, 'No jobs yet: start one below.'));
      if (!stopped) timer = setTimeout(load, jobs.some((j) => ACTIVE.has(j.state)) ? 2000 : 10000);
    } catch (e) {
      showError(e);
      list.replaceChildren(h('p', { class: 'error' }, `Could not list the jobs: ${e.message}`));
    }
  }
  load();
  return { el, stop() { stopped = true; clearTimeout(timer); } };
}

// Plain words for the states and for common failures.
function explain(job) {
  const err = job.error || '';
  let hint = '';
  if (/dimension|channels|\bC\b|422/.test(err)) hint = 'The dataset and the starting model disagree on the feature dimension: start from a fresh model or pick a model with the same C.';
  else if (/no (usable )?videos|longer than|T > |window/i.test(err)) hint = 'Training needs sequences longer than the window (23 snippets): upload longer items.';
  else if (/space|ENOSPC|disk/i.test(err)) hint = 'The daemon ran out of disk space; free some and resume the job.';
  else if (/not found|no dataset|no model/i.test(err)) hint = 'Something the job needs was deleted or renamed.';
  return hint;
}

export function jobView(id) {
  const title = h('h2', { id: 'job-title' }, `Job ${id}`);
  const state = h('span', { id: 'job-state' });
  const bar = h('progress', { id: 'job-progress', max: 1, value: 0, 'aria-label': 'training progress' });
  const barText = h('span', { id: 'job-progress-text' });
  const facts = h('dl', { class: 'facts' });
  const failure = h('div', { id: 'job-error', class: 'failure', hidden: true });
  const live = h('span', { class: 'muted', id: 'job-live', role: 'status' });
  const canvas = h('canvas', { id: 'loss-chart', class: 'chart', role: 'img', 'aria-label': 'loss per epoch' });
  const cancelB = h('button', { type: 'button', id: 'job-cancel', onclick: () => act('DELETE', `/jobs/${id}`) }, 'Cancel');
  const resumeB = h('button', { type: 'button', id: 'job-resume', onclick: () => act('POST', `/jobs/${id}/resume`) }, 'Resume');
  const el = h('section', { 'aria-labelledby': 'job-title' },
    h('p', {}, h('a', { href: '#/jobs' }, '← all jobs')),
    h('div', { class: 'row' }, title, state),
    h('div', { class: 'row progress-row' }, bar, barText),
    failure,
    h('div', { class: 'row' }, cancelB, resumeB, live),
    h('figure', { class: 'card' }, canvas, h('figcaption', { class: 'muted' },
      'Training loss per epoch (line) and the loss of the latest step (hollow dot).')),
    facts);

  let job = null, history = [], liveStep = null, es = null, stopped = false, retry = null;

  function render() {
    if (!job) return;
    state.replaceChildren(badge(job.state));
    const spe = job.steps_per_epoch || 0;
    let frac = job.epochs ? (history.length / job.epochs) : 0;
    if (job.state === 'running' && spe && job.epoch >= 1)
      frac = Math.max(frac, ((job.epoch - 1) * spe + (job.step || 0)) / (job.epochs * spe));
    if (job.state === 'succeeded') frac = 1;
    bar.value = Math.min(1, frac);
    const eta = job.state === 'running' ? `, ETA ${duration(job.eta_s)}` : '';
    barText.textContent = `${Math.round(bar.value * 100)}% · epoch ${job.epoch || 0} of ${job.epochs}${eta}`;
    const f = [
      ['dataset', job.dataset], ['objective', job.objective],
      ['output', job.model_version ? h('a', { href: '#/models' }, `${job.output_model} v${job.model_version}`) : job.output_model],
      ['latest loss', fmt(job.loss, 4)], ['windows/s', job.windows_per_s ? Math.round(job.windows_per_s) : '–'],
      ['videos', job.videos != null ? `${job.videos}${job.skipped ? ` (${job.skipped} too short, skipped)` : ''}` : '–'],
      ['created', when(job.created)], ['started', when(job.started)], ['finished', when(job.finished)],
    ];
    if (job.params) f.push(['parameters', `batch ${job.params.batch}, lr ${job.params.lr}, seed ${job.params.seed}`]);
    facts.replaceChildren(...f.flatMap(([k, v]) => [h('dt', {}, k), h('dd', {}, v ?? '–')]));
    const failed = job.state === 'failed';
    failure.hidden = !(failed || (job.error && job.state !== 'succeeded'));
    if (!failure.hidden) {
      const hint = explain(job);
      failure.replaceChildren(h('strong', {}, failed ? 'This job failed. ' : `This job is ${job.state}. `),
        h('span', {}, job.error ? `The daemon said: ${job.error}` : 'No reason was recorded.'),
        hint ? h('p', {}, hint) : null);
    }
    cancelB.disabled = !['queued', 'running', 'interrupted'].includes(job.state);
    // only an interrupted job (solad stopped mid-run) continues from its checkpoint
    resumeB.disabled = job.state !== 'interrupted';
    resumeB.title = resumeB.disabled ? 'only a job interrupted by a restart of solad can resume' : '';
    const pts = history.map((y, i) => ({ x: i + 1, y }));
    if (liveStep && job.state === 'running') pts.push(liveStep);
    canvas.dataset.points = String(history.length);
    canvas.dataset.lastLoss = history.length ? String(history[history.length - 1]) : '';
    canvas.dataset.state = job.state;
    drawLossChart(canvas, pts, job.epochs);
  }

  async function act(method, path) {
    try {
      const j = await request(method, path);
      if (j && j.id) onState(j);
      else onState(await request('GET', `/jobs/${id}`));
      if (ACTIVE.has(job.state)) follow(); // a resumed job streams again
    } catch (e) { showError(e); }
  }

  function onState(j) {
    job = j;
    // a job's loss history only grows (resume keeps it): a state record that lags
    // behind the progress events already drawn must not shrink the curve
    if (Array.isArray(j.loss_history) && j.loss_history.length >= history.length)
      history = j.loss_history.slice();
    liveStep = null;
    render();
    if (!ACTIVE.has(j.state) && j.state !== 'interrupted' && es) { es.close(); es = null; live.textContent = ''; }
  }

  function onProgress(p) {
    if (!job) job = {};
    Object.assign(job, p);
    if (typeof p.epoch_loss === 'number' && p.epochs_done > history.length) {
      // epochs missed while the tab was away come with the next full state
      if (p.epochs_done === history.length + 1) history.push(p.epoch_loss);
      else request('GET', `/jobs/${id}`).then(onState, showError); // keep drawing what we have
    }
    const spe = p.steps_per_epoch || 0;
    if (typeof p.loss === 'number' && spe && p.step < spe)
      liveStep = { x: (p.epoch - 1) + p.step / spe, y: p.loss, live: true };
    else liveStep = null;
    render();
  }

  function follow() {
    if (stopped || es) return;
    es = new EventSource(`/jobs/${id}/events`);
    live.textContent = 'live';
    es.addEventListener('state', (ev) => { try { onState(JSON.parse(ev.data)); } catch (e) { showError(e, 'job event'); } });
    es.addEventListener('progress', (ev) => { try { onProgress(JSON.parse(ev.data)); } catch (e) { showError(e, 'job event'); } });
    es.addEventListener('end', () => {
      es.close(); es = null;
      live.textContent = 'the daemon is restarting: reconnecting…';
      retry = setTimeout(follow, 3000);
    });
    es.onerror = () => {
      if (!es) return;
      if (es.readyState === EventSource.CLOSED) {
        es = null;
        // the stream could not be opened: find out why (404, daemon gone) and say so
        request('GET', `/jobs/${id}`).then((j) => { onState(j); if (ACTIVE.has(j.state)) retry = setTimeout(follow, 3000); },
          (e) => { showError(e); live.textContent = ''; });
      } else {
        live.textContent = 'connection lost: reconnecting…';
      }
    };
    es.onopen = () => { live.textContent = 'live'; };
  }

  (async () => {
    try {
      onState(await request('GET', `/jobs/${id}`));
      if (ACTIVE.has(job.state)) follow();
    } catch (e) {
      showError(e);
      title.textContent = `Job ${id}: ${e.message}`;
    }
  })();
  const onResize = () => render();
  window.addEventListener('resize', onResize);
  return {
    el,
    stop() {
      stopped = true;
      clearTimeout(retry);
      if (es) es.close();
      window.removeEventListener('resize', onResize);
    },
  };
}
