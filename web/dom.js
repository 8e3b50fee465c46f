// dom.js -- small helpers for building the page without a framework.

// h('button', {type: 'button', onclick: f}, 'text', child...) -> element. Attributes
// starting with "on" become listeners; class, for, data-* and aria-* are set as is;
// style only as an object (set through CSSOM: the CSP refuses style attributes).
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
    else if (k === 'style' && typeof v === 'object') { for (const [p, x] of Object.entries(v)) el.style.setProperty(p, x); } // CSSOM: allowed by the CSP
    else if (k === 'class') el.className = v;
    else if (k === 'text') el.textContent = v;
    else if (k in el && !k.includes('-') && typeof v !== 'string') el[k] = v;
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

// A table in a horizontally scrolling box; when it is wider than the box (a phone),
// a hint says so instead of columns silently disappearing off the edge.
export function table(headers, rows, caption) {
  const hint = h('p', { class: 'scroll-hint muted', hidden: true }, 'Scroll sideways for more columns →');
  const box = h('div', { class: 'scroll', tabindex: 0 },
    h('table', {},
      caption ? h('caption', {}, caption) : null,
      h('thead', {}, h('tr', {}, headers.map((x) => h('th', { scope: 'col' }, x)))),
      h('tbody', {}, rows)));
  const check = () => { hint.hidden = box.scrollWidth <= box.clientWidth + 1; };
  if (typeof ResizeObserver === 'function') new ResizeObserver(check).observe(box);
  return h('div', { class: 'table-wrap' }, hint, box);
}

export function badge(state) {
  return h('span', { class: `badge state-${state}` }, state);
}

export function bytes(n) {
  if (n === null || n === undefined) return '–';
  const u = ['B', 'KB', 'MB', 'GB', 'TB'];
  let i = 0;
  while (n >= 1024 && i < u.length - 1) { n /= 1024; i++; }
  return `${i ? n.toFixed(1) : n} ${u[i]}`;
}

export function duration(s) {
  if (s === null || s === undefined || !Number.isFinite(s)) return '–';
  s = Math.round(s);
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min ${s % 60} s`;
  return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
}

export function when(iso) {
  if (!iso) return '–';
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? iso : d.toLocaleString();
}

// Names the daemon accepts for models, datasets and items: [A-Za-z0-9._-], 1..64,
// not starting with '.' or '-'. Returns '' when s is one, else what is wrong with it
// (the page says so rather than rewriting the name behind the user's back).
export function nameProblem(s) {
  if (!s) return 'enter a name';
  if (s.length > 64) return `is ${s.length} characters long; at most 64`;
  const bad = [...new Set(s.replace(/[A-Za-z0-9._-]/g, ''))];
  if (bad.length) return `may only hold letters, digits, '.', '_' and '-' (not ${bad.map((c) => (c === ' ' ? 'spaces' : `'${c}'`)).join(', ')})`;
  if (/^[.-]/.test(s)) return "may not start with '.' or '-'";
  return '';
}

// A file name turned into an item name the daemon accepts (the item name is derived,
// not typed, so this one is rewritten -- and the upload list shows the result).
export function itemName(s) {
  return s.replace(/[^A-Za-z0-9._-]+/g, '_').replace(/^[.-]+/, '').slice(0, 64);
}

// A modal question in a <dialog> (window.confirm blocks the page's thread). choices:
// [[value, label, class]]; resolves to the value of the button pressed ('' when the
// dialog is closed with Escape). The last choice is the cancelling one.
export function choiceDialog(text, choices) {
  return new Promise((resolve) => {
    const buttons = choices.map(([value, label, cls], i) => h('button', { value, class: cls || '',
      id: i === choices.length - 1 ? 'confirm-cancel' : i === 0 ? 'confirm-ok' : `confirm-${value}` }, label));
    const dlg = h('dialog', { class: 'confirm', id: 'confirm-dialog', 'aria-labelledby': 'confirm-text' },
      h('form', { method: 'dialog' }, h('p', { id: 'confirm-text' }, text), h('div', { class: 'row' }, buttons)));
    dlg.addEventListener('close', () => { resolve(dlg.returnValue); dlg.remove(); });
    document.body.append(dlg);
    dlg.showModal();
    buttons[0].focus();
  });
}

// Yes/no: resolves to true when the user pressed the confirming button.
export async function confirmDialog(text, okLabel = 'OK', danger = false) {
  return (await choiceDialog(text, [['ok', okLabel, danger ? 'danger' : 'primary'], ['cancel', 'Cancel']])) === 'ok';
}

// Absolute file paths in a daemon message (a job's error) cut to their last part:
// the page user cannot open the server's files, and they leak its layout.
export function stripPaths(msg) {
  return String(msg).replace(/(^|[\s'"(=])(\/(?:[^\s'"():/]+\/)+)([^\s'"():/]*)/g, (all, pre, dirs, base, at, str) =>
    (/\b(GET|POST|PUT|DELETE|HEAD) $/.test(str.slice(0, at + pre.length)) ? all : pre + base)); // API routes stay
}
