// Hand-written SVG plots of a tune stage's trials: parallel coordinates
// (one axis per hyperparameter plus the objective, log and categorical axes,
// brushing) and a one-parameter scatter. Built for thousands of trials: the
// lines and points are one string of SVG set at once (no per-trial
// components), and hovering draws one extra element instead of restyling
// every line.
import { useLayoutEffect, useMemo, useRef, useState } from 'preact/hooks';
import { html } from './ui.js';

// ---- axes and scales ----
// A category's identity (values may be numbers, strings, lists or objects).
const ck = (v) => (v !== null && typeof v === 'object' ? JSON.stringify(v) : String(v));

// axis: {key, label, kind: 'linear' | 'log' | 'cat', lo, hi, cats, index, get(row)}
// spec: the search-space entry ({type, low, high, log, values}) or null.
export function buildAxis({ key, label, spec, get, rows, pad = 0 }) {
  const values = [];
  for (const r of rows) {
    const v = get(r);
    if (v !== undefined && v !== null) values.push(v);
  }
  const categorical = (spec && spec.type === 'categorical') || values.some((v) => typeof v !== 'number');
  if (categorical) {
    const cats = spec && Array.isArray(spec.values) ? [...spec.values] : [];
    const index = new Map(cats.map((c, i) => [ck(c), i]));
    for (const v of values) {
      if (!index.has(ck(v))) { index.set(ck(v), cats.length); cats.push(v); }
    }
    return { key, label, kind: 'cat', cats, index, get };
  }
  let lo = Infinity, hi = -Infinity;
  for (const v of values) { if (isFinite(v)) { if (v < lo) lo = v; if (v > hi) hi = v; } }
  if (spec && typeof spec.low === 'number') lo = Math.min(lo, spec.low);
  if (spec && typeof spec.high === 'number') hi = Math.max(hi, spec.high);
  const log = !!(spec && spec.log) && lo > 0;
  if (!(lo <= hi)) { lo = 0; hi = 1; }
  if (lo === hi) {
    if (log) { lo /= 2; hi *= 2; } else { const d = Math.abs(lo) * 0.1 || 1; lo -= d; hi += d; }
  } else if (pad && !log) {
    const d = (hi - lo) * pad;
    lo -= d; hi += d;
  }
  return { key, label, kind: log ? 'log' : 'linear', lo, hi, get };
}

// Where v lies on the axis, 0 (bottom/left) to 1, or null when it has no place.
export function frac(a, v) {
  if (v === undefined || v === null) return null;
  if (a.kind === 'cat') {
    const i = a.index.get(ck(v));
    return i === undefined ? null : (i + 0.5) / a.cats.length;
  }
  if (typeof v !== 'number' || !isFinite(v)) return null;
  if (a.kind === 'log') {
    if (!(v > 0)) return null;
    return (Math.log(v) - Math.log(a.lo)) / (Math.log(a.hi) - Math.log(a.lo));
  }
  return (v - a.lo) / (a.hi - a.lo);
}

function unfrac(a, f) {
  if (a.kind === 'log') return Math.exp(Math.log(a.lo) + f * (Math.log(a.hi) - Math.log(a.lo)));
  return a.lo + f * (a.hi - a.lo);
}

const round = (v) => Number(v.toPrecision(4));

export function tickLabel(v) {
  if (typeof v !== 'number') return String(v);
  if (v === 0) return '0';
  const m = Math.abs(v);
  if (m >= 1e5 || m < 1e-2) {
    const e = v.toExponential(1).replace('.0e', 'e');
    return e.replace('e+', 'e');
  }
  return String(Number(v.toPrecision(3)));
}

export function ticks(a) {
  if (a.kind === 'cat') return a.cats.map((c) => ({ v: c, label: ck(c) }));
  if (a.kind === 'log') {
    let out = [];
    for (const mult of [[1], [1, 3], [1, 2, 5]]) {
      out = [];
      for (let e = Math.floor(Math.log10(a.lo)); e <= Math.ceil(Math.log10(a.hi)); e++) {
        for (const m of mult) {
          const v = m * Math.pow(10, e);
          if (v >= a.lo * 0.999 && v <= a.hi * 1.001) out.push(v);
        }
      }
      if (out.length >= 3) break;
    }
    if (out.length < 2) out = [a.lo, a.hi];
    return out.map((v) => ({ v, label: tickLabel(round(v)) }));
  }
  const span = a.hi - a.lo;
  const raw = span / 5;
  const p = Math.pow(10, Math.floor(Math.log10(raw)));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * p).find((s) => span / s <= 6) || 10 * p;
  const out = [];
  for (let v = Math.ceil(a.lo / step) * step; v <= a.hi + step * 1e-9; v += step) out.push(Math.abs(v) < step * 1e-9 ? 0 : v);
  return out.map((v) => ({ v, label: tickLabel(round(v)) }));
}

// A brush is {axisKey: [lo, hi]} (numbers, or the first and last category).
// Returns row -> bool, or null when no brush applies to these axes.
export function brushTest(axes, brush) {
  const parts = [];
  for (const a of axes) {
    const b = brush && brush[a.key];
    if (!b) continue;
    if (a.kind === 'cat') {
      const lo = a.index.get(ck(b[0])), hi = a.index.get(ck(b[1]));
      if (lo === undefined || hi === undefined) continue;
      parts.push((r) => { const i = a.index.get(ck(a.get(r))); return i !== undefined && i >= lo && i <= hi; });
    } else {
      const lo = Number(b[0]), hi = Number(b[1]);
      if (!isFinite(lo) || !isFinite(hi)) continue;
      parts.push((r) => { const v = a.get(r); return typeof v === 'number' && v >= lo && v <= hi; });
    }
  }
  if (!parts.length) return null;
  return (r) => parts.every((p) => p(r));
}

// "lr:0.001:0.01;batch_size:32:64" <-> {lr: [0.001, 0.01], batch_size: ['32', '64']}
export function parseBrush(text) {
  const out = {};
  for (const piece of (text || '').split(';')) {
    const [k, lo, hi] = piece.split(':').map((s) => decodeURIComponent(s || ''));
    if (!k || lo === undefined || hi === undefined) continue;
    const nlo = Number(lo), nhi = Number(hi);
    out[k] = lo !== '' && hi !== '' && isFinite(nlo) && isFinite(nhi) ? [nlo, nhi] : [lo, hi];
  }
  return out;
}
export function formatBrush(brush) {
  const e = (s) => encodeURIComponent(String(s)).replace(/%2C/gi, ',');
  return Object.entries(brush || {}).map(([k, [lo, hi]]) => `${e(k)}:${e(lo)}:${e(hi)}`).join(';');
}

// ---- colours ----
// viridis between 0.1 and 0.9 (readable on light and dark backgrounds;
// colour-blind safe and ordered by lightness).
const RAMP = ['#482475', '#414487', '#355f8d', '#2a788e', '#21918c', '#22a884', '#44bf70', '#7ad151', '#bddf26'];
const RGB = RAMP.map((c) => [1, 3, 5].map((i) => parseInt(c.slice(i, i + 2), 16)));
export function ramp(t) {
  if (!(t >= 0)) t = 0;
  if (t > 1) t = 1;
  const x = t * (RGB.length - 1), i = Math.min(RGB.length - 2, Math.floor(x)), f = x - i;
  const c = RGB[i].map((v, j) => Math.round(v + (RGB[i + 1][j] - v) * f));
  return '#' + c.map((v) => v.toString(16).padStart(2, '0')).join('');
}

export const STATUS_COLOR = {
  succeeded: '#009E73', running: '#0072B2', pending: '#888888', pruned: '#E69F00', failed: '#D55E00',
  diverged: '#CC79A7', cancelled: '#888888', interrupted: '#B8860B', skipped: '#888888',
};

// Width of an element, following resizes; 0 until measured (before the
// first paint), so that nothing is drawn twice.
function useWidth(ref, fallback) {
  const [w, setW] = useState(0);
  useLayoutEffect(() => {
    const el = ref.current;
    if (!el) return undefined;
    setW(el.clientWidth || fallback);
    const ro = new ResizeObserver(() => setW(el.clientWidth || fallback));
    ro.observe(el);
    return () => ro.disconnect();
  }, []);
  return w;
}

const keyOf = (e) => {
  const t = e.target && e.target.getAttribute ? e.target.getAttribute('data-k') : null;
  return t === null ? null : Number(t);
};

// ---- parallel coordinates ----
// axes: from buildAxis; rows: items with a numeric key (rowKey); colorBy:
// {get(row), lo, hi, better: 'max'|'min', label}; brush/onBrush as above;
// hot/onHot: the hovered key; onPick(key): a click on a line. `only`: the
// rows to draw (a subset of rows, e.g. after a text filter), or null for
// all: the lines' geometry is computed once for `rows`, so filtering only
// chooses among them.
export function ParallelCoordinates({ axes, rows, only = null, rowKey, colorBy, brush, onBrush, hot, onHot, onPick, title, height = 300, testid }) {
  const wrap = useRef(null);
  const svg = useRef(null);
  const width = useWidth(wrap, 600);
  const M = { l: 50, r: 96, t: 34, b: 14 };
  const top = M.t, bottom = height - M.b;
  const ypos = (a, v) => { const f = frac(a, v); return f === null ? null : bottom - f * (bottom - top); };
  const xs = useMemo(() => axes.map((_, i) => (axes.length === 1 ? (width - M.r + M.l) / 2
    : M.l + (i * (width - M.l - M.r)) / (axes.length - 1))), [axes, width]);
  const color = (r) => {
    const v = colorBy.get(r);
    if (typeof v !== 'number' || !isFinite(v)) return '#999999';
    let t = colorBy.hi > colorBy.lo ? (v - colorBy.lo) / (colorBy.hi - colorBy.lo) : 1;
    if (colorBy.better === 'min') t = 1 - t;
    return ramp(t);
  };
  // One path per row, computed when the rows, axes or size change.
  const paths = useMemo(() => (!width ? [] : rows.map((r) => {
    let d = '';
    let pen = false;
    for (let i = 0; i < axes.length; i++) {
      const y = ypos(axes[i], axes[i].get(r));
      if (y === null) { pen = false; continue; }
      d += (pen ? 'L' : 'M') + xs[i].toFixed(1) + ',' + y.toFixed(1);
      pen = true;
    }
    return { k: rowKey(r), d, c: color(r), r };
  })), [rows, axes, xs, height, colorBy]);
  const byKey = useMemo(() => new Map(paths.map((p) => [p.k, p])), [paths]);

  // A drag in progress previews its brush locally; the URL changes on release.
  const [drag, setDrag] = useState(null);
  const dragRef = useRef(null);
  const effective = useMemo(() => {
    if (!drag) return brush;
    const next = { ...brush };
    const range = rangeOf(axes[drag.i], drag.y0, drag.y1);
    if (range && Math.abs(drag.y1 - drag.y0) >= 3) next[axes[drag.i].key] = range;
    return next;
  }, [brush, drag, axes]);
  const test = useMemo(() => brushTest(axes, effective), [axes, effective]);
  const inside = useMemo(() => (only ? new Set(only.map(rowKey)) : null), [only]);
  const { dim, live, shown, drawn } = useMemo(() => {
    let dim = '', live = '', shown = 0, drawn = 0;
    for (const p of paths) {
      if (!p.d || (inside && !inside.has(p.k))) continue;
      drawn++;
      if (test && !test(p.r)) dim += `<path data-k="${p.k}" d="${p.d}"/>`;
      else { live += `<path data-k="${p.k}" d="${p.d}" stroke="${p.c}"/>`; shown++; }
    }
    return { dim, live, shown, drawn };
  }, [paths, test, inside]);

  function rangeOf(a, y0, y1) {
    const ya = Math.max(y0, y1), yb = Math.min(y0, y1);
    if (a.kind === 'cat') {
      const inside = a.cats.filter((c) => { const y = ypos(a, c); return y >= yb && y <= ya; });
      return inside.length ? [inside[0], inside[inside.length - 1]] : null;
    }
    const fa = (bottom - ya) / (bottom - top), fb = (bottom - yb) / (bottom - top);
    return [round(unfrac(a, Math.max(0, fa))), round(unfrac(a, Math.min(1, fb)))];
  }
  function brushBox(a, b) {
    if (!b) return null;
    if (a.kind === 'cat') {
      const half = (bottom - top) / a.cats.length / 2;
      const y0 = ypos(a, b[0]), y1 = ypos(a, b[1]);
      if (y0 === null || y1 === null) return null;
      return [Math.min(y0, y1) - half + 2, Math.max(y0, y1) + half - 2];
    }
    const lo = Math.max(Number(b[0]), a.lo), hi = Math.min(Number(b[1]), a.hi);
    if (!(lo <= hi)) return null;
    const y0 = ypos(a, hi), y1 = ypos(a, lo);
    return y0 === null || y1 === null ? null : [y0, y1];
  }
  const yOf = (e) => Math.max(top, Math.min(bottom, e.clientY - svg.current.getBoundingClientRect().top));
  const down = (i) => (e) => {
    if (e.button !== 0) return;
    e.preventDefault();
    e.currentTarget.setPointerCapture(e.pointerId);
    const y = yOf(e);
    dragRef.current = { i, y0: y, y1: y };
    setDrag(dragRef.current);
  };
  const move = (e) => {
    if (!dragRef.current) return;
    dragRef.current = { ...dragRef.current, y1: yOf(e) };
    setDrag(dragRef.current);
  };
  const up = () => {
    const d = dragRef.current;
    dragRef.current = null;
    setDrag(null);
    if (!d) return;
    const a = axes[d.i];
    const next = { ...brush };
    if (Math.abs(d.y1 - d.y0) < 3) {
      const box = brushBox(a, brush[a.key]);
      if (box && d.y0 >= box[0] && d.y0 <= box[1]) return;  // a click inside the brush keeps it
      if (!brush[a.key]) return;
      delete next[a.key];
    } else {
      const r = rangeOf(a, d.y0, d.y1);
      if (r) next[a.key] = r; else delete next[a.key];
    }
    onBrush(next);
  };
  const keyClear = (a) => (e) => {
    if ((e.key === 'Delete' || e.key === 'Backspace' || e.key === 'Escape') && brush[a.key]) {
      e.preventDefault();
      const next = { ...brush };
      delete next[a.key];
      onBrush(next);
    }
  };

  const hotPath = hot === null || hot === undefined ? null : byKey.get(hot);
  const legendX = width - M.r + 50;
  const gid = 'pcramp' + (testid || '');
  if (!width) return html`<div class="pc" ref=${wrap} data-testid=${testid} style=${{ height: height + 22 + 'px' }}></div>`;
  return html`<div class="pc" ref=${wrap} data-testid=${testid}>
    <svg ref=${svg} width=${width} height=${height} role="img" aria-label=${`parallel coordinates of ${drawn} trials${title ? ': ' + title : ''}`}>
      <defs><linearGradient id=${gid} x1="0" y1="1" x2="0" y2="0">
        ${RAMP.map((c, i) => html`<stop offset=${i / (RAMP.length - 1)} stop-color=${colorBy.better === 'min' ? RAMP[RAMP.length - 1 - i] : c} />`)}
      </linearGradient></defs>
      <g class="pc-dim" dangerouslySetInnerHTML=${{ __html: dim }}></g>
      <g class="pc-lines" stroke-opacity=${drawn > 300 ? 0.45 : drawn > 60 ? 0.7 : 0.9}
        onMouseOver=${(e) => onHot && onHot(keyOf(e))} onMouseOut=${() => onHot && onHot(null)}
        onClick=${(e) => { const k = keyOf(e); if (k !== null && onPick) onPick(k); }}
        dangerouslySetInnerHTML=${{ __html: live }}></g>
      ${hotPath && hotPath.d ? html`<path class="pc-hot" d=${hotPath.d} stroke=${hotPath.c} />` : null}
      ${axes.map((a, i) => {
        const box = brushBox(a, effective[a.key]);
        return box ? html`<rect class="pc-brush" x=${xs[i] - 7} y=${box[0]} width="14" height=${Math.max(2, box[1] - box[0])} rx="2" />` : null;
      })}
      ${axes.map((a, i) => {
        // On top of the lines and brushes, with a halo of the card's colour;
        // the last axis (the objective) labels its right side, where no line runs.
        const right = i === axes.length - 1 && axes.length > 1;
        return html`<g class="pc-axis" transform=${`translate(${xs[i].toFixed(1)},0)`}>
        <line y1=${top} y2=${bottom} />
        ${ticks(a).map((t) => { const y = ypos(a, t.v); return y === null ? null : html`<g transform=${`translate(0,${y.toFixed(1)})`}>
          <line x1=${right ? 4 : -4} x2="0" /><text x=${right ? 6 : -6} dy="0.32em" text-anchor=${right ? 'start' : 'end'}>${t.label}</text></g>`; })}
        <text class="pc-name" y=${top - 14} text-anchor="middle">${a.label}${a.kind === 'log' ? ' (log)' : ''}</text>
      </g>`;
      })}
      ${axes.map((a, i) => html`<rect class="pc-hit" x=${xs[i] - 13} y=${top - 4} width="26" height=${bottom - top + 8}
        tabindex="0" role="slider" aria-label=${`${a.label}: drag to filter${brush[a.key] ? ` (now ${brush[a.key].join(' to ')}; Delete clears)` : ''}`}
        data-axis=${a.key} onPointerDown=${down(i)} onPointerMove=${move} onPointerUp=${up} onPointerCancel=${up} onKeyDown=${keyClear(a)}>
        <title>${a.label}: drag along the axis to filter; click outside the brush to clear it</title></rect>`)}
      <g class="pc-legend" transform=${`translate(${legendX},0)`}>
        <rect x="-5" y=${top} width="10" height=${bottom - top} fill=${`url(#${gid})`} rx="2" />
        <text x="9" y=${top + 4} dy="0.32em">${tickLabel(round(colorBy.hi))}</text>
        <text x="9" y=${bottom - 4} dy="0.32em">${tickLabel(round(colorBy.lo))}</text>
        <text x="9" y=${(top + bottom) / 2} dy="0.32em">${colorBy.better === 'min' ? 'better ↓' : 'better ↑'}</text>
      </g>
    </svg>
    <div class="muted small pc-note">${test ? `${shown} of ${drawn} trials inside the brushes` : 'Drag along an axis to filter the trials; click outside a brush to clear it.'}</div>
  </div>`;
}

// ---- scatter: one hyperparameter against the objective ----
export function Scatter({ xAxis, yAxis, rows, rowKey, status, label, hot, onHot, onPick, height = 260, testid }) {
  const wrap = useRef(null);
  const width = useWidth(wrap, 600);
  const M = { l: 64, r: 20, t: 16, b: 40 };
  const left = M.l, right = width - M.r, top = M.t, bottom = height - M.b;
  const px = (r) => {
    const f = frac(xAxis, xAxis.get(r));
    if (f === null) return null;
    let x = left + f * (right - left);
    if (xAxis.kind === 'cat') {  // spread the points of one category a little
      const k = Number(rowKey(r));
      const j = (((k * 9301 + 49297) % 233280) / 233280) - 0.5;
      x += j * Math.min(40, ((right - left) / xAxis.cats.length) * 0.4);
    }
    return x;
  };
  const py = (r) => { const f = frac(yAxis, yAxis.get(r)); return f === null ? null : bottom - f * (bottom - top); };
  const { points, missing, byKey } = useMemo(() => {
    let s = '';
    let missing = 0;
    const byKey = new Map();
    if (!width) return { points: s, missing, byKey };
    for (const r of rows) {
      const x = px(r), y = py(r);
      if (x === null || y === null) { missing++; continue; }
      const st = status(r);
      const c = STATUS_COLOR[st] || '#888888';
      const k = rowKey(r);
      byKey.set(k, [x, y, c, r]);
      if (st === 'succeeded') s += `<circle data-k="${k}" cx="${x.toFixed(1)}" cy="${y.toFixed(1)}" r="4" fill="${c}"/>`;
      else if (st === 'pruned') s += `<circle data-k="${k}" cx="${x.toFixed(1)}" cy="${y.toFixed(1)}" r="3.5" fill="none" stroke="${c}" stroke-width="1.6"/>`;
      else s += `<rect data-k="${k}" x="${(x - 3.5).toFixed(1)}" y="${(y - 3.5).toFixed(1)}" width="7" height="7" fill="${c}"/>`;
    }
    return { points: s, missing, byKey };
  }, [rows, xAxis, yAxis, width, height]);
  const statuses = useMemo(() => {
    const order = Object.keys(STATUS_COLOR);
    return [...new Set(rows.map(status))].sort((a, b) => (order.indexOf(a) + 1 || 99) - (order.indexOf(b) + 1 || 99));
  }, [rows]);
  const h = hot === null || hot === undefined ? null : byKey.get(hot);
  const yt = ticks(yAxis), xt = ticks(xAxis);
  if (!width) return html`<div class="pc scatter" ref=${wrap} data-testid=${testid} style=${{ height: height + 24 + 'px' }}></div>`;
  return html`<div class="pc scatter" ref=${wrap} data-testid=${testid}>
    <svg width=${width} height=${height} role="img" aria-label=${`${xAxis.label} against ${yAxis.label} for ${rows.length} trials`}>
      ${yt.map((t) => { const f = frac(yAxis, t.v); if (f === null) return null; const y = bottom - f * (bottom - top);
        return html`<g class="pc-grid"><line x1=${left} x2=${right} y1=${y} y2=${y} /><text x=${left - 6} y=${y} dy="0.32em" text-anchor="end">${t.label}</text></g>`; })}
      ${xt.map((t) => { const f = frac(xAxis, t.v); if (f === null) return null; const x = left + f * (right - left);
        return html`<g class="pc-grid"><line x1=${x} x2=${x} y1=${top} y2=${bottom} /><text x=${x} y=${bottom + 15} text-anchor="middle">${t.label}</text></g>`; })}
      <line class="pc-frame" x1=${left} x2=${right} y1=${bottom} y2=${bottom} />
      <line class="pc-frame" x1=${left} x2=${left} y1=${top} y2=${bottom} />
      <text class="pc-name" x=${(left + right) / 2} y=${height - 4} text-anchor="middle">${xAxis.label}${xAxis.kind === 'log' ? ' (log scale)' : ''}</text>
      <text class="pc-name" transform=${`translate(14,${(top + bottom) / 2}) rotate(-90)`} text-anchor="middle">${yAxis.label}</text>
      <g class="sc-points" onMouseOver=${(e) => onHot && onHot(keyOf(e))} onMouseOut=${() => onHot && onHot(null)}
        onClick=${(e) => { const k = keyOf(e); if (k !== null && onPick) onPick(k); }} dangerouslySetInnerHTML=${{ __html: points }}></g>
      ${h ? html`<circle class="sc-hot" cx=${h[0]} cy=${h[1]} r="8" stroke=${h[2]} />
        <text class="sc-tip" x=${h[0] > (left + right) / 2 ? h[0] - 12 : h[0] + 12} y=${h[1] < top + 14 ? h[1] + 16 : h[1] - 10}
          text-anchor=${h[0] > (left + right) / 2 ? 'end' : 'start'}>${label(h[3])}</text>` : null}
    </svg>
    <div class="row small muted sc-legend">
      ${statuses.map((s) => html`<span class="row" style="gap:4px"><svg width="10" height="10" aria-hidden="true">${
        s === 'succeeded' ? html`<circle cx="5" cy="5" r="4" fill=${STATUS_COLOR[s]} />`
        : s === 'pruned' ? html`<circle cx="5" cy="5" r="3.5" fill="none" stroke=${STATUS_COLOR[s]} stroke-width="1.6" />`
        : html`<rect x="1.5" y="1.5" width="7" height="7" fill=${STATUS_COLOR[s] || '#888'} />`}</svg>${s}</span>`)}
      ${missing ? html`<span>· ${missing} trial${missing === 1 ? '' : 's'} without ${yAxis.label} or ${xAxis.label} not drawn</span>` : null}
    </div>
  </div>`;
}
