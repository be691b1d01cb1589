// The run page: header with status, timings and actions (cancel, resume,
// pin), the stage DAG, the stages table, the final model's warm start, and
// the pipeline document. While the run is pending or running it follows the
// run's event stream (one per tab) and re-reads the run at most once a
// second; after run_finished it says how the run ended.
import { useEffect, useMemo, useRef, useState } from 'preact/hooks';
import { html, useApi, useCrumbs, DataTable, Badge, Loading, ErrorState, Empty, Card, PageHead, Digest, ActionButton,
  when, duration, metric, toast } from '../ui.js';
import { Link, useTick, useQuery } from '../router.js';
import { enc, get, post, followEvents } from '../api.js';
import { Graph } from '../graph.js';

const TRIAL_TYPES = new Set(['tune', 'ablate', 'train']);
const UNFINISHED = new Set(['running', 'pending']);
const isActive = (s) => UNFINISHED.has(s);

export const stageHref = (run, stage) => `/runs/${enc(run)}/stages/${enc(stage)}`;

// Calls fn at most once per `ms` (the last call wins), so a burst of epoch
// events turns into one re-read a second.
function useThrottle(fn, ms) {
  const ref = useRef({ fn, timer: null, last: 0 });
  ref.current.fn = fn;
  useEffect(() => () => clearTimeout(ref.current.timer), []);
  return () => {
    const r = ref.current;
    if (r.timer) return;
    const wait = Math.max(150, r.last + ms - Date.now());
    r.timer = setTimeout(() => { r.timer = null; r.last = Date.now(); r.fn(); }, wait);
  };
}

// Trials done / total of each tune, ablate and train stage: one request per
// such stage (its trials' statuses), again only while the stage runs.
function useTrialCounts(run, stages, specs, bump) {
  const [counts, setCounts] = useState({});
  const seen = useRef({});  // stage -> the status its counts were read at
  useEffect(() => {
    let alive = true;
    for (const s of stages || []) {
      if (!TRIAL_TYPES.has(s.type) || s.cached_from_stage) continue;
      const key = s.status + '|' + (isActive(s.status) ? bump : '');
      if (seen.current[s.name] === key) continue;
      if (s.status === 'pending') continue;  // nothing has started: no trials to count yet
      seen.current[s.name] = key;
      get(`/runs/${enc(run)}/stages/${enc(s.name)}/trials`).then((d) => {
        if (!alive) return;
        const list = (d && d.trials) || [];
        const by = {};
        for (const t of list) by[t.status] = (by[t.status] || 0) + 1;
        const done = list.length - (by.running || 0) - (by.pending || 0);
        setCounts((c) => ({ ...c, [s.name]: { done, created: list.length, by } }));
      }, () => {});
    }
    return () => { alive = false; };
  }, [run, stages, bump]);
  // Totals: what the pipeline plans (a tune stage's max_trials) or what exists.
  const out = {};
  for (const s of stages || []) {
    if (!TRIAL_TYPES.has(s.type) || s.cached_from_stage) continue;
    const c = counts[s.name];
    const spec = specs && specs[s.name];
    const planned = s.type === 'tune' && spec && spec.budget ? spec.budget.max_trials : null;
    if (!c && planned) out[s.name] = { done: 0, total: planned, by: {} };
    else if (c && (c.created || planned)) out[s.name] = { done: c.done, total: Math.max(c.created, (isActive(s.status) || !c.created) && planned ? planned : 0), by: c.by };
  }
  return out;
}

function trialWords(c) {
  if (!c) return '';
  let s = `${c.done}/${c.total} trials`;
  const extra = ['pruned', 'failed', 'diverged'].filter((k) => c.by[k]).map((k) => `${c.by[k]} ${k}`);
  if (c.by.running) extra.unshift(`${c.by.running} running`);
  return extra.length ? s + ', ' + extra.join(', ') : s;
}

export function RunPage({ run }) {
  useCrumbs([{ label: run, href: '/runs/' + enc(run) }], [run]);
  const { data, error, loading, reload } = useApi('/runs/' + enc(run));
  const pipe = useApi(data && data.pipeline_id ? '/pipelines/' + enc(data.pipeline_id) : null);
  const doc = pipe.data && pipe.data.pipeline;
  const specs = doc && doc.stages;
  const status = data && data.status;
  const active = isActive(status);

  // ---- live: one event stream while the run is unfinished ----
  const [stream, setStream] = useState(null);  // 'live' | 'reconnecting' | 'ended'
  const [ended, setEnded] = useState(null);    // run_finished's {status, error}
  const [bump, setBump] = useState(0);
  const reread = useThrottle(() => { reload(); setBump((b) => b + 1); }, 1000);
  useEffect(() => {
    if (!active) return undefined;
    const close = followEvents(run, {
      onEvent: (type, ev) => {
        if (type === 'run_finished') setEnded((ev && ev.data) || {});
        reread();
      },
      onState: (s) => { setStream(s); if (s === 'ended') reread(); },
    });
    return close;
  }, [run, active]);

  const counts = useTrialCounts(run, data && data.stages, specs, bump);
  useTick(1000, active);  // the running duration counts up between events
  const [pinned, setPinned] = useState(undefined);
  const pinState = pinned !== undefined ? pinned : data && typeof data.pinned === 'boolean' ? data.pinned : undefined;

  if (error && !data) {
    return html`<div data-page="run"><${PageHead} title=${run} />${error.status === 404
      ? html`<section class="card empty" data-testid="no-run">There is no run <code>${run}</code> on this server. <${Link} href="/">See the runs<//>.</section>`
      : html`<${ErrorState} error=${error} retry=${reload} />`}</div>`;
  }
  if (!data) return html`<div data-page="run"><${PageHead} title=${run} /><section class="card"><${Loading} lines=${6} /></section></div>`;

  const stages = data.stages || [];
  const act = (verb, words) => async () => {
    const r = await post(`/runs/${enc(run)}:${verb}`);
    if (verb === 'pin' || verb === 'unpin') setPinned(verb === 'pin');
    reload();
    return r;
  };
  const actions = html`
    ${active ? html`<${ActionButton} data-testid="cancel" class="danger" label="Cancel" title="cancel the run; epochs stored so far stay"
        run=${async () => { if (!confirm(`Cancel run ${run}? Epochs stored so far stay.`)) return null; return act('cancel')(); }}
        done=${(r) => r && 'cancel requested'} />` : null}
    ${status === 'interrupted' ? html`<${ActionButton} data-testid="resume" class="primary" label="Resume"
        title="continue the run: finished trials stay, interrupted ones continue from their last stored epoch"
        run=${act('resume')} done="resume queued: the run reads pending until it starts" />` : null}
    ${pinState === undefined
      ? html`<${ActionButton} data-testid="pin" label="Pin" title="store gc keeps every checkpoint of a pinned run" run=${act('pin')} done="pinned: store gc keeps every checkpoint of this run" />
             <${ActionButton} data-testid="unpin" label="Unpin" title="checkpoints follow the retention policy again" run=${act('unpin')} done="unpinned: the retention policy applies again" />`
      : pinState
        ? html`<${ActionButton} data-testid="unpin" label="Unpin" title="pinned: store gc keeps every checkpoint; click to unpin" run=${act('unpin')} done="unpinned: the retention policy applies again" />`
        : html`<${ActionButton} data-testid="pin" label="Pin" title="store gc keeps every checkpoint of a pinned run" run=${act('pin')} done="pinned: store gc keeps every checkpoint of this run" />`}`;

  const liveBadge = active || stream === 'reconnecting'
    ? stream === 'reconnecting'
      ? html`<span class="live off" data-testid="live"><span class="dot"></span>reconnecting…</span>`
      : html`<span class="live" data-testid="live"><span class="dot"></span>${stream === 'live' ? 'live' : 'connecting…'}</span>`
    : null;
  const meta = [
    html`<span title="pipeline">${data.pipeline}</span>`,
    html`<span title=${'created ' + when(data.created_at)}>started ${when(data.created_at)}</span>`,
    html`<span class="num" title="duration">${duration(data.created_at, data.finished_at)}${active ? ' so far' : ''}</span>`,
    `${stages.filter((s) => s.status === 'succeeded' || s.status === 'cached').length}/${stages.length} stages done`,
    liveBadge,
  ];

  const nodes = stages.map((s) => {
    const c = counts[s.name];
    const cached = s.cached_from_stage ? 'cache hit' + (s.cached_from_run ? ' from ' + s.cached_from_run : '') : '';
    return {
      id: s.name, title: s.name, status: s.status, href: stageHref(run, s.name),
      sub: [s.type, cached ? 'cache hit' : trialWords(c) || null].filter(Boolean).join(' · '),
      sub2: cached ? (s.cached_from_run ? 'from ' + s.cached_from_run : '') : s.started_at > 0 ? duration(s.started_at, s.finished_at) : '',
    };
  });
  const edges = [];
  if (specs) {
    for (const [name, spec] of Object.entries(specs)) {
      for (const d of spec.depends_on || []) edges.push({ from: d, to: name });
    }
  }

  return html`<div data-page="run">
    <${PageHead} title=${html`<span class="mono runid" data-testid="run-id">${run}</span>`} status=${status} meta=${meta} actions=${actions} />
    ${ended && !active ? html`<${Ended} ended=${ended} shown=${data.error} />` : null}
    ${data.error ? html`<div class=${'run-error' + (status === 'cancelled' ? ' calm' : '')} role="alert" data-testid="run-error"><strong>${status === 'cancelled' ? 'Cancelled' : 'Run ' + status}:</strong> ${data.error}${
      status === 'interrupted' ? html`<div class="small" style="margin-top:4px">Resume continues it: finished trials stay, interrupted ones go on from their last stored epoch.</div>` : null}</div>` : null}
    ${error ? html`<div class="callout small">Could not refresh: ${error.message} <button onClick=${reload}>Retry</button></div>` : null}
    <${Card} title="Stages" right=${html`<span class="muted small">drag to pan, wheel to zoom, double-click to fit</span>`}>
      ${stages.length
        ? html`<${Graph} testid="run-dag" nodes=${nodes} edges=${edges} height=${Math.min(380, 160 + 24 * stages.length)} />`
        : html`<${Empty}>${status === 'pending' ? 'The run is queued: its stages appear when it starts.' : 'This run has no stages.'}<//>`}
      ${stages.length ? html`<div style="margin-top:12px"><${StagesTable} run=${run} stages=${stages} counts=${counts} /></div>` : null}
    <//>
    <${WarmStart} run=${run} stages=${stages} />
    <${PipelineDoc} id=${data.pipeline_id} pipe=${pipe} />
  </div>`;
}

// Said once the stream's run_finished arrives (the error, if any, is in the box below).
function Ended({ ended, shown }) {
  const s = ended.status || 'finished';
  return html`<div class=${'run-ended st-' + s} role="status" data-testid="run-ended">
    The run ended while you watched: <strong>${s}</strong>${ended.error && ended.error !== shown ? html` — ${ended.error}` : s === 'succeeded' ? ' — every stage finished.' : '.'}</div>`;
}

function StagesTable({ run, stages, counts }) {
  const [sort, setSort] = useQuery('sort', '');  // none: the pipeline's order
  const [dir, setDir] = useQuery('dir', 'desc');
  const columns = [
    { key: 'name', label: 'Stage', value: (s) => s.name, render: (s) => html`<${Link} href=${stageHref(run, s.name)}>${s.name}<//>` },
    { key: 'type', label: 'Type', value: (s) => s.type, render: (s) => html`<span class="tag">${s.type}</span>` },
    { key: 'status', label: 'Status', value: (s) => s.status, render: (s) => html`<${Badge} status=${s.status} />` },
    { key: 'started_at', label: 'Started', num: true, value: (s) => s.started_at, render: (s) => when(s.started_at) },
    { key: 'duration', label: 'Duration', num: true, value: (s) => (s.started_at > 0 ? (s.finished_at > 0 ? s.finished_at : Date.now() / 1000) - s.started_at : null),
      render: (s) => duration(s.started_at, s.finished_at) },
    { key: 'trials', label: 'Trials', num: true, value: (s) => (counts[s.name] ? counts[s.name].done : null),
      render: (s) => (counts[s.name] ? html`<span title=${trialWords(counts[s.name])}>${counts[s.name].done}/${counts[s.name].total}</span>` : html`<span class="muted">–</span>`) },
    { key: 'cache', label: 'Cache hit', value: (s) => s.cached_from_run || '',
      render: (s) => (s.cached_from_stage
        ? (s.cached_from_run ? html`<span>reused from <${Link} class="mono" href=${'/runs/' + enc(s.cached_from_run)} title="the run whose output this stage reused">${s.cached_from_run}<//></span>` : 'reused')
        : html`<span class="muted">–</span>`) },
    { key: 'error', label: 'Error', sortable: false, render: (s) => (s.error ? html`<span class="stage-error" title=${s.error}>${s.error}</span>` : '') },
  ];
  return html`<${DataTable} testid="stages-table" columns=${columns} rows=${stages} rowKey=${(s) => s.name} maxHeight=${400}
    sort=${sort} dir=${dir} onSort=${(k, d) => { setSort(k); setDir(d); }} />`;
}

// "The final model started from tune trial 8, epoch 4 (val_accuracy 0.8970)".
function WarmStart({ run, stages }) {
  const train = [...stages].reverse().find((s) => s.type === 'train' && s.resolved && s.resolved.init_from);
  const init = train && train.resolved.init_from;
  const metricName = init && init.objective && init.objective.metric;
  const hist = useApi(init && init.trial_id && metricName ? `/trials/${enc(String(init.trial_id))}/metrics?metric=${enc(metricName)}` : null);
  const lin = useApi(train && train.model && train.model.checkpoint ? `/lineage?node=${enc('checkpoint:' + train.model.checkpoint)}&direction=upstream&depth=3` : null);
  if (!init) return null;
  let value = null;
  if (hist.data && Array.isArray(hist.data.history)) {
    const row = hist.data.history.find((h) => h.epoch === init.epoch);
    if (row && typeof row.value === 'number') value = row.value;
  }
  const transfer = lin.data && lin.data.initialized_from;
  const tr = transfer && Array.isArray(transfer.transferred) ? transfer.transferred.length : null;
  const re = transfer && Array.isArray(transfer.reinitialized) ? transfer.reinitialized.length : 0;
  const epochWords = init.epoch === undefined || init.epoch === null ? '' : `, epoch ${init.epoch}`;
  const subject = train.status === 'succeeded' || train.status === 'cached' ? 'The final model' : `The ${train.name} stage's model`;
  return html`<section class="card warmstart" data-testid="warm-start">
    <h2>Warm start</h2>
    <p style="margin:4px 0 8px">${subject} started from${' '}
      <${Link} href=${'/trials/' + enc(String(init.trial_id))}>${init.stage} trial ${init.trial_number}${epochWords}<//>
      ${value !== null ? html` (${metricName} <span class="num">${metric(value)}</span>)` : null}${tr !== null ? html`; <strong>${tr} of ${tr + re}</strong> tensors transferred${re ? `, ${re} re-initialised` : ''}` : null}.</p>
    <dl class="kv">
      <dt>checkpoint</dt><dd><${Digest} value=${init.checkpoint} href=${'/checkpoints/' + init.checkpoint} /></dd>
      ${init.rank ? html`<dt>selected as</dt><dd>rank ${init.rank} of ${init.stage} by ${metricName || 'the objective'}${init.objective && init.objective.mode ? ` (${init.objective.mode})` : ''}</dd>` : null}
      ${train.model ? html`<dt>final model</dt><dd><${Digest} value=${train.model.checkpoint} href=${'/checkpoints/' + train.model.checkpoint} />
        <span class="muted small"> after ${train.model.epochs} epochs of <${Link} href=${stageHref(run, train.name)}>${train.name}<//></span></dd>` : null}
    </dl></section>`;
}

function PipelineDoc({ id, pipe }) {
  const text = useMemo(() => (pipe.data ? JSON.stringify(pipe.data.pipeline, null, 2) : ''), [pipe.data]);
  const copy = (e) => { e.preventDefault(); navigator.clipboard && navigator.clipboard.writeText(text).then(() => toast('pipeline JSON copied')); };
  return html`<section class="card">
    <details data-testid="pipeline-json">
      <summary><h2 style="display:inline">Pipeline document</h2> <span class="muted small">${id ? html`id <span class="mono" title=${id}>${id.slice(0, 12)}</span>` : null}</span></summary>
      <div style="margin-top:10px">
        ${pipe.error ? html`<${ErrorState} error=${pipe.error} retry=${pipe.reload} />`
          : !pipe.data ? html`<${Loading} />`
          : html`<div class="row" style="margin-bottom:6px"><span class="spacer"></span><button onClick=${copy}>Copy JSON</button></div><pre>${text}</pre>`}
      </div></details></section>`;
}
