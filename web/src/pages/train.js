// A train stage: where the final model's weights came from (the warm-start
// card), its final metrics and checkpoint, the joined curve (the source
// trial's epochs, then the final model's, on one total-epochs axis) and,
// with `compare`, the comparison of starts: the table (TTA, speed-ups,
// p-values) and the paper's figure, validation accuracy of the baseline and
// each start over epochs, mean ± sd over seeds, with the target line.
import { useEffect, useMemo, useState } from 'preact/hooks';
import { html, useApi, DataTable, Loading, ErrorState, Empty, Card, Badge, Digest, ActionButton, PALETTE, metric, fixed, seconds, bytes } from '../ui.js';
import { Link, useQuery, useTick } from '../router.js';
import { enc, get, downloadSafetensors } from '../api.js';
import { LineChart } from '../chart.js';

const LIVE = new Set(['running', 'pending']);
const BASELINE = 'kaiming_uniform';

// Which compare start and seed a trial of the stage ran: the API's own field
// when it has one, else the order the coordinator numbers them in (trial 0
// is the model; then, per seed, the baseline and each start).
export function compareRoles(trials, variants) {
  const names = variants.map((v) => v.variant);
  const V = names.length;
  return trials.map((t) => {
    const own = t.variant || (t.task && t.task.variant);
    if (own) return { trial: t, variant: own, seed: t.repeat ?? (t.task && t.task.repeat) ?? null };
    if (!V || t.number === 0) return { trial: t, variant: null, seed: null };
    return { trial: t, variant: names[(t.number - 1) % V], seed: Math.floor((t.number - 1) / V) };
  });
}

// Mean and sd at each epoch over the seeds that have a value there.
export function meanBand(curves) {
  const at = new Map();
  for (const c of curves) for (const [x, y] of c) if (typeof y === 'number' && isFinite(y)) (at.get(x) || at.set(x, []).get(x)).push(y);
  const xs = [...at.keys()].sort((a, b) => a - b);
  const mean = [], band = [];
  for (const x of xs) {
    const v = at.get(x);
    const m = v.reduce((a, b) => a + b, 0) / v.length;
    const sd = v.length > 1 ? Math.sqrt(v.reduce((a, b) => a + (b - m) ** 2, 0) / (v.length - 1)) : 0;
    mean.push([x, m]);
    band.push([x, m - sd, m + sd]);
  }
  return { mean, band };
}

const curveOf = (trial, name) => (trial ? trial.epochs.filter((e) => e.metrics && typeof e.metrics[name] === 'number').map((e) => [e.epoch, e.metrics[name]]) : []);

function startWords(variant, resolvedVariants, init) {
  if (variant === BASELINE) return 'Kaiming uniform (baseline)';
  const r = (resolvedVariants || []).find((v) => v.variant === variant);
  const ep = r && r.epoch !== undefined ? r.epoch : variant.replace(/^epoch:/, '');
  const who = init ? `${init.stage} trial ${init.trial_number}` : 'the trial';
  return `${who}, epoch ${ep}`;
}

function pValue(test) {
  if (!test) return html`<span class="muted">–</span>`;
  if (typeof test.p_value !== 'number') return html`<span class="muted" title=${test.note || 'not computable'}>n/a</span>`;
  const p = test.p_value;
  return html`<span title=${(test.note ? test.note + '; ' : '') + (typeof test.statistic === 'number' ? 'statistic ' + test.statistic.toFixed(3) : '')}
    class=${p < 0.05 ? 'sig' : ''}>${p < 0.001 ? p.toExponential(1) : p.toFixed(3)}</span>`;
}

function ms(summary, places) {
  if (!summary || typeof summary.mean !== 'number') return html`<span class="muted">–</span>`;
  return html`<span>${summary.mean.toFixed(places)}${summary.n > 1 ? html`<span class="muted"> ± ${summary.sd.toFixed(places)}</span>` : null}</span>`;
}

const pText = (t) => (t && typeof t.p_value === 'number' ? t.p_value.toPrecision(3) : `n/a${t && t.note ? ' (' + t.note + ')' : ''}`);
const times = (x) => (typeof x === 'number' && isFinite(x) ? x.toFixed(2) + '×' : '–');

export function TrainView({ run, stage, info, reload }) {
  const live = info && LIVE.has(info.status);
  const base = `/runs/${enc(run)}/stages/${enc(stage)}`;
  const trialsApi = useApi(base + '/trials');
  const hasComparison = !!(info && info.comparison);
  const cmpApi = useApi(hasComparison ? base + '/comparison' : null);
  const tick = useTick(3000, !!live);
  useEffect(() => { if (tick) { trialsApi.reload(); if (reload) reload(); } }, [tick]);
  useEffect(() => { if (hasComparison) cmpApi.reload(); }, [info && info.status]);

  const resolved = (info && info.resolved) || {};
  const init = resolved.init_from || null;
  const compareSpec = resolved.compare || null;
  const comparison = cmpApi.data || (info && info.comparison) || null;
  const variants = (compareSpec && compareSpec.variants) || (comparison && comparison.variants) || [];
  const trials = (trialsApi.data && trialsApi.data.trials) || [];
  const roles = useMemo(() => compareRoles(trials, variants), [trials, variants]);
  const model = (roles.find((r) => r.variant === null) || {}).trial || null;

  // The model's initialized_from edge: what was transferred.
  const lineage = useApi(model && init ? `/lineage?node=${enc('trial:' + model.trial_id)}&direction=upstream&depth=1` : null);
  const edge = lineage.data ? (lineage.data.edges || []).find((e) => e.kind === 'initialized_from') : null;
  // The source trial's epochs (for its metric at the start epoch and the joined curve).
  const source = useSourceTrial(init, run);

  if (trialsApi.error && !trialsApi.data) return html`<div data-page="train"><${ErrorState} error=${trialsApi.error} retry=${trialsApi.reload} /></div>`;
  if (!trialsApi.data) return html`<div data-page="train"><${Card} title="Final model"><${Loading} lines=${4} /><//></div>`;

  const objMetric = (init && init.objective && init.objective.metric) || 'val_accuracy';
  return html`<div data-page="train">
    <div class="grid2">
      <${WarmStart} init=${init} edge=${edge} lineage=${lineage} source=${source} metricName=${objMetric} model=${model} info=${info} />
      <${ModelCard} info=${info} model=${model} live=${live} />
    </div>
    ${init && model ? html`<${JoinedCurves} init=${init} source=${source} model=${model} roles=${roles} metricName=${objMetric} />` : null}
    ${hasComparison || compareSpec ? html`<${Comparison} comparison=${comparison} error=${cmpApi.error} retry=${cmpApi.reload} info=${info}
        roles=${roles} variants=${variants} init=${init} live=${live} />` : null}
  </div>`;
}

function useSourceTrial(init, run) {
  const [state, setState] = useState({ data: null, error: null });
  const id = init && init.trial_id;
  useEffect(() => {
    if (!id) return undefined;
    let alive = true;
    get(`/trials/${id}`).catch(() =>
      // Older servers: find it in its stage's trials.
      get(`/runs/${enc(run)}/stages/${enc(init.stage)}/trials`).then((d) => {
        const t = d.trials.find((x) => x.trial_id === id);
        if (!t) throw new Error(`trial ${id} is not in stage ${init.stage}`);
        return t;
      }))
      .then((data) => alive && setState({ data, error: null }), (error) => alive && setState({ data: null, error }));
    return () => { alive = false; };
  }, [id]);
  return state;
}

function WarmStart({ init, edge, lineage, source, metricName, model, info }) {
  if (!init) {
    return html`<${Card} title="Warm start" data-testid="warm-start">
      <div class="callout">The final model started from fresh weights (Kaiming uniform): this stage has no <code>init_from</code>.</div>
      ${info && info.resolved && info.resolved.hyperparameters_from ? html`<div class="small muted">Hyperparameters from ${info.resolved.hyperparameters_from.stage} trial ${info.resolved.hyperparameters_from.trial_number}.</div>` : null}
    <//>`;
  }
  const attrs = (edge && edge.attrs) || null;
  const ep = init.epoch === 'initial' ? null : init.epoch;
  const at = source.data && ep !== null ? source.data.epochs.find((e) => e.epoch === ep) : null;
  const value = at && at.metrics && typeof at.metrics[metricName] === 'number' ? at.metrics[metricName] : null;
  const tr = attrs ? (attrs.transferred || []) : null;
  const re = attrs ? (attrs.reinitialized || []) : null;
  const total = tr ? tr.length + re.length : 0;
  return html`<${Card} title="Warm start" data-testid="warm-start">
    <div class="callout warmline">The final model started from <${Link} href=${'/trials/' + init.trial_id}>${init.stage} trial ${init.trial_number}<//>, ${ep === null ? 'its initial weights' : `epoch ${ep}`}${value !== null ? ` (${metricName} ${metric(value)})` : ''}${tr
        ? html`: <strong>${tr.length} of ${total} tensors transferred</strong>${re.length ? html`, ${re.length} re-initialised` : ''}`
        : lineage.loading || !model ? '…' : ': no transfer record (the model has not started yet).'}</div>
    <dl class="kv">
      <dt>Selected</dt><dd>${init.rank ? `rank ${init.rank} by ` : ''}${init.objective ? html`${init.objective.metric} (${init.objective.mode}) <span class="num">${metric(init.objective.value)}</span>` : '–'}</dd>
      <dt>Source checkpoint</dt><dd><${Digest} value=${init.checkpoint} href=${'/checkpoints/' + init.checkpoint} /></dd>
      ${model && model.initial_checkpoint ? html`<dt>Model's initial weights</dt><dd><${Digest} value=${model.initial_checkpoint} href=${'/checkpoints/' + model.initial_checkpoint} />
        ${model.initial_checkpoint === init.checkpoint ? html` <span class="tag" title="same digest: every tensor is the source's">identical to the source</span>` : null}</dd>` : null}
      ${re && re.length ? html`<dt>Re-initialised</dt><dd class="mono small">${re.join(', ')}</dd>` : null}
      ${tr && tr.length ? html`<dt>Transferred</dt><dd><details><summary class="small">${tr.length} tensors</summary><span class="mono small">${tr.join(', ')}</span></details></dd>` : null}
    </dl>
  <//>`;
}

function ModelCard({ info, model, live }) {
  const m = info && info.model;
  const digest = m && m.checkpoint;
  return html`<${Card} title="Final model" data-testid="final-model"
      right=${digest ? html`<${ActionButton} run=${() => downloadSafetensors(digest)} done="download started" data-testid="model-download">Download safetensors<//>` : null}>
    ${!model ? html`<${Empty}>${live ? 'The final model has not started yet.' : 'No final model in this stage.'}<//>` : html`
      <dl class="kv">
        <dt>Trial</dt><dd><${Link} href=${'/trials/' + model.trial_id}>trial ${model.number}<//> <${Badge} status=${model.status} />${model.reason ? html` <span class="muted small">${model.reason}</span>` : null}</dd>
        <dt>Epochs</dt><dd class="num" style="text-align:left">${model.epochs.length}</dd>
        <dt>Checkpoint</dt><dd>${digest ? html`<${Digest} value=${digest} href=${'/checkpoints/' + digest} />` : html`<span class="muted">none yet</span>`}</dd>
      </dl>
      ${m && m.final_metrics ? html`<table class="metrics small" style="margin-top:10px"><thead><tr><th>Metric (last epoch)</th><th class="num">Value</th></tr></thead>
        <tbody>${Object.keys(m.final_metrics).sort().map((k) => html`<tr><td>${k}</td><td class="num">${typeof m.final_metrics[k] === 'number' ? metric(m.final_metrics[k]) : String(m.final_metrics[k])}</td></tr>`)}</tbody></table>` : null}`}
  <//>`;
}

// The source trial's curve up to the start epoch, the final model's after
// it on a total-epochs axis, and the Kaiming-uniform baseline (trained from
// scratch) drawn alongside the final model's epochs: its epoch e at total
// epoch k + 1 + e, like the final model's. At each x both have trained the
// same number of epochs of their own, so the gap between them is what the
// warm start gives; the k + 1 tuning epochs before it were spent by the tune
// stage anyway (the comparison's "+ tuning" speed-up counts them).
function JoinedCurves({ init, source, model, roles, metricName }) {
  const k = typeof init.epoch === 'number' ? init.epoch : -1;
  const src = source.data;
  const series = [];
  const lines = [];
  if (src) {
    const all = curveOf(src, metricName);
    series.push({ label: `${init.stage} trial ${init.trial_number} (tuning)`, points: all.filter(([x]) => x <= k), color: PALETTE[1], width: 2 });
    const after = all.filter(([x]) => x >= k);
    if (after.length > 1) series.push({ label: `trial ${init.trial_number} had it continued`, points: after, color: PALETTE[1], width: 1, dash: [4, 4] });
    const start = all.find(([x]) => x === k);
    if (start) lines.push({ markers: [start], color: PALETTE[1] });
  }
  const own = curveOf(model, metricName).map(([x, y]) => [x + k + 1, y]);
  const startPt = src ? curveOf(src, metricName).find(([x]) => x === k) : null;
  series.push({ label: `final model (trial ${model.number})`, points: startPt ? [startPt, ...own] : own, color: PALETTE[0], width: 2.5 });
  const baseline = roles.filter((r) => r.variant === BASELINE).map((r) => curveOf(r.trial, metricName));
  if (baseline.length) {
    const { mean } = meanBand(baseline);
    series.push({ label: `Kaiming uniform from scratch, aligned with the final model's epochs (mean of ${baseline.length} seed${baseline.length === 1 ? '' : 's'})`,
      points: mean.map(([x, y]) => [x + k + 1, y]), color: 'rgba(128,128,128,.75)', width: 1.2, dash: [2, 3] });
  }
  return html`<${Card} title="Joined curves" right=${html`<span class="muted small">${metricName} over total epochs: tuning epochs 0–${k}, then the final model from ${k + 1}</span>`}>
    ${source.error ? html`<div class="muted small">The source trial could not be read: ${source.error.message}</div>` : null}
    ${!own.length && !src ? html`<${Loading} />` : html`<${LineChart} testid="joined-chart" series=${series} lines=${lines} xLabel="total epochs" yLabel=${metricName} height=${260} />`}
    <div class="muted small" style="margin-top:4px" data-testid="joined-caption">${k < 0
      ? `The final model started from the source trial's initial weights, so no tuning epoch comes before it${baseline.length ? '; the Kaiming-uniform baseline (from scratch) shares its epochs' : ''}.`
      : baseline.length
      ? `Alignment: the Kaiming-uniform baseline starts from scratch where the final model starts (total epoch ${k + 1}), so at each epoch both have trained equally long after their start and the gap between them is what the warm start gives. The ${k + 1} tuning epoch${k ? 's' : ''} before the start (0–${k}) were spent by the tune stage, which runs anyway; to charge them to the warm start, read the comparison's “+ tuning” speed-up.`
      : `The source trial's epochs 0–${k}, then the final model's from total epoch ${k + 1}; dashed: the source trial had it continued.`}</div>
  <//>`;
}

function Comparison({ comparison, error, retry, info, roles, variants, init, live }) {
  const [csort, setCsort] = useQuery('csort', '');
  const [cdir, setCdir] = useQuery('cdir', 'desc');
  const [seedsOn, setSeedsOn] = useQuery('seeds', '');
  const [hot, setHot] = useState(null);
  const metricName = (comparison && comparison.metric) || 'val_accuracy';
  const names = variants.map((v) => v.variant);
  const color = (v) => PALETTE[Math.max(0, names.indexOf(v)) % PALETTE.length];
  const label = (v) => startWords(v, variants, init);

  const { series, seedCount } = useMemo(() => {
    const out = [];
    let n = 0;
    for (const v of names) {
      const mine = roles.filter((r) => r.variant === v);
      n = Math.max(n, mine.length);
      const curves = mine.map((r) => curveOf(r.trial, metricName));
      if (!curves.some((c) => c.length)) continue;
      const { mean, band } = meanBand(curves);
      out.push({ label: label(v), points: mean, band, color: color(v), width: v === BASELINE ? 2 : 2.5, dash: v === BASELINE ? [6, 3] : undefined });
      if (seedsOn) mine.forEach((r) => out.push({ label: `${label(v)} · seed ${r.seed} (trial ${r.trial.number})`, points: curveOf(r.trial, metricName), color: color(v), width: 0.8, dash: [2, 3] }));
    }
    return { series: out, seedCount: n };
  }, [roles, variants, seedsOn, metricName]);

  const target = comparison && comparison.target;
  const lines = target && typeof target.value === 'number' ? [{ y: target.value, label: `target ${target.value.toFixed(4)}`, color: 'rgba(128,128,128,.9)' }] : [];
  const rows = (comparison && comparison.variants) || [];
  const columns = [
    { key: 'variant', label: 'Start', value: (r) => names.indexOf(r.variant),
      render: (r) => html`<span class="row" style="gap:6px; flex-wrap:nowrap"><span class="swatch" style=${{ background: color(r.variant) }}></span>
        ${r.checkpoint ? html`<${Link} href=${'/checkpoints/' + r.checkpoint} title=${'checkpoint ' + r.checkpoint}>${label(r.variant)}<//>` : label(r.variant)}</span>` },
    { key: 'tuning_epochs', label: 'Tuned', num: true, title: 'epochs the tuning trial had trained before this start', render: (r) => String(r.tuning_epochs) },
    { key: 'best_val', label: 'Best val ± sd', num: true, value: (r) => r.best_val_accuracy && r.best_val_accuracy.mean, render: (r) => ms(r.best_val_accuracy, 4) },
    { key: 'best_test', label: 'Best test ± sd', num: true, value: (r) => r.best_test_accuracy && r.best_test_accuracy.mean, render: (r) => ms(r.best_test_accuracy, 4) },
    { key: 'reached', label: 'Reached', num: true, title: 'seeds that reached the target / seeds', value: (r) => r.tta.reached / Math.max(1, r.tta.seeds),
      render: (r) => html`<span title=${r.tta.note || ''}>${r.tta.reached}/${r.tta.seeds}</span>` },
    { key: 'tta_epochs', label: 'TTA epochs ± sd', num: true, title: 'epochs trained until the target was first reached (mean ± sd over the seeds that did)',
      value: (r) => r.tta.epochs && r.tta.epochs.mean,
      render: (r) => html`<span title=${r.tta.welch_t ? `against the baseline: Welch t p ${pText(r.tta.welch_t)}, Mann-Whitney U p ${pText(r.tta.mann_whitney_u)}` : ''}>${ms(r.tta.epochs, 1)}</span>` },
    { key: 'tta_seconds', label: 'TTA s ± sd', num: true, value: (r) => r.tta.seconds && r.tta.seconds.mean, render: (r) => ms(r.tta.seconds, 1) },
    { key: 'speedup', label: 'Speed-up', num: true, title: 'baseline TTA epochs / this start\'s', value: (r) => r.tta.speedup_epochs,
      render: (r) => html`<span title=${typeof r.tta.speedup_seconds === 'number' ? `${times(r.tta.speedup_seconds)} in seconds` : r.tta.note || ''}>${times(r.tta.speedup_epochs)}</span>` },
    { key: 'speedup_tuning', label: '+ tuning', num: true, title: 'counting the tuning epochs before the start', value: (r) => r.tta.speedup_epochs_with_tuning, render: (r) => times(r.tta.speedup_epochs_with_tuning) },
    { key: 'p_best', label: 'p best val (t / U)', num: true, title: 'best validation accuracy against the baseline: Welch t test / Mann-Whitney U test', sortable: false,
      render: (r) => (r.best_val_welch_t ? html`<span>${pValue(r.best_val_welch_t)} / ${pValue(r.best_val_mann_whitney_u)}</span>` : html`<span class="muted">—</span>`) },
  ];
  const failures = rows.filter((r) => (r.failures || []).length);
  const targetWords = target ? (target.fraction_of_baseline_best !== undefined
    ? `${metricName} ${target.value.toFixed(4)} (${target.fraction_of_baseline_best} × the baseline's mean best ${target.baseline_best_mean.toFixed(4)})`
    : `${metricName} ${target.value.toFixed(4)}`) : null;
  return html`<section data-page="comparison" data-testid="comparison">
    <${Card} title="Comparison of starts" right=${comparison ? html`<span class="muted small">${comparison.seeds || seedCount} seeds · target ${targetWords}</span>` : null}>
      ${info && info.speedup_line ? html`<div class="callout speedup" data-testid="speedup-line">${speedupWords(info.speedup_line)}</div>` : null}
      ${error && !comparison ? html`<${ErrorState} error=${error} retry=${retry} />`
        : !comparison ? html`<${Empty}>${live ? `The comparison table appears when every seed has finished (${roles.filter((r) => r.variant && r.trial.status === 'succeeded').length} of ${roles.filter((r) => r.variant).length} runs done).` : 'No comparison for this stage.'}<//>`
        : html`<${DataTable} testid="comparison-table" columns=${columns} rows=${rows} rowKey=${(r) => r.variant} sort=${csort} dir=${cdir}
            onSort=${(k, d) => { setCsort(k); setCdir(d); }} hot=${hot ? rows.find((r) => label(r.variant) === hot)?.variant : null}
            onHot=${(k) => setHot(k ? label(k) : null)} maxHeight=${300} />
          <div class="muted small" style="margin-top:6px">TTA: epochs trained until ${metricName} first reaches the target. Speed-up needs every seed of both starts to reach it. p-values: best val against the baseline (Welch t / Mann-Whitney U; hover a TTA for its own); p ${'<'} 0.05 in bold.</div>
          ${failures.length ? html`<ul class="errors small">${failures.map((r) => r.failures.map((f) => html`<li>${label(r.variant)}: ${f}</li>`))}</ul>` : null}`}
    <//>
    <${Card} title=${`${metricName} by start, mean ± sd over seeds`}
      right=${html`<button class="chip" aria-pressed=${!!seedsOn} onClick=${() => setSeedsOn(seedsOn ? '' : '1')} data-testid="toggle-seeds">each seed</button>`}>
      ${series.length ? html`<${LineChart} testid="comparison-chart" series=${series} lines=${lines} yLabel=${metricName} height=${320} hot=${hot} onHot=${setHot} />`
        : html`<div data-testid="comparison-chart"><${Empty}>No compare run has finished an epoch yet.<//></div>`}
      <div class="muted small" style="margin-top:4px">Lines: mean over seeds; shaded: ± one standard deviation; dashed grey: the target. Drag to zoom, double-click to reset.</div>
    <//>
  </section>`;
}

// "speed-up: starting from ..." reads better without its prefix.
function speedupWords(line) {
  const s = line.replace(/^speed-up:\s*/, '');
  return html`<strong>Speed-up:</strong> ${s}`;
}
