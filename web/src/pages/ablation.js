// An ablate stage: the base and each variant (layers removed, features
// dropped) with the objective's mean ± sd over repeats, the change against
// the base paired by seed, the impact (how much worse without it), and the
// warm start of each variant (which tensors it took from init_from, which it
// had to re-initialise and why). Sort and the selected variant are in the URL.
import { useEffect, useMemo, useRef, useState } from 'preact/hooks';
import { html, useApi, DataTable, Loading, ErrorState, Empty, Card, Digest, fixed, seconds, metric } from '../ui.js';
import { Link, useQuery, useTick } from '../router.js';
import { enc } from '../api.js';

const LIVE = new Set(['running', 'pending']);

export function signed(v, places = 4) {
  if (typeof v !== 'number' || !isFinite(v)) return '–';
  return (v > 0 ? '+' : v < 0 ? '−' : '±') + Math.abs(v).toFixed(places);
}

export function meanSd(mean, sd, places = 4, sign = false) {
  if (typeof mean !== 'number') return html`<span class="muted">–</span>`;
  const m = sign ? signed(mean, places) : mean.toFixed(places);
  return html`<span>${m}${typeof sd === 'number' ? html`<span class="muted"> ± ${sd.toFixed(places)}</span>` : null}</span>`;
}

function removedWords(r) {
  const parts = [...(r.removed_layers || []), ...(r.dropped_features || []).map((f) => 'feature ' + f)];
  return parts.length ? parts.join(', ') : '';
}

function runsOf(r) {
  const runs = r.runs || {};
  return Object.keys(runs).sort().map((s) => ({ status: s, n: runs[s] }));
}

// Why a tensor was re-initialised, from the source checkpoint's manifest:
// present there with another shape, or absent.
function reasonOf(name, source, long = false) {
  if (!source) return '';
  const t = source.get(name);
  if (!t) return long ? '(missing: not in the source checkpoint)' : '(missing)';
  return long ? `(shape: the source's is [${t.shape.join(', ')}])` : '(shape)';
}

export function AblationView({ run, stage, info, reload }) {
  const live = info && LIVE.has(info.status);
  const { data, error, loading, reload: again } = useApi(`/runs/${enc(run)}/stages/${enc(stage)}/ablation`);
  const tick = useTick(3000, !!live);
  useEffect(() => { if (tick) { again(); if (reload) reload(); } }, [tick]);
  const [sort, setSort] = useQuery('sort', 'impact');
  const [dir, setDir] = useQuery('dir', 'desc');
  const [picked, setPicked] = useQuery('variant', '');

  const resolved = (info && info.resolved) || {};
  const init = resolved.init_from;
  const objective = (data && data.objective) || resolved.objective || { metric: 'objective', mode: 'max' };
  const rows = useMemo(() => {
    if (!data || !data.base) return [];
    return [{ ...data.base, isBase: true }, ...(data.variants || [])];
  }, [data]);
  // The source checkpoint's manifest tells why a tensor was re-initialised.
  const sourceDigest = (init && init.checkpoint) || (rows.find((r) => r.init) || {}).init?.checkpoint;
  const src = useApi(sourceDigest ? `/checkpoints/${enc(sourceDigest)}` : null);
  const source = useMemo(() => (src.data ? new Map(src.data.tensors.map((t) => [t.name, t])) : null), [src.data]);

  if (error && !data) return html`<div data-page="ablation"><${ErrorState} error=${error} retry=${again} /></div>`;
  if (!data && loading) return html`<div data-page="ablation"><${Card} title="Ablation"><${Loading} lines=${5} /><//></div>`;
  if (!rows.length) {
    const planned = resolved.variants || [];
    return html`<div data-page="ablation"><${Card} title="Ablation">
      <${Empty}>${live ? `The results table appears when the stage finishes (${planned.length || 'its'} variants are training now).`
        : info && info.status === 'failed' ? html`The stage failed before it had results${info.error ? html`: <span class="mono">${info.error}</span>` : ''}.`
        : 'No ablation results for this stage.'}
        ${planned.length ? html`<div class="small" style="margin-top:8px">Planned: ${planned.map((v) => v.variant).join(', ')}</div>` : null}<//><//></div>`;
  }

  const base = data.base || {};
  const places = 4;
  const columns = [
    { key: 'variant', label: 'Variant', value: (r) => (r.isBase ? '' : r.variant),
      render: (r) => html`<span class="row" style="gap:6px; flex-wrap:nowrap"><span class="mono">${r.variant}</span>${r.isBase ? html`<span class="tag">base</span>` : html`<span class="tag">${r.kind}</span>`}</span>` },
    { key: 'removed', label: 'Removed', value: (r) => removedWords(r),
      render: (r) => removedWords(r) ? html`<span class="mono" title=${removedWords(r)}>${clip(removedWords(r), 28)}</span>` : html`<span class="muted">nothing</span>` },
    { key: 'objective_mean', label: `${objective.metric} mean ± sd`, num: true, title: `${objective.metric} at the last epoch, mean ± sd over repeats (${objective.mode === 'min' ? 'lower' : 'higher'} is better)`,
      render: (r) => meanSd(r.objective_mean, r.objective_sd, places) },
    { key: 'delta_mean', label: 'Δ vs base ± sd', num: true, title: 'variant − base, paired by repeat (same seed)',
      render: (r) => (r.isBase ? html`<span class="muted">—</span>` : meanSd(r.delta_mean, r.delta_sd, places, true)) },
    { key: 'impact', label: 'Impact', num: true, title: 'how much worse than the base the variant is (positive: the component helps)',
      render: (r) => (r.isBase ? html`<span class="muted">—</span>` : html`<span class=${'impact ' + (r.impact > 0 ? 'pos' : r.impact < 0 ? 'neg' : '')}>${signed(r.impact, places)}</span>`) },
    { key: 'epochs_mean', label: 'Epochs', num: true, render: (r) => fixed(r.epochs_mean, 1) },
    { key: 'seconds_mean', label: 'Seconds', num: true, title: 'training seconds per repeat (mean)', render: (r) => fixed(r.seconds_mean, 1) },
    { key: 'runs', label: 'Runs', value: (r) => (r.runs && r.runs.succeeded) || 0,
      render: (r) => html`<span class="row" style="gap:4px; flex-wrap:nowrap">${runsOf(r).map((x) => html`<span class=${'badge st-' + x.status} title=${x.n + ' ' + x.status}>${x.n} ${x.status}</span>`)}</span>` },
    { key: 'init', label: 'Tensors xfer / re-init', num: true, value: (r) => (r.init ? r.init.transferred.length : null),
      title: 'tensors taken from init_from / re-initialised (click the row for the names)',
      render: (r) => (r.init ? html`<span title=${initTitle(r.init)}>${r.init.transferred.length} / ${r.init.reinitialized.length}</span>` : html`<span class="muted">–</span>`) },
    { key: 'reasons', label: 'Failures', value: (r) => (r.reasons || []).join('; '),
      render: (r) => ((r.reasons || []).length ? html`<span class="muted" title=${r.reasons.join('\n')}>${clip(r.reasons[0], 40)}${r.reasons.length > 1 ? ` (+${r.reasons.length - 1})` : ''}</span>` : html`<span class="muted">–</span>`) },
  ];
  const selected = rows.find((r) => r.variant === picked) || null;
  const failed = rows.filter((r) => (r.reasons || []).length);
  return html`<div data-page="ablation">
    ${init ? html`<${WarmStartSummary} init=${init} rows=${rows} source=${source} />` : null}
    <${Card} title="Variants" right=${html`<span class="muted small">${objective.metric} (${objective.mode}) · impact = how much worse than the base, paired by seed</span>`}>
      <${DataTable} testid="ablation-table" columns=${columns} rows=${rows} rowKey=${(r) => r.variant} sort=${sort} dir=${dir}
        onSort=${(k, d) => { setSort(k); setDir(d); }} selected=${new Set(picked ? [picked] : [])}
        onRowClick=${(r) => setPicked(r.variant === picked ? '' : r.variant)} maxHeight=${420} />
      <div class="muted small" style="margin-top:6px">Click a row for its tensors. Base ${objective.metric}: ${meanSd(base.objective_mean, base.objective_sd, places)} over ${base.repeats_with_value || 0} repeat(s).</div>
      ${failed.length ? html`<ul class="errors small">${failed.map((r) => r.reasons.map((x) => html`<li><span class="mono">${r.variant}</span>: ${x}</li>`))}</ul>` : null}
    <//>
    ${selected ? html`<${VariantDetail} row=${selected} source=${source} init=${init} close=${() => setPicked('')} />` : null}
    <${Card} title="Impact per variant" right=${html`<span class="muted small">bars: mean impact; whiskers: ± sd of the paired change</span>`}>
      <${ImpactChart} rows=${rows.filter((r) => !r.isBase)} picked=${picked} onPick=${(v) => setPicked(v === picked ? '' : v)} />
    <//>
  </div>`;
}

function initTitle(init) {
  return `transferred (${init.transferred.length}): ${init.transferred.join(', ') || 'none'}\nre-initialised (${init.reinitialized.length}): ${init.reinitialized.join(', ') || 'none'}`;
}

function clip(s, n) { s = String(s); return s.length > n ? s.slice(0, n - 1) + '…' : s; }

function fromWords(init) {
  const ep = init.epoch === 'initial' ? 'its initial weights' : `epoch ${init.epoch}`;
  return html`<${Link} href=${'/trials/' + init.trial_id}>${init.stage} trial ${init.trial_number}<//>, ${ep}`;
}

// One line per variant: "variant conv2 started from tune trial 8 epoch 4:
// 11 tensors transferred, fc1.weight re-initialised (shape)".
function WarmStartSummary({ init, rows, source }) {
  const value = init.objective && typeof init.objective.value === 'number' ? ` (trial's ${init.objective.metric} ${metric(init.objective.value)})` : '';
  return html`<${Card} title="Warm start" data-testid="ablation-warm-start"
      right=${init.checkpoint ? html`<span class="small">checkpoint <${Digest} value=${init.checkpoint} href=${'/checkpoints/' + init.checkpoint} /></span>` : null}>
    <div class="callout" style="margin-bottom:8px">Every variant started from ${fromWords(init)}${value}; a tensor the variant's model no longer has, or has in another shape, is re-initialised.</div>
    <ul class="warmlist">${rows.map((r) => html`<li>
      <span class="mono">${r.variant}</span>: ${r.init ? html`<span>${r.init.transferred.length} tensor${r.init.transferred.length === 1 ? '' : 's'} transferred${r.init.reinitialized.length
        ? html`, <span class="mono">${r.init.reinitialized.map((n) => n + (source ? ' ' + reasonOf(n, source) : '')).join(', ')}</span> re-initialised` : ', nothing re-initialised'}</span>` : html`<span class="muted">no warm-start record</span>`}</li>`)}</ul>
  <//>`;
}

function VariantDetail({ row, source, init, close }) {
  const i = row.init;
  const removed = source && i ? [...source.keys()].filter((n) => !i.transferred.includes(n) && !i.reinitialized.includes(n)) : [];
  return html`<${Card} title=${html`Variant <span class="mono">${row.variant}</span>`} data-testid="variant-detail" right=${html`<button onClick=${close} aria-label="close">Close</button>`}>
    ${!i ? html`<${Empty}>No warm-start record for this variant (it started from fresh weights).<//>` : html`<div class="grid2">
      <div><h3>Transferred (${i.transferred.length})</h3>
        ${i.transferred.length ? html`<ul class="mono small tensorlist">${i.transferred.map((n) => html`<li>${n}</li>`)}</ul>` : html`<div class="muted">none</div>`}</div>
      <div><h3>Re-initialised (${i.reinitialized.length})</h3>
        ${i.reinitialized.length ? html`<ul class="mono small tensorlist">${i.reinitialized.map((n) => html`<li>${n} <span class="muted">${reasonOf(n, source, true)}</span></li>`)}</ul>` : html`<div class="muted">none</div>`}
        ${removed.length ? html`<h3 style="margin-top:10px">Not in this variant (${removed.length})</h3><ul class="mono small tensorlist">${removed.map((n) => html`<li>${n}</li>`)}</ul>` : null}</div>
    </div>
    <div class="small muted" style="margin-top:6px">Source: <${Digest} value=${i.checkpoint} href=${'/checkpoints/' + i.checkpoint} />${init ? html` (${fromWords(init)})` : null}</div>`}
    ${(row.reasons || []).length ? html`<h3 style="margin-top:10px">Failures</h3><ul class="errors small">${row.reasons.map((x) => html`<li>${x}</li>`)}</ul>` : null}
  <//>`;
}

// Horizontal bars of impact per variant, zero in the middle when some are
// negative; the value is written beside each bar (colour is not the only cue).
export function ImpactChart({ rows, picked, onPick }) {
  const box = useRef(null);
  const [width, setWidth] = useState(900);
  useEffect(() => {
    const el = box.current;
    if (!el) return undefined;
    const ro = new ResizeObserver(() => setWidth(el.clientWidth || 900));
    ro.observe(el);
    return () => ro.disconnect();
  }, [box.current]);
  const withImpact = rows.filter((r) => typeof r.impact === 'number');
  if (!withImpact.length) return html`<div data-testid="impact-chart"><${Empty}>No variant has an impact yet (every repeat must succeed next to the base's).<//></div>`;
  const sorted = [...withImpact].sort((a, b) => b.impact - a.impact);
  const lo = Math.min(0, ...sorted.map((r) => r.impact - (r.delta_sd || 0)));
  const hi = Math.max(0, ...sorted.map((r) => r.impact + (r.delta_sd || 0)));
  const span = hi - lo || 1;
  const W = Math.max(480, width), label = 180, valueW = 78, bar = 20, gap = 8, top = 8;
  const plotW = W - label - valueW * 2;
  const x = (v) => label + valueW + ((v - lo) / span) * plotW;
  const H = top + sorted.length * (bar + gap) + 26;
  const ticks = niceTicks(lo, hi, 5);
  return html`<div data-testid="impact-chart" class="impactchart" ref=${box}>
    <svg width=${W} height=${H} role="img" aria-label="impact per variant">
      ${ticks.map((t) => html`<g><line x1=${x(t)} x2=${x(t)} y1=${top - 4} y2=${H - 22} class="grid" />
        <text x=${x(t)} y=${H - 8} text-anchor="middle" class="tick">${t === 0 ? '0' : signed(t, decimals(ticks))}</text></g>`)}
      <line x1=${x(0)} x2=${x(0)} y1=${top - 4} y2=${H - 22} class="zero" />
      ${sorted.map((r, i) => {
        const y = top + i * (bar + gap);
        const x0 = x(Math.min(0, r.impact)), x1 = x(Math.max(0, r.impact));
        const sd = r.delta_sd;
        const cls = 'bar ' + (r.impact >= 0 ? 'pos' : 'neg') + (r.variant === picked ? ' picked' : '');
        const tx = r.impact >= 0 ? x(r.impact + (sd || 0)) + 6 : x(r.impact - (sd || 0)) - 6;
        return html`<g class=${cls} onClick=${() => onPick(r.variant)} style="cursor:pointer" data-variant=${r.variant}>
          <title>${r.variant}: impact ${signed(r.impact)}${typeof sd === 'number' ? ' ± ' + sd.toFixed(4) : ''}</title>
          <text x=${label - 10} y=${y + bar / 2 + 4} text-anchor="end" class="name">${clip(r.variant, 24)}</text>
          <rect x=${x0} y=${y} width=${Math.max(1, x1 - x0)} height=${bar} rx="3" />
          ${typeof sd === 'number' ? html`<line class="whisker" x1=${x(r.impact - sd)} x2=${x(r.impact + sd)} y1=${y + bar / 2} y2=${y + bar / 2} />
            <line class="whisker" x1=${x(r.impact - sd)} x2=${x(r.impact - sd)} y1=${y + 6} y2=${y + bar - 6} />
            <line class="whisker" x1=${x(r.impact + sd)} x2=${x(r.impact + sd)} y1=${y + 6} y2=${y + bar - 6} />` : null}
          <text x=${tx} y=${y + bar / 2 + 4} text-anchor=${r.impact >= 0 ? 'start' : 'end'} class="value">${signed(r.impact)}</text>
        </g>`;
      })}
    </svg>
    <div class="muted small">Positive: the variant does worse than the base, so the removed part helps. Negative: removing it helped.</div>
  </div>`;
}

function decimals(ticks) {
  const step = ticks.length > 1 ? Math.abs(ticks[1] - ticks[0]) : 1;
  return Math.max(0, Math.min(6, -Math.floor(Math.log10(step))));
}

export function niceTicks(lo, hi, n) {
  const span = hi - lo;
  if (!(span > 0)) return [lo];
  const raw = span / n;
  const mag = Math.pow(10, Math.floor(Math.log10(raw)));
  const step = [1, 2, 5, 10].map((m) => m * mag).find((s) => s >= raw);
  const out = [];
  for (let t = Math.ceil(lo / step) * step; t <= hi + step * 1e-9; t += step) out.push(Math.abs(t) < step * 1e-9 ? 0 : +t.toFixed(12));
  return out;
}
