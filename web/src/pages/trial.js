// One trial (GET /trials/{id}): what it tried (hyperparameters), how it went
// (status, reason, curves of every metric with train and validation on one
// chart), each epoch's checkpoint and the checkpoint it started from.
import { useEffect, useMemo } from 'preact/hooks';
import { html, useApi, useCrumbs, DataTable, Badge, Loading, ErrorState, Empty, Card, PageHead, Digest, fixed, hp, metric,
  when, duration, PALETTE } from '../ui.js';
import { Link, useQuery, useTick } from '../router.js';
import { enc } from '../api.js';
import { LineChart } from '../chart.js';

const LIVE = new Set(['running', 'pending']);
const SPLITS = ['train', 'val', 'test'];
const SPLIT_COLOR = { train: PALETTE[0], val: PALETTE[1], test: PALETTE[2] };

// Metric names grouped for charts: train_loss, val_loss and test_loss on one
// chart ("loss"); anything else alone. The objective's group first.
export function metricGroups(names, objective) {
  const groups = new Map();
  for (const n of names) {
    const m = /^(train|val|test)_(.+)$/.exec(n);
    const key = m ? m[2] : n;
    if (!groups.has(key)) groups.set(key, []);
    groups.get(key).push(n);
  }
  const rank = (k) => (objective && groups.get(k).includes(objective) ? 0 : k === 'loss' ? 1 : k === 'accuracy' ? 2 : 3);
  return [...groups.entries()]
    .map(([key, list]) => ({ key, names: list.sort((a, b) => split(a) - split(b)) }))
    .sort((a, b) => rank(a.key) - rank(b.key) || a.key.localeCompare(b.key));
}
function split(name) {
  const i = SPLITS.indexOf(name.split('_')[0]);
  return i < 0 ? 9 : i;
}
const fmt = (name, v) => (/per_second|samples/.test(name) ? fixed(v, 1) : metric(v));

export function TrialPage({ trial }) {
  const { data, error, loading, reload } = useApi(`/trials/${enc(trial)}`);
  const t = data;
  useCrumbs(t ? [{ label: t.run_id, href: `/runs/${enc(t.run_id)}` }, { label: t.stage, href: `/runs/${enc(t.run_id)}/stages/${enc(t.stage)}` },
    { label: `trial ${t.number}` }] : [{ label: `trial ${trial}` }], [t && t.run_id, t && t.stage, t && t.number, trial]);
  const live = !!t && LIVE.has(t.status);
  const tick = useTick(2000, live);
  useEffect(() => { if (tick) reload(); }, [tick]);

  if (error && !t) return html`<div data-page="trial"><${PageHead} title=${`Trial ${trial}`} /><section class="card"><${ErrorState} error=${error} retry=${reload} /></section></div>`;
  if (!t) return html`<div data-page="trial" aria-busy=${loading}><${PageHead} title="Trial" /><div class="grid2"><section class="card"><${Loading} lines=${5} /></section><section class="card"><${Loading} lines=${5} /></section></div></div>`;
  return html`<div data-page="trial"><${TrialBody} t=${t} live=${live} /></div>`;
}

function TrialBody({ t, live }) {
  const objective = t.objective || { metric: 'val_accuracy', mode: 'max' };
  const epochs = t.epochs || [];
  const names = useMemo(() => {
    const s = new Set();
    for (const e of epochs) for (const [k, v] of Object.entries(e.metrics || {})) if (typeof v === 'number') s.add(k);
    return [...s];
  }, [t]);
  const groups = useMemo(() => metricGroups(names, objective.metric), [names.join(','), objective.metric]);
  const bestEpoch = useMemo(() => {
    let best = null;
    for (const e of epochs) {
      const v = e.metrics && e.metrics[objective.metric];
      if (typeof v !== 'number') continue;
      if (!best || (objective.mode === 'min' ? v < best.v : v > best.v)) best = { epoch: e.epoch, v };
    }
    return best;
  }, [t]);
  const [logText, setLog] = useQuery('log', '');
  const logs = new Set(logText ? logText.split(',') : []);
  const toggleLog = (k) => { const n = new Set(logs); if (n.has(k)) n.delete(k); else n.add(k); setLog([...n].join(',')); };
  const [sort, setSort] = useQuery('sort', 'epoch');
  const [dir, setDir] = useQuery('dir', 'asc');

  const secs = epochs.reduce((s, e) => s + (typeof e.seconds === 'number' ? e.seconds : 0), 0);
  const stageHref = `/runs/${enc(t.run_id)}/stages/${enc(t.stage)}`;
  const meta = [
    t.stage_type ? html`<span class="tag" title="stage type">${t.stage_type}</span>` : null,
    html`<span>stage <${Link} href=${stageHref}>${t.stage}<//></span>`,
    html`<span>run <${Link} class="mono" href=${`/runs/${enc(t.run_id)}`}>${t.run_id}<//></span>`,
    t.variant ? html`<span>variant <span class="mono">${typeof t.variant === 'string' ? t.variant : JSON.stringify(t.variant)}</span></span>` : null,
    html`<span class="num">${epochs.length} epoch${epochs.length === 1 ? '' : 's'}, ${fixed(secs, 1)} s</span>`,
    t.started_at > 0 ? html`<span>started ${when(t.started_at)} · ${duration(t.started_at, t.finished_at)}${live ? ' so far' : ''}</span>` : null,
    t.attempts > 1 ? html`<span title="the trial was retried">${t.attempts} attempts</span>` : null,
    live ? html`<span class="live"><span class="dot"></span>live</span>` : null,
  ];
  const columns = useMemo(() => [
    { key: 'epoch', label: 'Epoch', num: true, value: (e) => e.epoch,
      render: (e) => html`${bestEpoch && bestEpoch.epoch === e.epoch ? html`<span class="tag best-tag" title=${`best ${objective.metric}`}>best</span> ` : null}${e.epoch}` },
    ...groups.flatMap((g) => g.names).map((n) => ({ key: 'm:' + n, label: n, num: true, title: n === objective.metric ? `the objective (${objective.mode})` : n,
      value: (e) => (e.metrics ? e.metrics[n] : null), render: (e) => fmt(n, e.metrics ? e.metrics[n] : null) })),
    { key: 'seconds', label: 'Seconds', num: true, value: (e) => e.seconds, render: (e) => fixed(e.seconds, 1) },
    { key: 'checkpoint', label: 'Checkpoint', value: (e) => e.checkpoint || '',
      render: (e) => (e.checkpoint ? html`<${Digest} value=${e.checkpoint} href=${`/checkpoints/${e.checkpoint}`} />${e.released
        ? html` <span class="tag released-tag" title=${e.released}>released</span>` : null}` : html`<span class="muted">–</span>`) },
  ], [groups, bestEpoch, t]);

  const hps = Object.entries(t.hyperparameters || {});
  // Where its weights and hyperparameters came from: the lineage one hop up.
  const lin = useApi(`/lineage?node=${enc('trial:' + t.trial_id)}&direction=upstream&depth=1`);
  const up = useMemo(() => {
    const out = { init: null, hpFrom: null, resumed: [] };
    if (!lin.data) return out;
    const nodes = lin.data.nodes || {};
    for (const e of lin.data.edges || []) {
      if (e.src !== 'trial:' + t.trial_id) continue;
      if (e.kind === 'initialized_from') out.init = { ...(e.attrs || {}), node: nodes[e.dst] || {}, checkpoint: e.dst.slice(e.dst.indexOf(':') + 1) };
      else if (e.kind === 'hyperparameters_from') out.hpFrom = { id: e.dst.slice(e.dst.indexOf(':') + 1), node: nodes[e.dst] || {} };
      else if (e.kind === 'resumed_from') out.resumed.push({ ...(e.attrs || {}), dst: e.dst });
    }
    return out;
  }, [lin.data, t.trial_id]);
  return html`
    <${PageHead} title=${`Trial ${t.number}`} status=${t.status} meta=${meta}
      actions=${html`<${Link} class="btn" href=${`${stageHref}?sel=${t.number}`} title="the stage's trials with this one's curves drawn">All trials of ${t.stage}<//>`} />
    ${t.reason ? html`<div class=${'callout trial-reason st-border-' + t.status} data-testid="trial-reason"><strong>${t.status}:</strong> ${t.reason}</div>` : null}
    <div class="trial-grid">
      <div>
        <${Card} title="Hyperparameters" data-testid="trial-hparams">
          ${hps.length ? html`<dl class="kv">${hps.map(([k, v]) => html`<dt>${k}</dt><dd class="mono">${hp(v)}</dd>`)}</dl>`
            : html`<div class="muted small">none (fixed model and training settings)</div>`}
          ${up.hpFrom ? html`<div class="small muted" style="margin-top:8px">taken from ${up.hpFrom.node.stage || 'stage'}${' '}
            <${Link} href=${`/trials/${up.hpFrom.id}`}>trial ${up.hpFrom.node.trial_number ?? up.hpFrom.id}<//></div>` : null}
        <//>
        <${Card} title="Objective" data-testid="trial-objective">
          <dl class="kv">
            <dt>metric</dt><dd><span class="mono">${objective.metric}</span> <span class="muted">(${objective.mode})</span></dd>
            <dt>final</dt><dd class="num" style="text-align:left">${fixed(t.final_objective, 4)}</dd>
            <dt>best</dt><dd class="num" style="text-align:left">${fixed(t.best_objective, 4)}${bestEpoch ? html` <span class="muted">at epoch ${bestEpoch.epoch}</span>` : null}</dd>
          </dl>
        <//>
        <${Card} title="Weights" data-testid="trial-warmstart">
          <dl class="kv">
            <dt>started from</dt><dd>${up.init ? html`<${WarmStart} init=${up.init} />`
              : t.initial_checkpoint
              ? html`<${Digest} value=${t.initial_checkpoint} href=${`/checkpoints/${t.initial_checkpoint}`} />${t.initial_checkpoint_released ? html` <span class="tag released-tag">released</span>` : null}
                <div class="muted small">${lin.data ? 'random initialisation (stored, so the run can be repeated)' : 'its initial weights'}</div>`
              : html`<span class="muted">random initialisation</span>`}</dd>
            ${up.resumed.map((r) => html`<dt>resumed</dt><dd>${r.promoted ? 'promoted by ASHA, ' : ''}from epoch ${r.start_epoch ?? '?'}${
              r.dst.startsWith('checkpoint:') ? html` (<${Digest} value=${r.dst.slice(11)} href=${`/checkpoints/${r.dst.slice(11)}`} />)` : ''}</dd>`)}
            ${t.output ? html`<dt>output</dt><dd><${Digest} value=${t.output} href=${`/checkpoints/${t.output}`} /></dd>` : null}
            ${epochs.length && epochs[epochs.length - 1].checkpoint ? html`<dt>last epoch</dt><dd><${Digest} value=${epochs[epochs.length - 1].checkpoint}
              href=${`/checkpoints/${epochs[epochs.length - 1].checkpoint}`} /></dd>` : null}
          </dl>
        <//>
      </div>
      <div class="trial-charts" data-testid="trial-curves">
        ${groups.length ? groups.map((g) => html`<${MetricChart} g=${g} epochs=${epochs} objective=${objective.metric}
            log=${logs.has(g.key)} toggleLog=${() => toggleLog(g.key)} />`)
          : html`<section class="card"><${Empty}>${live ? 'No epoch has finished yet: curves appear after the first one.' : 'This trial reported no metrics.'}<//></section>`}
      </div>
    </div>
    <${Card} title="Epochs" right=${html`<span class="muted small">click a checkpoint to see its tensors and lineage</span>`}>
      <${DataTable} testid="epochs-table" columns=${columns} rows=${epochs} rowKey=${(e) => e.epoch} sort=${sort} dir=${dir}
        onSort=${(k, d) => { setSort(k); setDir(d); }} maxHeight=${420} empty=${live ? 'The first epoch is running.' : 'No epochs recorded.'} />
    <//>`;
}

function MetricChart({ g, epochs, objective, log, toggleLog }) {
  const series = g.names.map((n, i) => ({
    label: n,
    color: SPLIT_COLOR[n.split('_')[0]] || PALETTE[(i + 3) % PALETTE.length],
    width: n === objective ? 2.4 : 1.8,
    points: epochs.filter((e) => e.metrics && typeof e.metrics[n] === 'number').map((e) => [e.epoch, e.metrics[n]]),
  }));
  const loglike = /loss|lr/.test(g.key);
  return html`<section class="card">
    <div class="row cardhead"><h2>${g.names.length > 1 ? g.key : g.names[0]}</h2>
      ${g.names.includes(objective) ? html`<span class="tag">objective</span>` : null}<span class="spacer"></span>
      ${loglike || log ? html`<button class="chip" aria-pressed=${log} onClick=${toggleLog} title="logarithmic y axis">log</button>` : null}</div>
    <${LineChart} testid=${'curve-' + g.key} series=${series} yLabel=${g.key + (log ? ' (log)' : '')} log=${log} height=${200} />
  </section>`;
}

// "started from tune trial 7, epoch 3: 11 tensors transferred" with links to
// the source trial and checkpoint, and the re-initialised tensors with why.
function WarmStart({ init }) {
  const n = init.node || {};
  const trialId = init.trial_id ?? n.trial_id;
  const number = init.trial_number ?? n.trial_number;
  const stage = init.stage || n.stage;
  const transferred = Array.isArray(init.transferred) ? init.transferred : [];
  const reinit = Array.isArray(init.reinitialized) ? init.reinitialized : [];
  const name = (r) => (typeof r === 'string' ? r : r && (r.name || r.tensor) ? `${r.name || r.tensor}${r.reason ? ` (${r.reason})` : ''}` : JSON.stringify(r));
  return html`<div data-testid="warm-start">
    <div>warm start from ${stage || 'a'} ${trialId !== undefined ? html`<${Link} href=${`/trials/${trialId}`}>trial ${number ?? trialId}<//>` : 'checkpoint'}${
      init.epoch !== undefined && init.epoch !== null ? `, epoch ${init.epoch}` : ''}</div>
    <div><${Digest} value=${init.checkpoint} href=${`/checkpoints/${init.checkpoint}`} /></div>
    <div class="small">${transferred.length} tensor${transferred.length === 1 ? '' : 's'} transferred${reinit.length ? `, ${reinit.length} re-initialised` : ''}</div>
    ${reinit.length ? html`<details class="small"><summary>re-initialised tensors</summary><ul class="tensorlist">${reinit.map((r) => html`<li class="mono">${name(r)}</li>`)}</ul></details>` : null}
  </div>`;
}
