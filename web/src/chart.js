// Line charts on uPlot: x is the epoch (never time), one series per trial
// or start, legend and crosshair values from uPlot, drag to zoom and
// double-click to reset. New points keep the zoom (setData without
// rescaling once the person has zoomed).
import { useEffect, useRef } from 'preact/hooks';
import uPlot from 'uplot';
import { html } from './ui.js';

// series: [{label, points: [[x, y], ...], color, width, dash, band: [[x, lo, hi]...]}]
// hot: the label to highlight (hover elsewhere), onHot(label|null)
export function LineChart({ series, xLabel = 'epoch', yLabel, log = false, height = 300, hot, onHot, testid, lines = [] }) {
  const box = useRef(null);
  const plot = useRef(null);
  const zoomed = useRef(false);
  const onHotRef = useRef(onHot);
  onHotRef.current = onHot;
  // Align every series on the union of x values (uPlot wants one x array).
  const xs = [...new Set(series.flatMap((s) => s.points.map((p) => p[0])).concat(lines.flatMap((l) => l.points ? l.points.map((p) => p[0]) : [])))].sort((a, b) => a - b);
  const index = new Map(xs.map((x, i) => [x, i]));
  const column = (pts) => { const c = new Array(xs.length).fill(null); for (const [x, y] of pts) c[index.get(x)] = (log && !(y > 0)) ? null : y; return c; };
  const data = [xs, ...series.map((s) => column(s.points))];
  const shape = series.map((s) => `${s.label}|${s.color}|${s.width}|${s.dash}`).join(',') + `|${log}|${yLabel}|${xLabel}|${height}`;

  useEffect(() => {
    const el = box.current;
    if (!el) return undefined;
    const opts = {
      width: Math.max(320, el.clientWidth),
      height,
      scales: { x: { time: false }, y: { distr: log ? 3 : 1 } },
      axes: [{ label: xLabel, stroke: 'currentColor', grid: { stroke: 'rgba(128,128,128,.18)' } },
        { label: yLabel, stroke: 'currentColor', grid: { stroke: 'rgba(128,128,128,.18)' }, size: 60 }],
      cursor: { drag: { x: true, y: false }, focus: { prox: 16 } },
      focus: { alpha: 0.25 },
      legend: { live: true },
      series: [{ label: xLabel }, ...series.map((s) => ({
        label: s.label, stroke: s.color, width: s.width || 1.5, dash: s.dash, spanGaps: true,
        points: { show: s.points.length < 3, size: 5 }, fill: s.fill,
      }))],
      hooks: {
        setSelect: [() => { zoomed.current = true; }],
        setSeries: [(u, i) => { if (onHotRef.current) onHotRef.current(i == null ? null : series[i - 1] && series[i - 1].label); }],
        draw: [(u) => drawExtras(u, lines)],
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

// Horizontal target lines and point markers drawn on the canvas.
function drawExtras(u, lines) {
  const ctx = u.ctx;
  for (const l of lines) {
    ctx.save();
    ctx.strokeStyle = l.color || '#777';
    ctx.fillStyle = l.color || '#777';
    ctx.lineWidth = 1.5 * devicePixelRatio;
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
