// app.js -- the page solad serves at /: a hash router over four views (models, jobs,
// datasets, TSM viewer), the health line and the token button. Each view is a
// function (params) -> {el, stop?}; stop() closes its timers and event streams when
// the user navigates away.
import { request, showError, askToken, setToken, token } from './api.js';
import { h, table, when } from './dom.js';
import { jobsView, jobView } from './jobs.js';
import { datasetsView, datasetView } from './datasets.js';
import { tsmView } from './tsm.js';

// ---- models -----------------------------------------------------------------------

// Provenance of each version: the job that trained it (GET /jobs) and, for the
// active version, the metadata written into the file.
function provenance(model, version, jobs) {
  const job = jobs.find((j) => j.output_model === model.name && j.model_version === version);
  const parts = [];
  if (version === model.active && model.metadata) {
    const m = model.metadata;
    if (m.objective) parts.push(`objective ${m.objective}`);
    if (m.dataset) parts.push(`dataset ${m.dataset}`);
    if (m.epochs) parts.push(`${m.epochs} epochs`);
    if (m.created) parts.push(`created ${when(m.created)}`);
    if (!parts.length && m.origin) parts.push(m.origin);
  } else if (job) {
    parts.push(`objective ${job.objective}`, `dataset ${job.dataset}`, `${job.epochs} epochs`,
      `created ${when(job.finished || job.created)}`);
  }
  const jobLink = job ? h('a', { href: `#/jobs/${job.id}` }, `job ${job.id}`) : null;
  if (!parts.length) parts.push(model.embedded ? 'built into solad' : 'uploaded (no training job on record)');
  return h('span', {}, parts.join(' · '), jobLink ? ' · ' : '', jobLink);
}

function modelsView() {
  const el = h('section', { 'aria-labelledby': 'models-title' },
    h('h2', { id: 'models-title' }, 'Models'));
  const body = h('div', {}, h('p', { class: 'muted' }, 'loading…'));
  el.append(body);

  async function activate(name, version, btn) {
    btn.disabled = true;
    try {
      await request('POST', `/models/${encodeURIComponent(name)}/activate`, { json: { version } });
    } catch (e) {
      showError(e);
    }
    await load();
  }

  async function load() {
    let models, jobs = [];
    try {
      models = await request('GET', '/models');
    } catch (e) {
      showError(e);
      body.replaceChildren(h('p', { class: 'error' }, `Could not list the models: ${e.message}`));
      return;
    }
    try { jobs = (await request('GET', '/jobs')).jobs || []; } catch (e) {
      if (e.status !== 404) showError(e, 'provenance from the job list');
    }
    const list = models.models || [];
    if (!list.length) {
      body.replaceChildren(h('p', {}, 'No models yet: train one from the ',
        h('a', { href: '#/jobs' }, 'Jobs'), ' view.'));
      return;
    }
    body.replaceChildren(...list.map((m) => {
      const versions = [...(m.versions || [])].sort((a, b) => b - a);
      const rows = versions.map((v) => {
        const active = v === m.active;
        const label = m.active && v < m.active ? `Roll back to v${v}` : `Activate v${v}`;
        return h('tr', { class: active ? 'active' : '' },
          h('td', {}, `v${v}`),
          h('td', {}, active ? h('strong', {}, 'active') : ''),
          h('td', {}, provenance(m, v, jobs)),
          h('td', {}, active ? '' : h('button', {
            type: 'button', class: 'small',
            'aria-label': `${label} of model ${m.name}`,
            onclick: (ev) => activate(m.name, v, ev.currentTarget),
          }, label)));
      });
      const shape = m.C ? `C ${m.C} · H ${m.H} · kernels ${m.k1}/${m.k2}` : '';
      return h('article', { class: 'card model', 'data-model': m.name },
        h('h3', {}, m.name, models.default === m.name ? h('span', { class: 'badge' }, 'default') : ''),
        h('p', { class: 'muted' }, shape),
        m.error ? h('p', { class: 'error' }, `Not loaded: ${m.error}`) : null,
        m.warning ? h('p', { class: 'error' }, `Warning: ${m.warning}`) : null,
        table(['version', 'state', 'provenance', ''], rows));
    }));
  }
  load();
  return { el };
}

// ---- the shell ----------------------------------------------------------------------

const routes = [
  [/^#\/models$/, 'models', () => modelsView()],
  [/^#\/jobs$/, 'jobs', () => jobsView()],
  [/^#\/jobs\/(\d+)$/, 'jobs', (m) => jobView(Number(m[1]))],
  [/^#\/datasets$/, 'datasets', () => datasetsView()],
  [/^#\/datasets\/([^/]+)$/, 'datasets', (m) => datasetView(decodeURIComponent(m[1]))],
  [/^#\/tsm(\?.*)?$/, 'tsm', (m) => tsmView(new URLSearchParams((m[1] || '').slice(1)))],
];

let current = null;
function route() {
  const hash = location.hash || '#/models';
  let hit = routes.find(([re]) => re.test(hash));
  if (!hit) {
    showError(new Error(`no page at ${hash}; showing the models`));
    location.hash = '#/models';
    return;
  }
  if (current && current.stop) current.stop();
  const [re, name, make] = hit;
  for (const a of document.querySelectorAll('nav a'))
    a.toggleAttribute('aria-current', a.dataset.view === name);
  const view = document.getElementById('view');
  try {
    current = make(re.exec(hash));
    view.replaceChildren(current.el);
  } catch (e) {
    current = null;
    showError(e);
  }
  document.title = `SoLa · ${name}`;
}

async function health() {
  const el = document.getElementById('health');
  try {
    const hz = await request('GET', '/healthz');
    el.textContent = `solad ${hz.version || ''} · ${hz.status || 'ok'}`;
    el.className = '';
  } catch (e) {
    el.textContent = `solad unreachable: ${e.message}`;
    el.className = 'error';
  }
}

function tokenButton() {
  const b = document.getElementById('token-button');
  const paint = () => { b.textContent = token() ? 'Token ✓' : 'Token'; };
  b.addEventListener('click', async () => {
    if (token() && !confirm('Forget the token kept for this tab? (OK forgets, Cancel edits it)')) {
      await askToken('Edit the token sent with changes (activate, train, upload, delete).');
    } else if (token()) {
      setToken('');
    } else {
      await askToken('Sent with changes (activate, train, upload, delete) when solad has a token file.');
    }
    paint();
  });
  document.addEventListener('sola-token', paint);
  paint();
}

window.addEventListener('hashchange', route);
window.addEventListener('unhandledrejection', (ev) => showError(ev.reason));
window.addEventListener('error', (ev) => showError(ev.error || ev.message));
tokenButton();
route();
health();
setInterval(health, 15000);
