// app.js -- the page solad serves at /: a hash router over the views (start, models,
// jobs, one job, compare, datasets, TSM viewer), the health line and the token
// button. Each view is a function (params) -> {el, stop?, online?}; stop() closes its
// timers and event streams when the user navigates away, online() reloads what failed
// while the daemon was away (called when requests succeed again).
import { request, showError, clearErrors, askToken, setToken, token, onNet, online, sinceLastOutcome } from './api.js';
import { choiceDialog } from './dom.js';
import { jobsView, jobView } from './jobs.js';
import { compareView } from './compare.js';
import { datasetsView, datasetView } from './datasets.js';
import { tsmView } from './tsm.js';
import { homeView, modelsView } from './models.js';

const routes = [
  [/^#\/?$/, 'home', () => homeView()],
  [/^#\/models$/, 'models', () => modelsView()],
  [/^#\/jobs(\?.*)?$/, 'jobs', (m) => jobsView(new URLSearchParams((m[1] || '').slice(1)))],
  [/^#\/jobs\/(\d+)$/, 'jobs', (m) => jobView(Number(m[1]))],
  [/^#\/compare(\?.*)?$/, 'compare', (m) => compareView(new URLSearchParams((m[1] || '').slice(1)))],
  [/^#\/datasets$/, 'datasets', () => datasetsView()],
  [/^#\/datasets\/([^/?]+)$/, 'datasets', (m) => datasetView(decodeURIComponent(m[1]))],
  [/^#\/tsm(\?.*)?$/, 'tsm', (m) => tsmView(new URLSearchParams((m[1] || '').slice(1)))],
];
const TITLES = { home: 'start', models: 'models', jobs: 'jobs', compare: 'compare runs', datasets: 'datasets', tsm: 'TSM viewer' };

let current = null;
function route() {
  const hash = location.hash || '#/';
  const hit = routes.find(([re]) => re.test(hash));
  if (!hit) {
    showError(new Error(`no page at ${hash}; showing the start page`));
    location.hash = '#/';
    return;
  }
  if (current && current.stop) current.stop();
  clearErrors(); // banners belong to the view they were raised in
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
  document.title = `SoLa · ${TITLES[name] || name}`;
}

// ---- the health line: what the last request said, not a timer ---------------------
// Down: a probe every 2 s (then up to every 10 s) until solad answers; then every view
// reloads what it could not get. Up and idle: one /healthz after 20 s without any
// answer (event-stream messages count as answers).

let probeTimer = null, probeDelay = 2000, version = '';
function paintHealth(ok, detail) {
  const el = document.getElementById('health');
  el.dataset.state = ok === null ? 'unknown' : ok ? 'up' : 'down';
  if (ok) {
    el.textContent = `solad ${version} · ok`.replace('  ', ' ');
    el.className = '';
  } else if (ok === false) {
    el.textContent = `solad unreachable${detail ? ` (${detail})` : ''} · retrying`;
    el.className = 'error';
  }
}

async function probe() {
  clearTimeout(probeTimer);
  probeTimer = null;
  try {
    const hz = await request('GET', '/healthz');
    version = hz.version || version;
    paintHealth(true);
  } catch { /* outcome() already marked it down */ }
  schedule();
}

function schedule() {
  clearTimeout(probeTimer);
  if (online() === false) {
    probeTimer = setTimeout(probe, probeDelay);
    probeDelay = Math.min(10000, probeDelay * 1.5);
  } else {
    probeDelay = 2000;
    probeTimer = setTimeout(() => {
      if (document.visibilityState === 'visible' && sinceLastOutcome() >= 20000) probe();
      else schedule();
    }, 20000);
  }
}

onNet((ok, detail) => {
  paintHealth(ok, ok ? '' : (typeof detail === 'number' ? `HTTP ${detail}` : 'no connection'));
  schedule();
  if (ok && current && current.online) {
    try { current.online(); } catch (e) { showError(e); }
  }
});

function tokenButton() {
  const b = document.getElementById('token-button');
  const paint = () => { b.textContent = token() ? 'Token ✓' : 'Token'; };
  b.addEventListener('click', async () => {
    if (token()) {
      const what = await choiceDialog('This tab keeps a token for solad, sent with changes (activate, train, upload, delete).',
        [['forget', 'Forget it', 'danger'], ['edit', 'Edit it'], ['cancel', 'Cancel']]);
      if (what === 'forget') setToken('');
      else if (what === 'edit') await askToken('Edit the token sent with changes (activate, train, upload, delete).');
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
probe();
