// models.js -- the start page (what the service does, the three steps and where the
// user is in them) and the Models view (every model and version with its lineage;
// activate / roll back with a confirmation, download, open in the TSM viewer, upload
// a safetensors file as a new version).
import { request, upload, showError } from './api.js';
import { h, table, when, confirmDialog, nameProblem, bytes } from './dom.js';

// ---- start ------------------------------------------------------------------------

export function homeView() {
  const steps = h('ol', { class: 'steps', id: 'home-steps' });
  const served = h('p', { id: 'home-served', class: 'muted' });
  const el = h('section', { 'aria-labelledby': 'home-title', class: 'home' },
    h('h2', { id: 'home-title' }, 'Refine video features, train on your own, look at the result'),
    h('p', { class: 'lead' },
      'solad serves SoLa (Soft-Landing, CVPR 2023): a small temporal module that refines per-snippet video ',
      'features [T, C] from a frozen encoder (I3D, SlowFast, CLIP …) so that a temporal action localisation model ',
      '(ActionFormer, OpenTAD) sees sharper action boundaries. It learns from unlabelled feature sequences. ',
      'Clients call ', h('code', {}, 'POST /refine'), '; this page trains models and shows what they do.'),
    steps, served);

  async function load() {
    const [ds, jobs, models] = await Promise.allSettled([
      request('GET', '/datasets'), request('GET', '/jobs'), request('GET', '/models')]);
    const nDs = ds.status === 'fulfilled' ? (ds.value.datasets || []).length : null;
    const js = jobs.status === 'fulfilled' ? (jobs.value.jobs || []) : null;
    const ms = models.status === 'fulfilled' ? (models.value.models || []) : null;
    const trained = ms ? ms.filter((m) => !m.embedded) : null;
    const running = js ? js.filter((j) => j.state === 'running' || j.state === 'queued') : [];
    const noData = ds.status === 'rejected' && ds.reason.status === 409;
    const step = (n, done, title, text, link, label, state) => h('li', { class: done ? 'done' : '', 'data-step': n },
      h('h3', {}, h('span', { class: 'step-n', 'aria-hidden': 'true' }, done ? '✓' : String(n)), title),
      h('p', {}, text), state ? h('p', { class: 'muted' }, state) : null,
      h('a', { class: 'button', href: link }, label));
    const unknown = (r) => (r.status === 'rejected' ? `(could not ask solad: ${r.reason.message})` : '');
    steps.replaceChildren(
      step(1, nDs > 0, 'Upload a dataset',
        'Drop the .npy feature files of your videos (one [T, C] array each, or .npz archives, or a folder). `sola synth` makes a synthetic one to try.',
        '#/datasets', nDs ? 'Datasets' : 'Upload a dataset',
        noData ? 'solad runs without --data: uploads and training are off. Restart it with --data DIR.'
          : nDs === null ? unknown(ds) : nDs ? `${nDs} dataset${nDs > 1 ? 's' : ''} uploaded.` : 'No dataset yet.'),
      step(2, trained && trained.length > 0, 'Train a model',
        'Start a training job on a dataset, follow its loss curve live, compare runs, and activate the version you trust.',
        '#/jobs', 'Jobs',
        js === null ? unknown(jobs) : `${js.length} job${js.length === 1 ? '' : 's'}${running.length ? `, ${running.length} running or queued` : ''}; ${trained ? trained.length : '?'} trained model${trained && trained.length === 1 ? '' : 's'}.`),
      step(3, false, 'Look at the TSMs',
        'The temporal self-similarity map of a video before and after refinement: actions show as blocks on the diagonal. Compare two versions side by side.',
        '#/tsm', 'TSM viewer', ''));
    if (ms) {
      const def = ms.find((m) => m.name === models.value.default);
      served.replaceChildren(def
        ? (def.embedded
          ? `POST /refine without a model name is answered by solad's built-in model "${def.name}" (an identity: it returns the features unchanged, C ${def.C}). It is served only until the first model is trained or uploaded.`
          : `POST /refine without a model name is answered by "${def.name}" v${def.active} (C ${def.C}).`)
        : 'No model is loaded.');
    } else served.textContent = unknown(models);
  }
  load();
  return { el, online: load };
}

// ---- models -----------------------------------------------------------------------

// Lineage of a version: the job that trained it (GET /jobs) and, for the active
// version, the metadata written into the file.
function provenance(model, version, jobs) {
  const job = jobs.find((j) => j.output_model === model.name && j.model_version === version);
  const parts = [];
  if (version === model.active && model.metadata && !model.embedded) {
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
  if (!parts.length) parts.push(model.embedded ? 'built into solad (identity)' : 'uploaded (no training job on record)');
  return h('span', {}, parts.join(' · '), jobLink ? ' · ' : '', jobLink);
}

export async function activateVersion(name, version, active) {
  const verb = active && version < active ? `Roll back model "${name}" to v${version}` : `Activate v${version} of model "${name}"`;
  const ok = await confirmDialog(`${verb}? Requests that name this model (or use it as the default) are answered by v${version} from then on.`,
    active && version < active ? `Roll back to v${version}` : `Activate v${version}`);
  if (!ok) return false;
  await request('POST', `/models/${encodeURIComponent(name)}/activate`, { json: { version } });
  return true;
}

function uploadForm(models, after) {
  const nameIn = h('input', { id: 'mupload-name', required: true, placeholder: 'e.g. thumos-i3d', autocomplete: 'off' });
  const verIn = h('input', { id: 'mupload-version', type: 'number', min: 1, step: 1, placeholder: 'next' });
  const fileIn = h('input', { id: 'mupload-file', type: 'file', accept: '.safetensors', required: true });
  const bar = h('progress', { max: 1, value: 0, hidden: true, 'aria-label': 'model upload' });
  const status = h('p', { role: 'status', id: 'mupload-status', class: 'muted' });
  const form = h('form', { class: 'card grid-form', id: 'model-upload', novalidate: true },
    h('h3', {}, 'Upload a model'),
    h('p', { class: 'muted span' }, 'A safetensors file written by `sola train` or `sola init` (or downloaded from a solad). It is added as a new version; versions are never overwritten.'),
    h('label', { for: 'mupload-name' }, 'Model name', nameIn),
    h('label', { for: 'mupload-version' }, 'Version', verIn),
    h('label', { for: 'mupload-file' }, 'File', fileIn),
    h('div', { class: 'row' }, h('button', { class: 'primary', type: 'submit' }, 'Upload'), bar, status));
  nameIn.addEventListener('input', () => {
    const p = nameIn.value ? nameProblem(nameIn.value.trim()) : '';
    nameIn.setCustomValidity(p ? `The model name ${p}` : '');
    const m = models.find((x) => x.name === nameIn.value.trim());
    verIn.placeholder = m ? `next: ${Math.max(...m.versions) + 1}` : 'next: 1';
  });
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const name = nameIn.value.trim();
    const p = nameProblem(name);
    if (p) { status.textContent = `The model name ${p}.`; status.className = 'error'; nameIn.focus(); return; }
    const f = fileIn.files[0];
    if (!f) { status.textContent = 'Choose a .safetensors file.'; status.className = 'error'; return; }
    const m = models.find((x) => x.name === name);
    const version = Number(verIn.value) || (m ? Math.max(...m.versions) + 1 : 1);
    bar.hidden = false;
    status.className = 'muted';
    status.textContent = `uploading ${f.name} (${bytes(f.size)}) as ${name} v${version}…`;
    try {
      await upload('PUT', `/models/${encodeURIComponent(name)}/versions/${version}`, f, 'application/octet-stream', (x) => { bar.value = x; });
      status.textContent = `${name} v${version} stored.`;
      form.reset();
      after();
    } catch (e) {
      status.className = 'error';
      status.textContent = `${f.name}: ${e.message}`;
    }
    bar.hidden = true;
  });
  return form;
}

export function modelsView() {
  const body = h('div', {}, h('p', { class: 'muted' }, 'loading…'));
  const uploadBox = h('div');
  const el = h('section', { 'aria-labelledby': 'models-title' },
    h('h2', { id: 'models-title' }, 'Models'), body, uploadBox);

  async function activate(name, version, active, btn) {
    btn.disabled = true;
    try {
      await activateVersion(name, version, active);
    } catch (e) {
      showError(e);
    }
    btn.disabled = false;
    await load();
  }

  async function load() {
    let models, jobs = [];
    try {
      models = await request('GET', '/models');
    } catch (e) {
      body.replaceChildren(h('p', { class: 'error' }, `Could not list the models: ${e.message}`,
        e.status === 0 ? ' (this list reloads when solad answers again)' : ''));
      return;
    }
    try { jobs = (await request('GET', '/jobs')).jobs || []; } catch { /* lineage from metadata only */ }
    const list = models.models || [];
    const cards = list.map((m) => {
      const versions = [...(m.versions || [])].sort((a, b) => b - a);
      const rows = versions.map((v) => {
        const active = v === m.active;
        const label = m.active && v < m.active ? `Roll back to v${v}` : `Activate v${v}`;
        const job = jobs.find((j) => j.output_model === m.name && j.model_version === v);
        const tsm = `#/tsm?model=${encodeURIComponent(m.name)}&version=${v}${job ? `&dataset=${encodeURIComponent(job.dataset)}` : ''}`;
        return h('tr', { class: active ? 'active' : '', 'data-version': v },
          h('td', {}, `v${v}`),
          h('td', {}, active ? h('strong', {}, 'active') : ''),
          h('td', {}, provenance(m, v, jobs)),
          h('td', { class: 'actions' },
            active ? null : h('button', {
              type: 'button', class: 'small',
              'aria-label': `${label} of model ${m.name}`,
              onclick: (ev) => activate(m.name, v, m.active, ev.currentTarget),
            }, label),
            m.embedded ? null : h('a', { class: 'button small', href: `/models/${encodeURIComponent(m.name)}/versions/${v}`,
              download: `${m.name}-${v}.safetensors`, 'aria-label': `download ${m.name} v${v}` }, 'Download'),
            h('a', { class: 'button small', href: tsm, 'aria-label': `open ${m.name} v${v} in the TSM viewer` }, 'TSM viewer')));
      });
      const shape = m.C ? `C ${m.C} · H ${m.H} · kernels ${m.k1}/${m.k2}` : '';
      return h('article', { class: 'card model', 'data-model': m.name },
        h('h3', {}, m.name, models.default === m.name ? h('span', { class: 'badge' }, 'default') : '',
          m.embedded ? h('span', { class: 'badge' }, 'built in') : ''),
        h('p', { class: 'muted' }, shape),
        m.embedded ? h('p', { class: 'note' }, 'solad\'s built-in identity model: it returns features unchanged. It is served only while no model has been trained or uploaded; the first one replaces it as the default.') : null,
        m.error ? h('p', { class: 'error' }, `Not loaded: ${m.error}`) : null,
        m.warning ? h('p', { class: 'error' }, `Warning: ${m.warning}`) : null,
        table(['version', 'state', 'lineage', 'actions'], rows));
    });
    const anyEmbedded = list.some((m) => m.embedded);
    body.replaceChildren(
      h('p', { class: 'muted', id: 'models-default' }, `Requests that name no model are answered by "${models.default || '–'}".`,
        anyEmbedded ? '' : ' (solad\'s built-in identity model is no longer served: trained or uploaded models exist.)'),
      ...(cards.length ? cards : [h('p', {}, 'No models yet: train one from the ', h('a', { href: '#/jobs' }, 'Jobs'), ' view.')]));
    uploadBox.replaceChildren(uploadForm(list, load));
  }
  load();
  return { el, online: load };
}
