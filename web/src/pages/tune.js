// A tune stage: every trial's history from one request
// (GET /runs/{run}/stages/{stage}/metrics), drawn four ways that share one
// selection and one hovered trial: overlaid learning curves, parallel
// coordinates with brushing, a sortable trials table and a parameter-vs-
// objective scatter. View state (sort, filters, brushes, selection, chosen
// metric and axis) lives in the URL; while the stage runs the data refreshes
// every 2 s without losing any of it.
import { useEffect, useMemo, useRef, useState } from 'preact/hooks';
import { html, useApi, DataTable, Badge, Loading, ErrorState, Empty, fixed, hp, seconds, PALETTE } from '../ui.js';
import { Link, useQuery, useTick, navigate } from '../router.js';
import { enc } from '../api.js';
import { LineChart } from '../chart.js';
import { ParallelCoordinates, Scatter, buildAxis, brushTest, parseBrush, formatBrush } from '../parcoords.js';

const LIVE = new Set(['running', 'pending']);
const ORDER = ['succeeded', 'running', 'pending', 'pruned', 'failed', 'diverged', 'cancelled', 'interrupted', 'skipped'];
const MAX_CURVES = 60;
// Curve colours by trial number from the palette; its yellow darkened
// (#F0E442 is too faint on white for a thin line), so that eight
// consecutive trials still get eight colours.
// Its grey becomes the theme's text colour (a grey best trial reads as
// disabled).
const CURVE = PALETTE.map((c) => (c.toUpperCase() === '#F0E442' ? '#B09A00' : c));
export function trialColor(n) {
  const c = CURVE[((n % CURVE.length) + CURVE.length) % CURVE.length];
  return c === '#777777' ? 'currentColor' : c;  // the theme's text colour (LineChart resolves it)
}

// Rows of the table from the metrics answer: final and best objective,
// epochs, seconds, a lower-case text to filter on; ranked like the server
// ranks trials (succeeded by final value, then the rest by best value).
export function deriveTrials(data) {
  const obj = data.objective || { metric: 'val_accuracy', mode: 'max' };
  const max = obj.mode !== 'min';
  const rows = (data.trials || []).map((t) => {
    const vals = (t.values && t.values[obj.metric]) || [];
    let final = null, best = null;
    for (const v of vals) {
      if (typeof v !== 'number' || !isFinite(v)) continue;
      final = v;
      if (best === null || (max ? v > best : v < best)) best = v;
    }
    let secs = 0;
    for (const s of t.seconds || []) secs += typeof s === 'number' ? s : 0;
    const h = t.hyperparameters || {};
    const text = [`trial ${t.number}`, `#${t.number}`, t.status, t.reason || '', ...Object.entries(h).map(([k, v]) => `${k}=${hp(v)}`)]
      .join(' ').toLowerCase();
    return { n: t.number, id: t.trial_id, status: t.status || 'pending', reason: t.reason || '', hp: h, final, best,
      epochs: (t.epochs || []).length, secs, t, text };
  });
  const group = (r) => (r.final === null ? 2 : r.status === 'succeeded' ? 0 : 1);
  const ranked = [...rows].sort((a, b) => {
    const ga = group(a), gb = group(b);
    if (ga !== gb) return ga - gb;
    if (ga === 2) return a.n - b.n;
    const va = ga === 0 ? a.final : a.best, vb = gb === 0 ? b.final : b.best;
    return (max ? vb - va : va - vb) || a.n - b.n;
  });
  const counts = {};
  for (const r of rows) counts[r.status] = (counts[r.status] || 0) + 1;
  const keys = [];
  const seen = new Set();
  for (const r of rows) for (const k of Object.keys(r.hp)) if (!seen.has(k)) { seen.add(k); keys.push(k); }
  const byN = new Map(rows.map((r) => [r.n, r]));
  return { obj, max, rows, ranked, best: ranked.length && ranked[0].final !== null ? ranked[0] : null, counts, keys, byN };
}

// Several view-state keys in one history entry (one re-render, not two).
function setQueries(values) {
  const q = new URLSearchParams(location.search);
  for (const [k, v] of Object.entries(values)) {
    if (v === '' || v === null || v === undefined) q.delete(k); else q.set(k, v);
  }
  const s = q.toString();
  navigate(location.pathname + (s ? '?' + s : ''), { replace: true });
}

const label = (r) => `trial ${r.n} (${r.status})`;
const STOPPED = new Set(['pruned', 'failed', 'diverged']);

// The curves drawn when the URL names none: the four best trials by the
// objective, plus the two stopped early (pruned, failed, diverged) that got
// furthest, so that early stopping shows on the first screen.
export function defaultSelection(d) {
  const out = new Set(d.ranked.filter((r) => r.final !== null && !STOPPED.has(r.status)).slice(0, 4).map((r) => r.n));
  if (d.best) out.add(d.best.n);
  const stopped = d.rows.filter((r) => STOPPED.has(r.status) && r.best !== null)
    .sort((a, b) => (d.max ? b.best - a.best : a.best - b.best) || a.n - b.n);
  for (const r of stopped.slice(0, 2)) out.add(r.n);
  return out;
}

// info: the stage's StageJson (status); spec: the stage's part of the
// pipeline (search space, depends_on) when the caller has it; otherwise
// fetched here from the run's pipeline.
export function TuneView({ run, stage, info, reload, spec: given }) {
  const m = useApi(`/runs/${enc(run)}/stages/${enc(stage)}/metrics`);
  const own = given === undefined;
  const runInfo = useApi(own ? `/runs/${enc(run)}` : null);
  const pid = runInfo.data && runInfo.data.pipeline_id;
  const pipe = useApi(own && pid ? `/pipelines/${enc(pid)}` : null);
  const spec = own ? (pipe.data && pipe.data.pipeline && pipe.data.pipeline.stages && pipe.data.pipeline.stages[stage]) || null : given;

  const status = (info && info.status) || (runInfo.data && ((runInfo.data.stages || []).find((s) => s.name === stage) || {}).status);
  const live = LIVE.has(status);
  const tick = useTick(2000, live);
  useEffect(() => {
    if (!tick) return;
    m.reload();
    if (tick % 3 === 0 && reload) reload();  // the stage header's status, in case nothing else refreshes it
  }, [tick]);
  const wasLive = useRef(live);
  useEffect(() => { if (wasLive.current && !live) m.reload(); wasLive.current = live; }, [live]);

  const d = useMemo(() => (m.data ? deriveTrials(m.data) : null), [m.data]);
  let body;
  if (m.error && !m.data) body = html`<div class="card"><${ErrorState} error=${m.error} retry=${m.reload} /></div>`;
  else if (!d) body = html`<${TuneSkeleton} />`;
  else if (!d.rows.length) {
    const deps = spec && Array.isArray(spec.depends_on) ? spec.depends_on : [];
    const text = status === 'running' ? 'No trials yet — the first trials are starting.'
      : status === 'pending' || !status ? `No trials yet — the stage starts when ${deps.length ? deps.join(' and ') : 'the stages before it'} finish${deps.length === 1 ? 'es' : ''}.`
      : `No trials: the stage ended (${status}) before any trial started.`;
    body = html`<div class="card"><${Empty}>${text}<//></div>`;
  } else body = html`<${TuneBody} d=${d} spec=${spec} live=${live} refreshError=${m.error} />`;
  return html`<div data-page="tune" class="tune">${body}</div>`;
}

function TuneSkeleton() {
  return html`<div aria-busy="true" aria-label="loading the trials">
    <div class="skeleton" style="width:40%; height:18px"></div>
    <div class="grid2">
      <section class="card"><div class="skeleton" style="width:30%"></div><div class="skeleton" style="height:260px"></div></section>
      <section class="card"><div class="skeleton" style="width:30%"></div><div class="skeleton" style="height:260px"></div></section>
    </div>
    <section class="card"><${Loading} lines=${6} /></section></div>`;
}

function TuneBody({ d, spec, live, refreshError }) {
  const { obj } = d;
  const space = (spec && spec.search_space) || {};
  const hpKeys = useMemo(() => {
    const order = Object.keys(space);
    return [...d.keys].sort((a, b) => {
      const ia = order.indexOf(a), ib = order.indexOf(b);
      return (ia < 0 ? 1e9 : ia) - (ib < 0 ? 1e9 : ib);
    });
  }, [d.keys.join('\u0001'), Object.keys(space).join('\u0001')]);

  // ---- view state in the URL ----
  const [sort] = useQuery('sort', 'objective');
  const [dir] = useQuery('dir', d.max ? 'desc' : 'asc');
  const [statusText, setStatusText] = useQuery('status', '');
  const [q, setQ] = useQuery('q', '');
  // The box answers every key; the filter (table, charts, URL) follows
  // 150 ms after the last one, so typing never waits for a redraw.
  const [qInput, setQInput] = useState(q);
  const qTimer = useRef(null);
  useEffect(() => { if (!qTimer.current) setQInput(q); }, [q]);
  const typed = (v) => {
    setQInput(v);
    clearTimeout(qTimer.current);
    qTimer.current = setTimeout(() => { qTimer.current = null; setQ(v); }, 150);
  };
  useEffect(() => () => clearTimeout(qTimer.current), []);
  const [selText, setSelText] = useQuery('sel', '');
  const [metricName, setMetric] = useQuery('metric', obj.metric);
  const [logText, setLog] = useQuery('log', '');
  const [brushText, setBrushText] = useQuery('brush', '');
  const [xParam, setX] = useQuery('x', hpKeys[0] || '');
  const xKey = hpKeys.includes(xParam) ? xParam : hpKeys[0];
  const [hot, setHot] = useState(null);

  const statuses = useMemo(() => new Set(statusText ? statusText.split(',') : []), [statusText]);
  const brush = useMemo(() => parseBrush(brushText), [brushText]);
  const sel = useMemo(() => {
    if (selText === 'none') return new Set();
    if (selText) return new Set(selText.split(',').map(Number).filter((n) => Number.isFinite(n)));
    return defaultSelection(d);
  }, [selText, d]);
  const selRef = useRef(sel);
  selRef.current = sel;
  const toggle = (n) => {
    const next = new Set(selRef.current);
    if (next.has(n)) next.delete(n); else next.add(n);
    setSelText(next.size ? [...next].sort((a, b) => a - b).join(',') : 'none');
  };

  // ---- axes (parallel coordinates, scatter, brush filter) ----
  const axes = useMemo(() => [
    ...hpKeys.map((k) => buildAxis({ key: k, label: k, spec: space[k] || null, get: (r) => r.hp[k], rows: d.rows })),
    buildAxis({ key: obj.metric, label: obj.metric, spec: null, get: (r) => r.final, rows: d.rows, pad: 0.03 }),
  ], [d.rows, hpKeys, spec]);
  const colorBy = useMemo(() => {
    let lo = Infinity, hi = -Infinity;
    for (const r of d.rows) if (r.final !== null) { lo = Math.min(lo, r.final); hi = Math.max(hi, r.final); }
    if (!(lo <= hi)) { lo = 0; hi = 1; }
    return { get: (r) => r.final, lo, hi, better: obj.mode === 'min' ? 'min' : 'max', label: obj.metric };
  }, [d.rows]);

  // ---- filters: status chips and text for every view, brushes for the table and scatter ----
  const filtered = useMemo(() => {
    const words = q.toLowerCase().split(/\s+/).filter(Boolean);
    return d.rows.filter((r) => (!statuses.size || statuses.has(r.status)) && words.every((w) => r.text.includes(w)));
  }, [d.rows, statuses, q]);
  const test = useMemo(() => brushTest(axes, brush), [axes, brush]);
  const shown = useMemo(() => (test ? filtered.filter(test) : filtered), [filtered, test]);

  // ---- table ----
  const numeric = (k) => d.rows.every((r) => r.hp[k] === undefined || typeof r.hp[k] === 'number');
  const columns = useMemo(() => [
    { key: 'sel', label: html`<span class="sr-only">selected</span>`, sortable: false, value: (r) => (selRef.current.has(r.n) ? 1 : 0),
      render: (r) => html`<input type="checkbox" checked=${selRef.current.has(r.n)} aria-label=${`draw the curves of trial ${r.n}`} />` },
    { key: 'n', label: 'Trial', num: true, value: (r) => r.n, render: (r) => html`<${Link} href=${`/trials/${r.id}`} title=${`open trial ${r.n}`}>${r.n}<//>` },
    { key: 'status', label: 'Status', value: (r) => ORDER.indexOf(r.status) + 1 || 99,
      render: (r) => html`<${Badge} status=${r.status} title=${r.reason ? `${r.status}: ${r.reason}` : r.status} />${r.reason ? html`<span class="reason-mark" title=${r.reason} aria-label=${'reason: ' + r.reason}>i</span>` : null}` },
    { key: 'objective', label: 'Objective', num: true, title: `${obj.metric} (${obj.mode}) at the trial's last epoch`, value: (r) => r.final, render: (r) => fixed(r.final, 4) },
    { key: 'best', label: 'Best', num: true, title: `the ${obj.mode === 'min' ? 'lowest' : 'highest'} ${obj.metric} over the trial's epochs`, value: (r) => r.best, render: (r) => fixed(r.best, 4) },
    ...hpKeys.map((k) => ({ key: 'hp:' + k, label: k, mono: true, num: numeric(k), title: space[k] ? `${space[k].type}${space[k].log ? ', log scale' : ''}` : k,
      value: (r) => r.hp[k], render: (r) => (r.hp[k] === undefined ? html`<span class="muted">–</span>` : hp(r.hp[k])) })),
    { key: 'epochs', label: 'Epochs', num: true, value: (r) => r.epochs },
    { key: 'secs', label: 'Seconds', num: true, title: 'training seconds, all epochs', value: (r) => r.secs, render: (r) => fixed(r.secs, 1) },
  ], [hpKeys, obj.metric, obj.mode, spec, d.rows]);

  // `/` focuses the filter box.
  const filterBox = useRef(null);
  useEffect(() => {
    const key = (e) => {
      if (e.key !== '/' || e.ctrlKey || e.metaKey || e.altKey) return;
      const t = e.target;
      if (t && (t.tagName === 'INPUT' || t.tagName === 'TEXTAREA' || t.tagName === 'SELECT' || t.isContentEditable)) return;
      e.preventDefault();
      if (filterBox.current) filterBox.current.focus();
    };
    document.addEventListener('keydown', key);
    return () => document.removeEventListener('keydown', key);
  }, []);

  const chipClick = (s) => {
    if (s === 'all') return setStatusText('');
    const next = new Set(statuses);
    if (next.has(s)) next.delete(s); else next.add(s);
    setStatusText([...next].join(','));
  };
  const present = ORDER.filter((s) => d.counts[s]).concat(Object.keys(d.counts).filter((s) => !ORDER.includes(s)));

  return html`
    <${Summary} d=${d} live=${live} refreshError=${refreshError} />
    <div class="grid2">
      <${Curves} d=${d} sel=${sel} hot=${hot} setHot=${setHot} metricName=${metricName} setMetric=${setMetric}
        log=${logText === '1'} setLog=${(v) => setLog(v ? '1' : '')} setSelText=${setSelText} />
      <section class="card">
        <div class="row cardhead"><h2>Hyperparameters → ${obj.metric}</h2><span class="spacer"></span>
          ${Object.keys(brush).length ? html`<button class="chip" onClick=${() => setBrushText('')} data-testid="clear-brush">Clear brushes</button>` : null}</div>
        <${ParallelCoordinates} testid="parcoords" axes=${axes} rows=${d.rows} only=${filtered.length === d.rows.length ? null : filtered} rowKey=${(r) => r.n} colorBy=${colorBy}
          brush=${brush} onBrush=${(b) => setBrushText(formatBrush(b))} hot=${hot} onHot=${setHot} onPick=${toggle} height=${300} />
      </section>
    </div>
    <section class="card">
      <div class="row cardhead">
        <h2>Trials</h2>
        <span class="muted small" data-testid="trials-count">${shown.length === d.rows.length ? `${d.rows.length} trials` : `${shown.length} of ${d.rows.length} trials`}</span>
        <span class="spacer"></span>
        <input type="search" ref=${filterBox} placeholder="Filter trials  ( / )" aria-label="filter trials by number, status, reason or hyperparameter"
          value=${qInput} onInput=${(e) => typed(e.currentTarget.value)} class="tune-filter" data-testid="trials-filter" />
      </div>
      <div class="row" style="margin-bottom:10px" role="group" aria-label="filter by status" data-testid="status-filter">
        <button class="chip" aria-pressed=${!statuses.size} onClick=${() => chipClick('all')}>all <span class="muted">${d.rows.length}</span></button>
        ${present.map((s) => html`<button class="chip" data-status=${s} aria-pressed=${statuses.has(s)} onClick=${() => chipClick(s)}>${s} <span class="muted">${d.counts[s]}</span></button>`)}
        ${Object.keys(brush).length ? html`<span class="tag" title="brushes on the parallel coordinates filter this table">brushed: ${Object.keys(brush).join(', ')}</span>` : null}
        <span class="spacer"></span>
        <span class="muted small">${sel.size} selected for the curves · click a row to add or remove it</span>
      </div>
      <${DataTable} testid="trials-table" columns=${columns} rows=${shown} rowKey=${(r) => r.n} sort=${sort} dir=${dir}
        onSort=${(k, dd) => setQueries({ sort: k === 'objective' ? '' : k, dir: dd === (d.max ? 'desc' : 'asc') ? '' : dd })} selected=${sel} hot=${hot} onHot=${setHot} maxHeight=${460}
        onRowClick=${(r, e) => { if (e.target.closest && e.target.closest('a')) return; toggle(r.n); }}
        empty=${html`No trial matches the filters. <button class="chip" onClick=${() => { setQInput(''); setQueries({ q: '', status: '', brush: '' }); }}>Clear filters</button>`} />
    </section>
    <section class="card">
      <div class="row cardhead"><h2>${xKey || 'hyperparameter'} → ${obj.metric}</h2><span class="spacer"></span>
        <label class="small muted">parameter <select value=${xKey} onChange=${(e) => setX(e.currentTarget.value)} data-testid="scatter-param">
          ${hpKeys.map((k) => html`<option value=${k}>${k}</option>`)}</select></label></div>
      ${hpKeys.length
        ? html`<${Scatter} testid="scatter" xAxis=${axes.find((a) => a.key === xKey)} yAxis=${axes[axes.length - 1]} rows=${shown}
            rowKey=${(r) => r.n} status=${(r) => r.status} label=${(r) => `trial ${r.n} (${r.status}): ${xKey}=${hp(r.hp[xKey])}, ${obj.metric} ${fixed(r.final, 4)}`}
            hot=${hot} onHot=${setHot} onPick=${toggle} height=${260} />`
        : html`<div data-testid="scatter"><${Empty}>No hyperparameters to plot.<//></div>`}
    </section>`;
}

function Summary({ d, live, refreshError }) {
  const total = d.rows.length;
  const epochs = d.rows.reduce((s, r) => s + r.epochs, 0);
  const secs = d.rows.reduce((s, r) => s + r.secs, 0);
  const present = ORDER.filter((s) => d.counts[s]).concat(Object.keys(d.counts).filter((s) => !ORDER.includes(s)));
  return html`<div class="tune-summary row" data-testid="tune-summary">
    <strong>${total} trial${total === 1 ? '' : 's'}</strong>
    ${present.map((s) => html`<span class="row" style="gap:4px"><${Badge} status=${s} /><span class="num">${d.counts[s]}</span></span>`)}
    <span class="sep">·</span>
    ${d.best ? html`<span>best ${d.obj.metric} <strong class="num" data-testid="best-objective">${fixed(d.best.status === 'succeeded' ? d.best.final : d.best.best, 4)}</strong>${' '}
      in <${Link} href=${`/trials/${d.best.id}`}>trial ${d.best.n}<//> <span class="muted small">(${d.obj.mode})</span></span>`
      : html`<span class="muted">no ${d.obj.metric} yet</span>`}
    <span class="sep">·</span>
    <span class="muted">${epochs} epochs, ${seconds(secs)} of training</span>
    <span class="spacer"></span>
    ${refreshError ? html`<span class="small" style="color:var(--st-failed-fg)" title=${refreshError.message}>refresh failed: ${refreshError.message}</span>` : null}
    ${live ? html`<span class="live" title="refreshing every 2 s"><span class="dot"></span>live</span>` : null}
  </div>`;
}

function Curves({ d, sel, hot, setHot, metricName, setMetric, log, setLog, setSelText }) {
  const names = useMemo(() => [d.obj.metric, ...(d.metrics || []).filter((x) => x !== d.obj.metric)], [d]);
  const metricList = useMemo(() => {
    const all = new Set([d.obj.metric]);
    for (const r of d.rows) for (const k of Object.keys(r.t.values || {})) all.add(k);
    return [d.obj.metric, ...[...all].filter((x) => x !== d.obj.metric).sort()];
  }, [d]);
  const name = metricList.includes(metricName) ? metricName : d.obj.metric;
  const { series, markers, byLabel, capped } = useMemo(() => {
    const chosen = d.rows.filter((r) => sel.has(r.n));
    // best last, so it is drawn on top
    chosen.sort((a, b) => (a === d.best) - (b === d.best) || a.n - b.n);
    const capped = chosen.length > MAX_CURVES ? chosen.length : 0;
    const list = capped ? [...chosen.filter((r) => r !== d.best).slice(0, MAX_CURVES - 1), ...(d.best && sel.has(d.best.n) ? [d.best] : [])] : chosen;
    const byLabel = new Map();
    const markers = [];
    const series = list.map((r) => {
      const vals = (r.t.values && r.t.values[name]) || [];
      const pts = [];
      (r.t.epochs || []).forEach((e, i) => { const v = vals[i]; if (typeof v === 'number' && isFinite(v)) pts.push([e, v]); });
      const pruned = r.status === 'pruned' || r.status === 'failed' || r.status === 'diverged';
      byLabel.set(label(r), r.n);
      for (const start of r.t.promotions || []) {
        const before = pts.filter((p) => p[0] < start);
        const at = before.length ? before[before.length - 1] : pts.find((p) => p[0] === start);
        if (at) markers.push({ markers: [at], color: trialColor(r.n) });
      }
      return { label: label(r), points: pts, color: trialColor(r.n), width: r === d.best ? 3.2 : pruned ? 1.2 : 1.8, dash: pruned ? [6, 4] : undefined,
        pointSize: pruned && pts.length < 3 ? 9 : undefined, pointFill: pruned && pts.length < 3, r, last: pts.length ? pts[pts.length - 1] : null };
    });
    return { series, markers, byLabel, capped };
  }, [d, sel, name]);
  const hotLabel = hot !== null && d.byN.get(hot) && sel.has(hot) ? label(d.byN.get(hot)) : null;
  const anyPromotions = markers.length > 0;
  return html`<section class="card">
    <div class="row cardhead"><h2>Learning curves</h2><span class="spacer"></span>
      <label class="small muted">metric <select value=${name} onChange=${(e) => setMetric(e.currentTarget.value)} data-testid="curve-metric">
        ${metricList.map((k) => html`<option value=${k}>${k}${k === d.obj.metric ? ' (objective)' : ''}</option>`)}</select></label>
      <button class="chip" aria-pressed=${log} onClick=${() => setLog(!log)} title="logarithmic y axis" data-testid="curve-log">log</button>
      <button class="chip" onClick=${() => setSelText('')} title="the four best trials and the two stopped early (pruned, failed or diverged) that got furthest">best + pruned</button>
      <button class="chip" onClick=${() => setSelText('none')} disabled=${!sel.size}>clear</button>
    </div>
    ${series.length
      ? html`<${LineChart} testid="curves" series=${series} yLabel=${name + (log ? ' (log)' : '')} log=${log} height=${264} lines=${markers}
          hot=${hotLabel} onHot=${(l) => setHot(l === null ? null : byLabel.has(l) ? byLabel.get(l) : null)} legend=${false} />
        <ul class="curve-legend" data-testid="curve-legend" aria-label="curves drawn">
          ${[...series].sort((a, b) => a.r.n - b.r.n).map((s) => html`<li class=${hot === s.r.n ? 'hot' : ''}
              onMouseEnter=${() => setHot(s.r.n)} onMouseLeave=${() => setHot(null)}
              title=${`trial ${s.r.n} (${s.r.status}${s.r.reason ? ': ' + s.r.reason : ''})${s.last ? `: ${name} ${fixed(s.last[1], 4)} at epoch ${s.last[0]}` : ''}`}>
            <svg width="22" height="10" aria-hidden="true"><line x1="1" x2="21" y1="5" y2="5" stroke=${s.color}
              stroke-width=${Math.min(3, s.width)} stroke-dasharray=${s.dash ? '4 3' : undefined} />${s.pointFill ? html`<circle cx="11" cy="5" r="3.5" fill=${s.color} />` : null}</svg>
            <span class="cl-name">trial ${s.r.n}</span>
            <span class="cl-status" style=${{ color: `var(--st-${s.r.status}-fg, var(--muted))` }}>${s.r.status}</span>
            <span class="num cl-value">${s.last ? fixed(s.last[1], 4) : '–'}</span>
          </li>`)}
        </ul>`
      : html`<div data-testid="curves" class="curves-empty"><${Empty}>No trials selected. Click rows of the table (or lines of the parallel coordinates) to draw their curves.<//></div>`}
    <div class="muted small curve-note">
      ${d.best && sel.has(d.best.n) ? html`<span>thick: best trial ${d.best.n}</span>` : null}
      <span>${series.some((s) => s.pointFill) ? 'dashed or a dot' : 'dashed'}: stopped early (pruned, failed, diverged)</span>
      ${anyPromotions ? html`<span>▲ ASHA promotion</span>` : null}
      ${capped ? html`<span>showing ${MAX_CURVES} of ${capped} selected</span>` : null}
    </div>
  </section>`;
}
