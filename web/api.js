// api.js -- talking to solad: JSON and binary requests, uploads with progress, the
// bearer token (asked for when the daemon answers 401), and the error list every
// failure ends up in. Nothing here swallows an error: callers get an ApiError with
// the daemon's own message, and showError puts it on the page.

const TOKEN_KEY = 'sola-token';

export class ApiError extends Error {
  constructor(status, message, what) {
    super(message);
    this.status = status;
    this.what = what; // "POST /train"
  }
}

export function token() {
  try { return sessionStorage.getItem(TOKEN_KEY) || ''; } catch { return ''; }
}

export function setToken(t) {
  try {
    if (t) sessionStorage.setItem(TOKEN_KEY, t); else sessionStorage.removeItem(TOKEN_KEY);
  } catch { /* storage disabled: the token lasts until reload */ }
  memToken = t;
  document.dispatchEvent(new CustomEvent('sola-token'));
}
let memToken = '';
function currentToken() { return token() || memToken; }

// ---- the daemon's reachability ------------------------------------------------------
// Every request's outcome says whether solad answered: a failed connection (or a
// proxy's 502/504) marks it down at once, the next answer marks it up again. Views and
// the header listen (onNet) instead of keeping their own timers.

let up = null; // null: no answer yet
const netListeners = new Set();
export function online() { return up; }
export function onNet(fn) { netListeners.add(fn); return () => netListeners.delete(fn); }
export function outcome(ok, detail) {
  const was = up;
  up = ok;
  lastOutcome = Date.now();
  if (was !== ok) for (const fn of [...netListeners]) { try { fn(ok, detail); } catch (e) { console.error(e); } }
}
let lastOutcome = 0;
export function sinceLastOutcome() { return Date.now() - lastOutcome; }
const DOWN_STATUS = new Set([0, 502, 504]);

// ---- errors -----------------------------------------------------------------------

// The banner list at the top: the same message again bumps a counter instead of
// stacking, at most MAX_BANNERS are kept, and they are cleared when the view changes
// (clearErrors) or, for "solad did not answer", when the daemon answers again.
const MAX_BANNERS = 3;
export function showError(err, context) {
  const list = document.getElementById('errors');
  let msg = err instanceof ApiError
    ? `${err.what} failed${err.status ? ` (${err.status})` : ''}: ${err.message}`
    : (err && err.message) ? err.message : String(err);
  if (context) msg = `${context}: ${msg}`;
  for (const li of list.children) {
    if (li.dataset.msg === msg) {
      const n = Number(li.dataset.count || 1) + 1;
      li.dataset.count = String(n);
      li.querySelector('.count').textContent = ` (×${n})`;
      list.prepend(li);
      return msg;
    }
  }
  const li = document.createElement('li');
  li.dataset.msg = msg;
  if (err instanceof ApiError && DOWN_STATUS.has(err.status)) li.dataset.net = '1';
  const text = document.createElement('span');
  text.textContent = msg;
  const count = document.createElement('span');
  count.className = 'count';
  const close = document.createElement('button');
  close.type = 'button';
  close.className = 'close';
  close.textContent = '×';
  close.setAttribute('aria-label', 'dismiss this error');
  close.addEventListener('click', () => li.remove());
  li.append(text, count, close);
  list.prepend(li);
  while (list.children.length > MAX_BANNERS) list.lastElementChild.remove();
  return msg;
}

export function clearErrors(onlyNet) {
  const list = document.getElementById('errors');
  for (const li of [...list.children]) if (!onlyNet || li.dataset.net) li.remove();
}
onNet((ok) => { if (ok) clearErrors(true); });

// Turns a failed reply into an ApiError with the daemon's {"error": ...} message.
async function failure(res, what) {
  let msg = `${res.status} ${res.statusText}`;
  try {
    const text = await res.text();
    try {
      const j = JSON.parse(text);
      if (j && typeof j.error === 'string') msg = j.error;
      else if (text) msg = text.slice(0, 300);
    } catch { if (text) msg = text.slice(0, 300); }
  } catch { /* body unreadable: keep the status line */ }
  return new ApiError(res.status, msg, what);
}

// ---- the token dialog ---------------------------------------------------------------

let asking = null;
// Resolves to true when the user gave a token, false when they cancelled.
export function askToken(reason) {
  if (asking) return asking;
  const dlg = document.getElementById('token-dialog');
  const input = document.getElementById('token-input');
  document.getElementById('token-reason').textContent = reason || '';
  input.value = currentToken();
  asking = new Promise((resolve) => {
    const done = () => {
      dlg.removeEventListener('close', done);
      asking = null;
      if (dlg.returnValue === 'ok' && input.value.trim()) {
        setToken(input.value.trim());
        resolve(true);
      } else {
        resolve(false);
      }
    };
    dlg.addEventListener('close', done);
    dlg.returnValue = '';
    dlg.showModal();
    input.focus();
  });
  return asking;
}

// ---- requests ---------------------------------------------------------------------

// request('GET', '/models') -> parsed JSON (or an ArrayBuffer with {binary: true}).
// A 401 asks for the token once and retries.
export async function request(method, path, opts = {}) {
  const what = `${method} ${path.split('?')[0]}`;
  for (let attempt = 0; ; attempt++) {
    const headers = Object.assign({}, opts.headers || {});
    const t = currentToken();
    if (t) headers.Authorization = `Bearer ${t}`;
    let body = opts.body;
    if (opts.json !== undefined) {
      headers['Content-Type'] = 'application/json';
      body = JSON.stringify(opts.json);
    }
    let res;
    try {
      res = await fetch(path, { method, headers, body, cache: 'no-store', signal: opts.signal });
    } catch (e) {
      if (e.name === 'AbortError') throw e;
      outcome(false, e.message);
      throw new ApiError(0, `solad did not answer (${e.message}); is it still running?`, what);
    }
    outcome(!DOWN_STATUS.has(res.status), res.status);
    if (res.status === 401 && attempt === 0) {
      const err = await failure(res, what);
      if (await askToken(`${what} needs the daemon's token: ${err.message}`)) continue;
      throw err;
    }
    if (!res.ok) throw await failure(res, what);
    if (opts.binary) return { buf: await res.arrayBuffer(), headers: res.headers };
    const text = await res.text();
    if (!text) return {};
    try { return JSON.parse(text); } catch {
      throw new ApiError(res.status, `reply is not JSON: ${text.slice(0, 120)}`, what);
    }
  }
}

// PUT/POST of a File with upload progress (fetch cannot report it). onProgress gets
// a fraction in [0, 1]. Resolves to the parsed reply; rejects with an ApiError.
export function upload(method, path, file, contentType, onProgress) {
  const what = `${method} ${path.split('?')[0]}`;
  const once = () => new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open(method, path);
    xhr.setRequestHeader('Content-Type', contentType);
    const t = currentToken();
    if (t) xhr.setRequestHeader('Authorization', `Bearer ${t}`);
    xhr.upload.onprogress = (e) => {
      if (e.lengthComputable && onProgress) onProgress(e.loaded / e.total);
    };
    xhr.onerror = () => {
      outcome(false, 'upload');
      reject(new ApiError(0, 'connection to solad failed during the upload', what));
    };
    xhr.onload = () => {
      outcome(!DOWN_STATUS.has(xhr.status), xhr.status);
      let j = null;
      try { j = JSON.parse(xhr.responseText); } catch { /* not JSON */ }
      if (xhr.status >= 200 && xhr.status < 300) {
        if (onProgress) onProgress(1);
        resolve(j || {});
      } else {
        const msg = j && typeof j.error === 'string' ? j.error
          : `${xhr.status} ${xhr.statusText} ${xhr.responseText.slice(0, 200)}`;
        reject(new ApiError(xhr.status, msg, what));
      }
    };
    xhr.send(file);
  });
  return once().catch(async (err) => {
    if (err.status === 401 && await askToken(`${what} needs the daemon's token: ${err.message}`))
      return once();
    throw err;
  });
}
