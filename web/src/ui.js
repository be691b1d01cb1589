// Shared pieces of every page: the html template tag, formatting, status
// badges, digests, loading/empty/error states, toasts, the data hook and a
// windowed, sortable table.
import { h } from 'preact';
import { useCallback, useEffect, useMemo, useRef, useState } from 'preact/hooks';
import htm from 'htm';
import { get } from './api.js';
import { signal, useSignal } from './state.js';
import { Link } from './router.js';

export const html = htm.bind(h);

// ---- formatting ----
export const fixed = (v, places = 4) => (typeof v === 'number' && isFinite(v) ? v.toFixed(places) : '–');
export function metric(v) {
  if (typeof v !== 'number' || !isFinite(v)) return '–';
  return Math.abs(v) !== 0 && Math.abs(v) < 0.001 ? v.toExponential(2) : v.toFixed(4);
}
export function hp(v) {
  if (typeof v === 'number') return Number.isInteger(v) ? String(v) : (Math.abs(v) < 0.01 ? v.toExponential(2) : v.toPrecision(4));
  return typeof v === 'string' ? v : JSON.stringify(v);
}
export function seconds(s) {
  if (typeof s !== 'number' || !isFinite(s) || s < 0) return '–';
  if (s < 60) return s.toFixed(1) + ' s';
  if (s < 3600) return Math.floor(s / 60) + ' min ' + Math.round(s % 60) + ' s';
  return Math.floor(s / 3600) + ' h ' + Math.round((s % 3600) / 60) + ' min';
}
export const duration = (a, b) => (a > 0 ? seconds((b > 0 ? b : Date.now() / 1000) - a) : '–');
export function when(t) {
  if (!(t > 0)) return '–';
  const d = new Date(t * 1000);
  const pad = (n) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}
export function bytes(n) {
  if (typeof n !== 'number') return '–';
  const u = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  while (n >= 1024 && i < u.length - 1) { n /= 1024; i++; }
  return (i === 0 ? n : n.toFixed(1)) + ' ' + u[i];
}
export const short = (d) => (d && d.length > 12 ? d.slice(0, 12) : d || '');

// The Okabe-Ito palette, for curves of many trials.
export const PALETTE = ['#0072B2', '#E69F00', '#009E73', '#D55E00', '#CC79A7', '#56B4E9', '#F0E442', '#777777'];
export const STATUSES = ['succeeded', 'running', 'pending', 'pruned', 'failed', 'diverged', 'cancelled', 'interrupted', 'skipped', 'cached'];

// ---- small components ----
export function Badge({ status, title }) {
  const s = status || 'pending';
  return html`<span class=${'badge st-' + s} title=${title || s}>${s}</span>`;
}

export function Digest({ value, href, full = false }) {
  if (!value) return html`<span class="muted">–</span>`;
  const copy = (e) => { e.preventDefault(); navigator.clipboard && navigator.clipboard.writeText(value).then(() => toast('copied ' + short(value))); };
  const text = html`<span class="mono" title=${value}>${full ? value : short(value)}</span>`;
  return html`<span>${href ? html`<${Link} href=${href}>${text}<//>` : text}<button class="copy" title="copy the whole digest" aria-label="copy digest" onClick=${copy}><svg viewBox="0 0 24 24" width="12" height="12" aria-hidden="true" fill="none" stroke="currentColor" stroke-width="2"><rect x="9" y="9" width="11" height="11" rx="2" /><path d="M5 15V5a2 2 0 0 1 2-2h10" /></svg></button></span>`;
}

export const Loading = ({ lines = 3 }) => html`<div aria-busy="true" aria-label="loading">${Array.from({ length: lines }, (_, i) => html`<div class="skeleton" style=${{ width: `${90 - i * 15}%` }}></div>`)}</div>`;
export const Empty = ({ children }) => html`<div class="empty">${children}</div>`;
export function ErrorState({ error, retry }) {
  return html`<div class="error-state" role="alert"><div>${error && error.message ? error.message : String(error)}</div>
    ${retry ? html`<button onClick=${retry}>Retry</button>` : null}</div>`;
}

export function Card({ title, children, right, ...rest }) {
  return html`<section class="card" ...${rest}>${title || right ? html`<div class="row" style="margin-bottom:8px"><h2 style="margin:0">${title}</h2><span class="spacer"></span>${right}</div>` : null}${children}</section>`;
}

// Header line of a page: name, status, timings, actions.
export function PageHead({ title, status, meta = [], actions }) {
  return html`<div class="pagehead"><h1>${title}</h1>${status ? html`<${Badge} status=${status} />` : null}
    <div class="meta">${meta.filter(Boolean).map((m) => html`<span>${m}</span>`)}</div>
    <div class="actions">${actions}</div></div>`;
}

// ---- breadcrumb and toasts, set by pages ----
export const crumbs = signal([]);
export function useCrumbs(list, deps) {
  useEffect(() => { crumbs.set(list); }, deps);  // eslint-disable-line
}
export const toasts = signal([]);
export function toast(text, bad = false) {
  const t = { id: Math.random(), text, bad };
  toasts.set([...toasts.get(), t]);
  setTimeout(() => toasts.set(toasts.get().filter((x) => x !== t)), bad ? 8000 : 3500);
}
export function Toasts() {
  const list = useSignal(toasts);
  return html`<div class="toasts" role="status" aria-live="polite">${list.map((t) => html`<div class=${'toast' + (t.bad ? ' bad' : '')}>${t.text}</div>`)}</div>`;
}

// ---- data ----
// GETs `path` (relative to /api/v1) and re-fetches when it changes or when
// reload() is called; `keep` keeps the old data while reloading (live views).
export function useApi(path) {
  const [state, setState] = useState({ data: null, error: null, loading: !!path });
  const [n, setN] = useState(0);
  useEffect(() => {
    if (!path) return undefined;
    let alive = true;
    setState((s) => ({ ...s, loading: true }));
    get(path).then((data) => alive && setState({ data, error: null, loading: false }),
      (error) => alive && setState((s) => ({ data: s.data, error, loading: false })));
    return () => { alive = false; };
  }, [path, n]);
  const reload = useCallback(() => setN((x) => x + 1), []);
  return { ...state, reload };
}

// An action button: disabled while in flight, a toast for what happened.
export function ActionButton({ run, label, done, children, ...rest }) {
  const [busy, setBusy] = useState(false);
  const click = async () => {
    setBusy(true);
    try {
      const r = await run();
      const text = typeof done === 'function' ? done(r) : done;
      if (text) toast(text);  // a function may return nothing (e.g. a declined confirm)
    } catch (e) {
      toast(e.message, true);
    } finally {
      setBusy(false);
    }
  };
  return html`<button disabled=${busy || rest.disabled} onClick=${click} ...${rest}>${busy ? '…' : ''}${children || label}</button>`;
}

// ---- table ----
// columns: [{key, label, num, value(row) -> sortable value, render(row), title}]
// Windowed: only the visible rows (plus a margin) are in the DOM, so a
// thousand trials sort and scroll without blocking the page.
const ROW = 30;
export function DataTable({ columns, rows, rowKey, sort, dir = 'desc', onSort, selected, onRowClick, hot, onHot,
  maxHeight = 520, empty = 'Nothing to show.', testid }) {
  const wrap = useRef(null);
  const [top, setTop] = useState(0);
  const sorted = useMemo(() => {
    const col = columns.find((c) => c.key === sort);
    if (!col) return rows;
    const val = col.value || ((r) => r[col.key]);
    const keyed = rows.map((r) => [val(r), r]);
    const sign = dir === 'asc' ? 1 : -1;
    keyed.sort((a, b) => {
      const x = a[0], y = b[0];
      const xn = x === undefined || x === null || (typeof x === 'number' && !isFinite(x));
      const yn = y === undefined || y === null || (typeof y === 'number' && !isFinite(y));
      if (xn || yn) return xn === yn ? 0 : xn ? 1 : -1;  // missing values last, either direction
      return (x < y ? -1 : x > y ? 1 : 0) * sign;
    });
    return keyed.map((k) => k[1]);
  }, [rows, columns, sort, dir]);
  const height = Math.min(maxHeight, (sorted.length + 1) * ROW + 2);
  const first = Math.max(0, Math.floor(top / ROW) - 10);
  const count = Math.ceil(height / ROW) + 20;
  const visible = sorted.slice(first, first + count);
  const header = (c) => {
    const on = c.key === sort;
    const click = c.sortable === false || !onSort ? null : () => onSort(c.key, on && dir === 'desc' ? 'asc' : 'desc');
    const key = (e) => { if (click && (e.key === 'Enter' || e.key === ' ')) { e.preventDefault(); click(); } };
    return html`<th class=${(c.num ? 'num ' : '') + (click ? 'sortable' : '')} title=${c.title || ''} tabindex=${click ? 0 : -1}
      aria-sort=${on ? (dir === 'asc' ? 'ascending' : 'descending') : 'none'} onClick=${click} onKeyDown=${key} data-key=${c.key}>
      ${c.label}${on ? html`<span class="arrow">${dir === 'asc' ? '▲' : '▼'}</span>` : null}</th>`;
  };
  if (!rows.length) return html`<${Empty}>${empty}<//>`;
  return html`<div class="tablewrap" ref=${wrap} style=${{ maxHeight: maxHeight + 'px' }} onScroll=${(e) => setTop(e.currentTarget.scrollTop)} data-testid=${testid}>
    <table><thead><tr>${columns.map(header)}</tr></thead>
    <tbody>
      ${first > 0 ? html`<tr style=${{ height: first * ROW + 'px' }} aria-hidden="true"></tr>` : null}
      ${visible.map((r) => {
        const k = rowKey(r);
        const cls = (selected && selected.has(k) ? 'selected ' : '') + (hot === k ? 'hot' : '');
        return html`<tr key=${k} class=${cls} data-row=${k} onClick=${onRowClick ? (e) => onRowClick(r, e) : null}
          onMouseEnter=${onHot ? () => onHot(k) : null} onMouseLeave=${onHot ? () => onHot(null) : null}>
          ${columns.map((c) => html`<td class=${(c.num ? 'num ' : '') + (c.mono ? 'mono' : '')}>${c.render ? c.render(r) : r[c.key]}</td>`)}</tr>`;
      })}
      ${first + count < sorted.length ? html`<tr style=${{ height: (sorted.length - first - count) * ROW + 'px' }} aria-hidden="true"></tr>` : null}
    </tbody></table></div>`;
}
