// Line charts on uPlot: x is the epoch (never time), one series per trial
// or start, legend and crosshair values from uPlot, drag to zoom and
// double-click to reset. New points keep the zoom (setData without
// rescaling once the person has zoomed).
import { useEffect, useRef, useState } from 'preact/hooks';
import uPlot from 'uplot';
import { html } from './ui.js';

// series: [{label, points: [[x, y], ...], color, width, dash, band: [[x, lo, hi]...], pointSize, pointFill}]
// (a series of one or two points shows them: pointSize px, filled with its colour when pointFill)
// hot: the label to highlight (hover elsewhere), onHot(label|null)
// legend: false hides uPlot's legend (the caller draws its own).
export function LineChart({ series, xLabel = 'epoch', yLabel, log = false, height = 300, hot, onHot, testid, lines = [], legend = true }) {
  const box = useRef(null);
  const plot = useRef(null);
  const zoomed = useRef(false);
  const onHotRef = useRef(onHot);
  onHotRef.current = onHot;
  const latest = useRef(null);
  latest.current = { series, lines };
  // Align every series on the union of x values (uPlot wants one x array).
  const xs = [...new Set(series.flatMap((s) => s.points.map((p) => p[0])).concat(lines.flatMap((l) => l.points ? l.points.map((p) => p[0]) : [])))].sort((a, b) => a - b);
  const index = new Map(xs.map((x, i) => [x, i]));
  const column = (pts) => { const c = new Array(xs.length).fill(null); for (const [x, y] of pts) c[index.get(x)] = (log && !(y > 0)) ? null : y; return c; };
  const data = [xs, ...series.map((s) => column(s.points))];
  const extras = series.some((s) => s.band && s.band.length) || lines.some((l) => l.y !== undefined);
  // Axis and text colours come from the theme when the chart is made: make
  // it again when the system switches between light and dark.
  const [dark, setDark] = useState(() => matchMedia('(prefers-color-scheme: dark)').matches);
  useEffect(() => {
    const m = matchMedia('(prefers-color-scheme: dark)');
    const change = () => setDark(m.matches);
    m.addEventListener('change', change);
    return () => m.removeEventListener('change', change);
  }, []);
  const shape = `${dark}|` + series.map((s) => `${s.label}|${s.color}|${s.width}|${s.dash}|${s.pointSize}|${s.pointFill}`).join(',') + `|${log}|${yLabel}|${xLabel}|${height}|${extras}|${xs.every(Number.isInteger)}|${legend}`;

  useEffect(() => {
    const el = box.current;
    if (!el) return undefined;
    // Canvas text does not follow CSS: take the theme's colour now.
    const fg = getComputedStyle(el).color || '#777';
    // 'currentColor' (a canvas cannot resolve it) is the theme's text colour.
    const paint = (c) => (c === 'currentColor' ? fg : c);
    const opts = {
      width: Math.max(320, el.clientWidth),
      height,
      // One epoch alone: uPlot would span 0..100 around it; centre it instead.
      scales: { x: { time: false, range: (u, min, max) => (u.data[0].length === 1 ? [u.data[0][0] - 0.5, u.data[0][0] + 0.5] : [min, max]) }, y: { distr: log ? 3 : 1, range: log || !extras ? undefined : rangeWith(latest) } },
      axes: [{ label: xLabel, stroke: fg, grid: { stroke: 'rgba(128,128,128,.18)' }, incrs: xs.every(Number.isInteger) ? INT_STEPS : undefined },
        { label: yLabel, stroke: fg, grid: { stroke: 'rgba(128,128,128,.18)' }, size: 60 }],
      cursor: { drag: { x: true, y: false }, focus: { prox: 16 } },
      focus: { alpha: 0.25 },
      legend: { show: legend, live: true },
      series: [{ label: xLabel }, ...series.map((s) => ({
        label: s.label, stroke: paint(s.color), width: s.width || 1.5, dash: s.dash, spanGaps: true,
        points: { show: s.points.length < 3, size: s.pointSize || 5, ...(s.pointFill ? { fill: paint(s.color) } : {}) }, fill: s.fill,
      }))],
      hooks: {
        setSelect: [() => { zoomed.current = true; }],
        setSeries: [(u, i) => { if (onHotRef.current) onHotRef.current(i == null ? null : series[i - 1] && series[i - 1].label); }],
        drawAxes: [(u) => drawBands(u, latest.current.series)],
        draw: [(u) => drawExtras(u, latest.current.lines.map((l) => ({ ...l, color: paint(l.color) })))],
      },
    };
    const u = new uPlot(opts, data, el);
    plot.current = u;
    u.over.addEventListener('dblclick', () => { zoomed.current = false; });
    const ro = new ResizeObserver(() => u.setSize({ width: Math.max(320, el.clientWidth), height }));
    ro.observe(el);
    return () => { ro.disconnect(); u.destroy(); plot.current = null; };
  }, [shape]);
  useEffect(() => {
    if (plot.current) plot.current.setData(data, !zoomed.current);
  }, [JSON.stringify(data)]);
  useEffect(() => {
    const u = plot.current;
    if (!u) return;
    const i = hot == null ? null : series.findIndex((s) => s.label === hot);
    u.setSeries(i == null || i < 0 ? null : i + 1, { focus: true }, false);
  }, [hot, shape]);
  return html`<div ref=${box} data-testid=${testid} class="chart"></div>`;
}

// Whole epochs: no tick at 0.5.
const INT_STEPS = [1, 2, 5, 10, 20, 25, 50, 100, 200, 250, 500, 1000, 2000, 5000, 10000];

// The y range also covers ± sd bands and target lines (uPlot sees only the
// series' own values), padded a little.
function rangeWith(latest) {
  return (u, min, max) => {
    const { series, lines } = latest.current;
    const extra = [];
    for (const s of series) for (const b of s.band || []) extra.push(b[1], b[2]);
    for (const l of lines) if (l.y !== undefined) extra.push(l.y);
    if (!extra.length) return [min ?? 0, max ?? 1];
    const lo = Math.min(min ?? Infinity, ...extra.filter(isFinite)), hi = Math.max(max ?? -Infinity, ...extra.filter(isFinite));
    if (!isFinite(lo) || !isFinite(hi)) return [min, max];
    const pad = (hi - lo || Math.abs(hi) || 1) * 0.05;
    return [lo - pad, hi + pad];
  };
}

// A series' band ([[x, lo, hi], ...], e.g. mean ± sd over seeds) as a
// translucent area under the lines.
function drawBands(u, series) {
  const ctx = u.ctx;
  for (const s of series) {
    const b = (s.band || []).filter((p) => isFinite(p[1]) && isFinite(p[2]));
    if (b.length < 2) continue;
    ctx.save();
    ctx.beginPath();
    ctx.rect(u.bbox.left, u.bbox.top, u.bbox.width, u.bbox.height);
    ctx.clip();
    ctx.fillStyle = s.color || '#777';
    ctx.globalAlpha = s.bandAlpha || 0.16;
    ctx.beginPath();
    b.forEach(([x, , hi], i) => { const px = u.valToPos(x, 'x', true), py = u.valToPos(hi, 'y', true); if (i) ctx.lineTo(px, py); else ctx.moveTo(px, py); });
    for (let i = b.length - 1; i >= 0; i--) ctx.lineTo(u.valToPos(b[i][0], 'x', true), u.valToPos(b[i][1], 'y', true));
    ctx.closePath();
    ctx.fill();
    ctx.restore();
  }
}

// Horizontal target lines and point markers drawn on the canvas.
function drawExtras(u, lines) {
  const ctx = u.ctx;
  for (const l of lines) {
    ctx.save();
    ctx.strokeStyle = l.color || '#777';
    ctx.fillStyle = l.color || '#777';
    ctx.lineWidth = 1.5 * devicePixelRatio;
    ctx.textAlign = 'left';
    ctx.textBaseline = 'alphabetic';
    if (l.y !== undefined) {
      const y = u.valToPos(l.y, 'y', true);
      ctx.setLineDash([6 * devicePixelRatio, 4 * devicePixelRatio]);
      ctx.beginPath();
      ctx.moveTo(u.bbox.left, y);
      ctx.lineTo(u.bbox.left + u.bbox.width, y);
      ctx.stroke();
      if (l.label) { ctx.font = `${11 * devicePixelRatio}px system-ui`; ctx.fillText(l.label, u.bbox.left + 6, y - 4 * devicePixelRatio); }
    }
    if (l.markers) {
      for (const [x, y] of l.markers) {
        const px = u.valToPos(x, 'x', true), py = u.valToPos(y, 'y', true);
        ctx.beginPath();
        ctx.moveTo(px, py - 6 * devicePixelRatio);
        ctx.lineTo(px + 5 * devicePixelRatio, py + 4 * devicePixelRatio);
        ctx.lineTo(px - 5 * devicePixelRatio, py + 4 * devicePixelRatio);
        ctx.closePath();
        ctx.fill();
      }
    }
    ctx.restore();
  }
}
