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

// ---- errors -----------------------------------------------------------------------

export function showError(err, context) {
  const list = document.getElementById('errors');
  const li = document.createElement('li');
  const text = document.createElement('span');
  let msg = err instanceof ApiError
    ? `${err.what} failed (${err.status}): ${err.message}`
    : (err && err.message) ? err.message : String(err);
  if (context) msg = `${context}: ${msg}`;
  text.textContent = msg;
  const close = document.createElement('button');
  close.type = 'button';
  close.className = 'close';
  close.textContent = '×';
  close.setAttribute('aria-label', 'dismiss this error');
  close.addEventListener('click', () => li.remove());
  li.append(text, close);
  list.prepend(li);
  while (list.children.length > 6) list.lastElementChild.remove();
  return msg;
}

export function clearErrors() {
  document.getElementById('errors').replaceChildren();
}

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
      res = await fetch(path, { method, headers, body, cache: 'no-store' });
    } catch (e) {
      throw new ApiError(0, `solad did not answer (${e.message}); is it still running?`, what);
    }
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
    xhr.onerror = () => reject(new ApiError(0, 'connection to solad failed during the upload', what));
    xhr.onload = () => {
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
