// A left-to-right graph (stage DAG, lineage) laid out by dagre and drawn as
// SVG: rounded boxes with a title, a status badge and small text, each
// linking to its page; drag to pan, wheel to zoom, double-click to fit.
import { useEffect, useMemo, useRef, useState } from 'preact/hooks';
import dagre from '@dagrejs/dagre';
import { html } from './ui.js';
import { navigate } from './router.js';

const W = 190, H = 58;

// A label's box for the layout (11 px text), so that dagre keeps labels of
// fanned-out edges apart instead of letting them run into each other.
const labelBox = (s) => ({ width: Math.ceil(String(s).length * 6.2) + 12, height: 18 });

// nodes: [{id, title, sub, sub2, status, right, tag, tip, href, current}]:
// `right` is small text top right when there is no status (a size); `tag`
// {text, kind} replaces sub2 with an overlay's word (the gc dry run: kind
// kept / go / released / mixed), drawn with a bar in its colour and, for
// go and released, a dashed border; `tip` adds lines to the hover text.
// edges: [{from, to, label, title}] (title: the label's full text, shown
// on hover).
export function Graph({ nodes, edges, height = 320, testid, rankdir = 'LR' }) {
  const layout = useMemo(() => {
    const g = new dagre.graphlib.Graph();
    g.setGraph({ rankdir, nodesep: 22, ranksep: 60, edgesep: 12, marginx: 16, marginy: 16 });
    g.setDefaultEdgeLabel(() => ({}));
    for (const n of nodes) g.setNode(n.id, { width: W, height: H });
    for (const e of edges) {
      if (!g.hasNode(e.from) || !g.hasNode(e.to)) continue;
      g.setEdge(e.from, e.to, e.label ? { label: e.label, title: e.title || '', labelpos: 'c', ...labelBox(e.label) } : { label: '', width: 0, height: 0 });
    }
    dagre.layout(g);
    return g;
  }, [nodes, edges, rankdir]);
  const gw = layout.graph().width || W, gh = layout.graph().height || H;
  const box = useRef(null);
  const [view, setView] = useState(null);  // {x, y, k}
  const fit = () => {
    const el = box.current;
    if (!el) return;
    const k = Math.min(1.2, el.clientWidth / gw, height / gh);
    setView({ k, x: (el.clientWidth - gw * k) / 2, y: (height - gh * k) / 2 });
  };
  useEffect(fit, [gw, gh, height]);
  const drag = useRef(null);
  const down = (e) => { if (e.button !== 0 || e.target.closest('a')) return; drag.current = { x: e.clientX, y: e.clientY, v: view }; e.currentTarget.setPointerCapture(e.pointerId); };
  const move = (e) => { const d = drag.current; if (d && d.v) setView({ ...d.v, x: d.v.x + e.clientX - d.x, y: d.v.y + e.clientY - d.y }); };
  const up = () => { drag.current = null; };
  const wheel = (e) => {
    if (!view) return;
    e.preventDefault();
    const r = box.current.getBoundingClientRect();
    const px = e.clientX - r.left, py = e.clientY - r.top;
    const k = Math.max(0.2, Math.min(3, view.k * (e.deltaY < 0 ? 1.15 : 1 / 1.15)));
    setView({ k, x: px - ((px - view.x) * k) / view.k, y: py - ((py - view.y) * k) / view.k });
  };
  const v = view || { x: 0, y: 0, k: 1 };
  const byId = Object.fromEntries(nodes.map((n) => [n.id, n]));
  return html`<div class="graph" ref=${box} style=${{ height: height + 'px' }} data-testid=${testid}
      onPointerDown=${down} onPointerMove=${move} onPointerUp=${up} onWheel=${wheel} onDblClick=${fit}
      title="drag to pan, wheel to zoom, double-click to fit">
    <svg width="100%" height=${height} role="img" aria-label="graph">
      <defs><marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" orient="auto-start-reverse">
        <path d="M 0 0 L 10 5 L 0 10 z" fill="currentColor" style="color: var(--muted)" /></marker></defs>
      <g transform=${`translate(${v.x},${v.y}) scale(${v.k})`}>
        ${layout.edges().map((e) => {
          const ed = layout.edge(e);
          const d = 'M' + ed.points.map((p) => `${p.x},${p.y}`).join(' L');
          return html`<g class="edge"><path d=${d} marker-end="url(#arrow)" />
            ${ed.label ? html`<rect class="elabel-bg" x=${ed.x - ed.width / 2 + 3} y=${ed.y - 8} width=${ed.width - 6} height="16" rx="3" />` : null}
            ${ed.label ? html`<text x=${ed.x} y=${ed.y} dy="0.35em" text-anchor="middle" class="elabel">${ed.label}${ed.title ? html`<title>${ed.title}</title>` : null}</text>` : null}</g>`;
        })}
        ${layout.nodes().map((id) => {
          const n = byId[id];
          const p = layout.node(id);
          if (!n || !p) return null;
          const tag = n.tag;
          const body = html`<g class=${'node' + (n.current ? ' current' : '') + (tag ? ' tag-' + tag.kind : '')} data-node=${n.id} data-status=${n.status || ''}
              data-tag=${tag ? tag.kind : null} transform=${`translate(${p.x - W / 2},${p.y - H / 2})`}>
            <rect width=${W} height=${H} rx="8" style=${n.status ? { fill: `var(--st-${n.status})` } : null} />
            ${tag ? html`<rect class="tag-bar" x="1" y="1" width="5" height=${H - 2} rx="2" />` : null}
            <text x="10" y="20" font-weight="600">${clip(n.title, n.status || n.right ? 20 : 26)}</text>
            ${n.status ? html`<text x=${W - 8} y="20" text-anchor="end" class="sub" style=${{ fill: `var(--st-${n.status}-fg)` }}>${n.status}</text>`
              : n.right ? html`<text x=${W - 8} y="20" text-anchor="end" class="sub">${n.right}</text>` : null}
            <text x="10" y="38" class="sub">${clip(n.sub || '', 30)}</text>
            ${tag ? html`<text x="10" y="52" class="sub tag-text">${clip(tag.text, 30)}</text>`
              : html`<text x="10" y="52" class="sub">${clip(n.sub2 || '', 30)}</text>`}
            <title>${[[n.title, n.status, n.right, n.sub, n.sub2].filter(Boolean).join(' · '), ...(n.tip || [])].join('\n')}</title></g>`;
          return n.href ? html`<a href=${n.href} onClick=${(e) => { if (!e.ctrlKey && !e.metaKey) { e.preventDefault(); navigate(n.href); } }}>${body}</a>` : body;
        })}
      </g></svg></div>`;
}

function clip(s, n) { s = String(s); return s.length > n ? s.slice(0, n - 1) + '…' : s; }
