// A stage of a run: the header (name, type, status, timings, cache hit with
// the run it reused) from the run's StageJson (GET /runs/{run}: light,
// unlike the stage route with every trial), then the view of its type:
// tune, ablate, train (their own files) or prepare (here).
import { useEffect } from 'preact/hooks';
import { html, useApi, useCrumbs, Loading, ErrorState, PageHead, Digest, Card, Empty, when, duration } from '../ui.js';
import { Link, useTick } from '../router.js';
import { enc } from '../api.js';
import { TuneView } from './tune.js';
import { AblationView } from './ablation.js';
import { TrainView } from './train.js';

const LIVE = new Set(['running', 'pending']);
const VIEWS = { tune: TuneView, ablate: AblationView, train: TrainView };

export function StagePage({ run, stage }) {
  useCrumbs([{ label: run, href: '/runs/' + enc(run) }, { label: stage, href: `/runs/${enc(run)}/stages/${enc(stage)}` }], [run, stage]);
  const { data, error, reload } = useApi('/runs/' + enc(run));
  const info = data && (data.stages || []).find((s) => s.name === stage);
  const pipe = useApi(data && data.pipeline_id ? '/pipelines/' + enc(data.pipeline_id) : null);
  const spec = pipe.data && pipe.data.pipeline && pipe.data.pipeline.stages ? pipe.data.pipeline.stages[stage] : null;

  if (error && !data) {
    return html`<div data-page="stage"><${PageHead} title=${stage} />${error.status === 404
      ? html`<section class="card empty">There is no run <code>${run}</code> on this server. <${Link} href="/">See the runs<//>.</section>`
      : html`<${ErrorState} error=${error} retry=${reload} />`}</div>`;
  }
  if (!data) return html`<div data-page="stage"><${PageHead} title=${stage} /><section class="card"><${Loading} lines=${6} /></section></div>`;
  if (!info) {
    return html`<div data-page="stage"><${PageHead} title=${stage} />
      <section class="card empty">Run <${Link} href=${'/runs/' + enc(run)}>${run}<//> has no stage named <code>${stage}</code>${
        data.stages && data.stages.length ? html`; its stages are ${data.stages.map((s, i) => html`${i ? ', ' : ''}<${Link} href=${`/runs/${enc(run)}/stages/${enc(s.name)}`}>${s.name}<//>`)}` : ''}.</section></div>`;
  }

  const View = VIEWS[info.type];
  const cached = !!info.cached_from_stage;
  const meta = [
    html`<span class="tag" title="stage type">${info.type}</span>`,
    info.started_at > 0 ? html`<span>started ${when(info.started_at)}</span>` : html`<span>not started</span>`,
    info.started_at > 0 ? html`<span class="num" title="duration">${duration(info.started_at, info.finished_at)}${LIVE.has(info.status) ? ' so far' : ''}</span>` : null,
    cached ? html`<span class="badge cachehit" data-testid="cache-hit" title="this stage's inputs matched an earlier stage, whose output it reused">cache hit</span>` : null,
    html`<span>run <${Link} class="mono" href=${'/runs/' + enc(run)}>${run}<//></span>`,
  ];
  return html`<div data-page="stage">
    <${PageHead} title=${stage} status=${info.status} meta=${meta} />
    ${info.error ? html`<div class="run-error" role="alert" data-testid="stage-error"><strong>Stage ${info.status}:</strong> ${info.error}</div>` : null}
    ${cached ? html`<div class="callout" data-testid="cache-note">Cache hit: this stage's inputs (its spec and what it depends on) matched
      ${info.cached_from_run ? html` stage <${Link} href=${`/runs/${enc(info.cached_from_run)}/stages/${enc(stage)}`}>${stage}<//> of run${' '}
        <${Link} class="mono" href=${'/runs/' + enc(info.cached_from_run)}>${info.cached_from_run}<//>` : ' an earlier stage'},
      so it reused that output instead of running again${info.type === 'prepare' ? '' : ': what this page shows is that stage\'s work'}.</div>` : null}
    ${info.type === 'prepare' ? html`<${PrepareView} run=${run} stage=${stage} info=${info} spec=${spec} reload=${reload} />`
      : View ? html`<${View} run=${run} stage=${stage} info=${info} stageInfo=${info} spec=${spec} reload=${reload} />`
      : html`<section class="card empty">No view for stages of type <code>${info.type}</code>.</section>`}
  </div>`;
}

// A prepare stage: the dataset artifact it wrote and the spec it came from.
function PrepareView({ run, stage, info, spec, reload }) {
  const live = LIVE.has(info.status);
  const tick = useTick(2000, live);
  useEffect(() => { if (tick) reload(); }, [tick]);
  const digest = info.output;
  const lin = useApi(digest ? `/lineage?node=${enc('artifact:' + digest)}&direction=downstream&depth=1` : null);
  // The stages that read it, with how many of their trials did.
  const users = [];
  if (lin.data) {
    const by = new Map();
    for (const e of lin.data.edges || []) {
      const n = lin.data.nodes[e.src];
      if (!n || n.kind === 'artifact' || !n.stage) continue;
      const k = n.run_id + '/' + n.stage;
      if (!by.has(k)) { by.set(k, { run_id: n.run_id, stage: n.stage, trials: 0 }); users.push(by.get(k)); }
      if (n.kind === 'trial') by.get(k).trials++;
    }
  }
  const fields = spec ? Object.entries(spec).filter(([k]) => k !== 'type' && k !== 'depends_on') : [];
  const val = (v) => (v !== null && typeof v === 'object'
    ? html`<span class="mono">${Object.entries(v).map(([k, x], i) => html`${i ? ', ' : ''}${k}: ${typeof x === 'string' ? x : JSON.stringify(x)}`)}</span>`
    : html`<span class="mono">${String(v)}</span>`);
  return html`<div data-page="prepare" class="grid2">
    <${Card} title="Dataset artifact" data-testid="prepare-artifact">
      ${digest ? html`<dl class="kv">
          <dt>digest</dt><dd data-testid="artifact-digest"><${Digest} value=${digest} full=${true} /></dd>
          ${info.finished_at > 0 ? html`<dt>written</dt><dd>${when(info.finished_at)}</dd>` : null}
          ${info.cache_key ? html`<dt>cache key</dt><dd><${Digest} value=${info.cache_key} /></dd>` : null}
          ${users.length ? html`<dt>read by</dt><dd data-testid="artifact-users">${users.map((n, i) => html`${i ? ', ' : ''}<${Link} href=${`/runs/${enc(n.run_id)}/stages/${enc(n.stage)}`}>${n.stage}${n.run_id !== run ? ' of ' + n.run_id : ''}<//>${
              n.trials ? html`<span class="muted small"> (${n.trials} trial${n.trials === 1 ? '' : 's'})</span>` : null}`)}</dd>` : null}
        </dl>
        <p class="muted small" style="margin-bottom:0">The prepared dataset (split, subset, normalised) is stored once under this digest;
          every stage with the same prepare spec and source data reuses it.</p>`
        : html`<${Empty}>${live ? 'The dataset is being prepared: its artifact appears here when the stage finishes.' : 'This stage wrote no dataset artifact.'}<//>`}
    <//>
    <${Card} title="Spec" data-testid="prepare-spec">
      ${!spec ? html`<${Loading} />` : html`<dl class="kv">${fields.map(([k, v]) => html`<dt>${k.replace(/_/g, ' ')}</dt><dd>${val(v)}</dd>`)}</dl>`}
    <//>
  </div>`;
}
