// datasets.js -- the Datasets views: the list, one dataset's items, uploads of
// .npy/.npz files (drag and drop, a folder too, or the file picker) with per-file
// progress, and deletes.
import { request, upload, showError } from './api.js';
import { h, table, bytes, nameProblem, itemName, confirmDialog } from './dom.js';

const PARALLEL = 2; // uploads at once: enough to hide latency, gentle on the daemon
const KEEP_ROWS = 40; // upload rows kept on the page; older finished ones are dropped
const WINDOW = 23; // the training window's default (POST /train "window"): shorter items are skipped

// Files of a drop, walking into dropped folders (sola synth writes DIR/features/).
async function droppedFiles(dt) {
  const entries = [...(dt.items || [])].map((it) => it.webkitGetAsEntry && it.webkitGetAsEntry()).filter(Boolean);
  if (!entries.length) return [...dt.files];
  const out = [];
  const walk = async (e, depth) => {
    if (e.isFile) out.push(await new Promise((res, rej) => e.file(res, rej)));
    else if (e.isDirectory && depth < 3) {
      const reader = e.createReader();
      for (;;) {
        const batch = await new Promise((res, rej) => reader.readEntries(res, rej));
        if (!batch.length) break;
        for (const c of batch) await walk(c, depth + 1);
      }
    }
  };
  for (const e of entries) await walk(e, 0);
  return out;
}

// The upload panel; onDone() runs when a batch has finished (to refresh the lists).
// Each file gets a row with its own progress; a refused file says why in its row (and
// only there), an item too short to train on says so; the list keeps the latest rows.
function uploader(defaultName, onDone) {
  const nameIn = h('input', { id: 'upload-dataset', value: defaultName || '', required: true, autocomplete: 'off',
    placeholder: 'e.g. thumos-i3d' });
  const nameErr = h('span', { class: 'error', id: 'upload-dataset-error', 'aria-live': 'polite' });
  const picker = h('input', { id: 'upload-files', type: 'file', multiple: true, accept: '.npy,.npz', hidden: true });
  const list = h('ul', { class: 'uploads', id: 'upload-list', 'aria-live': 'polite' });
  const summary = h('p', { class: 'muted', id: 'upload-summary', role: 'status' });
  const clearB = h('button', { type: 'button', class: 'small', id: 'upload-clear', hidden: true,
    onclick: () => { for (const li of [...list.children]) if (!li.classList.contains('busy')) li.remove(); clearB.hidden = true; } }, 'Clear the list');
  const zone = h('div', { class: 'dropzone', id: 'dropzone' },
    h('p', {}, 'Drop .npy files (one video each, [T, C]) or .npz files (several) here, or a folder of them.'),
    h('button', { type: 'button', id: 'upload-choose', onclick: () => picker.click() }, 'Choose files…'));
  const panel = h('div', { class: 'card' },
    h('h3', {}, 'Upload'),
    h('label', { for: 'upload-dataset' }, 'Into dataset', nameIn, nameErr),
    zone, picker, h('div', { class: 'row' }, summary, clearB), list);
  const check = () => {
    const p = nameProblem(nameIn.value.trim());
    nameErr.textContent = nameIn.value && p ? ` The name ${p}.` : '';
    return p;
  };
  nameIn.addEventListener('input', check);

  async function start(files) {
    const ds = nameIn.value.trim();
    const p = check();
    if (p) { nameErr.textContent = ` The dataset name ${p}.`; nameIn.focus(); return; }
    const todo = [];
    let refused = 0;
    for (const f of files) {
      const m = /^(.*)\.(npy|npz)$/i.exec(f.name);
      const row = h('li', {}, h('span', { class: 'fname' }, f.name));
      list.prepend(row);
      if (!m) {
        row.classList.add('failed');
        row.append(h('span', { class: 'error' }, 'skipped: only .npy and .npz files can be uploaded'));
        refused++;
        continue;
      }
      const bar = h('progress', { max: 1, value: 0, 'aria-label': `upload of ${f.name}` });
      const note = h('span', { class: 'muted' }, bytes(f.size));
      row.classList.add('busy');
      row.append(bar, note);
      todo.push({ f, ext: m[2].toLowerCase(), item: itemName(m[1]), bar, note, row });
    }
    while (list.children.length > KEEP_ROWS && !list.lastElementChild.classList.contains('busy')) list.lastElementChild.remove();
    let ok = 0, short = 0;
    const total = todo.length;
    const paint = () => {
      summary.textContent = `${ok} of ${total} stored${refused ? `, ${refused} refused` : ''}${short ? `, ${short} too short to train on` : ''}.`;
    };
    const worker = async () => {
      for (let t; (t = todo.shift());) {
        const path = t.ext === 'npy'
          ? `/datasets/${encodeURIComponent(ds)}/items/${encodeURIComponent(t.item)}`
          : `/datasets/${encodeURIComponent(ds)}`;
        const ctype = t.ext === 'npy' ? 'application/x-npy' : 'application/x-npz';
        try {
          const r = await upload('PUT', path, t.f, ctype, (x) => { t.bar.value = x; });
          t.row.classList.add('done');
          t.bar.remove();
          t.note.textContent = r.T ? `stored as ${t.item}: T ${r.T}, C ${r.dim}` : 'stored';
          if (r.T && r.T <= WINDOW) {
            short++;
            t.row.append(h('span', { class: 'warn' }, `T ${r.T} is not longer than the training window (${WINDOW}): training skips this item`));
          }
          ok++;
        } catch (e) {
          refused++;
          t.row.classList.add('failed');
          t.bar.remove(); // a refused file has no progress to show
          t.note.className = 'error';
          t.note.textContent = e.status ? `refused (${e.status}): ${e.message}` : e.message;
        }
        t.row.classList.remove('busy');
        paint();
      }
    };
    paint();
    await Promise.all(Array.from({ length: PARALLEL }, worker));
    clearB.hidden = false;
    if (onDone) onDone(ds, ok);
  }

  picker.addEventListener('change', () => { start([...picker.files]); picker.value = ''; });
  zone.addEventListener('dragover', (ev) => { ev.preventDefault(); zone.classList.add('over'); });
  zone.addEventListener('dragleave', () => zone.classList.remove('over'));
  zone.addEventListener('drop', async (ev) => {
    ev.preventDefault();
    zone.classList.remove('over');
    try { start(await droppedFiles(ev.dataTransfer)); } catch (e) { showError(e, 'reading the dropped files'); }
  });
  return panel;
}

export function datasetsView() {
  const list = h('div', {}, h('p', { class: 'muted' }, 'loading…'));
  async function load() {
    try {
      const ds = (await request('GET', '/datasets')).datasets || [];
      list.replaceChildren(ds.length ? table(['dataset', 'items', 'size', ''], ds.map((d) => h('tr', { 'data-dataset': d.name },
        h('td', {}, h('a', { href: `#/datasets/${encodeURIComponent(d.name)}` }, d.name)),
        h('td', {}, String(d.n_items)),
        h('td', {}, bytes(d.bytes)),
        h('td', {}, deleteButton(d.name, null, load)))))
        : h('p', {}, 'No datasets yet. Upload the .npy files of one below (for a first try: ',
          h('code', {}, 'sola synth -o demo'), ' and drop demo/features).'));
    } catch (e) {
      list.replaceChildren(h('p', { class: 'error' }, e.status === 409
        ? 'solad runs without --data: datasets are off. Restart it with --data DIR.'
        : `Could not list the datasets: ${e.message}`));
    }
  }
  load();
  const el = h('section', { 'aria-labelledby': 'ds-title' },
    h('h2', { id: 'ds-title' }, 'Datasets'), list, uploader('', () => load()));
  return { el, online: load };
}

function deleteButton(ds, item, after) {
  const what = item ? `item ${item} of dataset ${ds}` : `dataset ${ds} and all its items`;
  return h('button', {
    type: 'button', class: 'small danger', 'aria-label': `delete ${what}`,
    onclick: async (ev) => {
      const btn = ev.currentTarget;
      if (!await confirmDialog(`Delete ${what}? This cannot be undone.`, 'Delete', true)) return;
      btn.disabled = true;
      const path = item ? `/datasets/${encodeURIComponent(ds)}/items/${encodeURIComponent(item)}`
        : `/datasets/${encodeURIComponent(ds)}`;
      try { await request('DELETE', path); } catch (e) { showError(e); }
      after();
    },
  }, 'Delete');
}

export function datasetView(name) {
  const body = h('div', {}, h('p', { class: 'muted' }, 'loading…'));
  async function load() {
    try {
      const d = await request('GET', `/datasets/${encodeURIComponent(name)}`);
      const items = d.items || [];
      const short = items.filter((it) => it.T <= WINDOW);
      body.replaceChildren(
        h('dl', { class: 'facts' },
          h('dt', {}, 'items'), h('dd', { id: 'ds-items' }, String(d.n_items)),
          h('dt', {}, 'total frames'), h('dd', { id: 'ds-frames' }, String(d.frames ?? '–')),
          h('dt', {}, 'dim (C)'), h('dd', { id: 'ds-dim' }, String(d.dim ?? '–')),
          h('dt', {}, 'size'), h('dd', {}, bytes(d.bytes))),
        h('div', { class: 'row' },
          h('a', { class: 'button', href: `#/tsm?dataset=${encodeURIComponent(name)}` }, 'View TSMs'),
          deleteButton(name, null, () => { location.hash = '#/datasets'; })),
        short.length ? h('p', { class: 'warn', id: 'ds-short' }, `${short.length} item${short.length > 1 ? 's are' : ' is'} not longer than the training window (${WINDOW} snippets by default): training skips ${short.length > 1 ? 'them' : 'it'}.`) : null,
        items.length ? table(['item', 'T', 'size', ''], items.map((it) => h('tr', { 'data-item': it.name },
          h('td', {}, h('a', { href: `#/tsm?dataset=${encodeURIComponent(name)}&item=${encodeURIComponent(it.name)}` }, it.name)),
          h('td', {}, String(it.T), it.T <= WINDOW ? h('span', { class: 'badge warn-badge', title: `not longer than the window (${WINDOW})` }, 'too short') : ''),
          h('td', {}, bytes(it.bytes)),
          h('td', {}, deleteButton(name, it.name, load)))))
          : h('p', {}, 'No items.'));
    } catch (e) {
      body.replaceChildren(h('p', { class: 'error' }, `Could not read dataset ${name}: ${e.message}`));
    }
  }
  load();
  const el = h('section', { 'aria-labelledby': 'ds-title' },
    h('p', {}, h('a', { href: '#/datasets' }, '← all datasets')),
    h('h2', { id: 'ds-title' }, `Dataset ${name}`), body, uploader(name, () => load()));
  return { el, online: load };
}
