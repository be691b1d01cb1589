// The runs list (home page): status, pipeline, start, duration, stage
// progress, best objective and where the final model's weights came from;
// filter by status, sort by any column, pages through page_token. Rows of
// running runs update by themselves (polling while one is unfinished).
import { useEffect } from 'preact/hooks';
import { html, useApi, useCrumbs, DataTable, Badge, Loading, ErrorState, Empty, when, duration, metric, PageHead } from '../ui.js';
import { Link, useQuery, useTick } from '../router.js';
import { enc } from '../api.js';

const FILTERS = ['all', 'running', 'pending', 'succeeded', 'failed', 'interrupted', 'cancelled'];
const PAGE = 50;

export function initWords(init) {
  if (!init) return null;
  const epoch = init.epoch === undefined || init.epoch === null ? '' : `, epoch ${init.epoch}`;
  return `${init.stage} trial ${init.trial_number}${epoch}`;
}

export function RunsPage() {
  useCrumbs([], []);
  const [status, setStatus] = useQuery('status', 'all');
  const [sort, setSort] = useQuery('sort', 'created_at');
  const [dir, setDir] = useQuery('dir', 'desc');
  const [page, setPage] = useQuery('page', '');
  const q = new URLSearchParams({ max_results: String(PAGE) });
  if (status !== 'all') q.set('status', status);
  if (page) q.set('page_token', page);
  const { data, error, loading, reload } = useApi('/runs?' + q.toString());
  const runs = (data && data.runs) || [];
  const live = runs.some((r) => r.status === 'running' || r.status === 'pending');
  // Every 2 s while a run on the page is unfinished; every 10 s otherwise,
  // so that runs started elsewhere (CLI, API, another tab) appear too.
  const tick = useTick(live ? 2000 : 10000, true);
  useEffect(() => { if (tick) reload(); }, [tick]);

  const columns = [
    { key: 'run_id', label: 'Run', mono: true, value: (r) => r.run_id, render: (r) => html`<${Link} href=${'/runs/' + enc(r.run_id)}>${r.run_id}<//>` },
    { key: 'pipeline', label: 'Pipeline', value: (r) => r.pipeline },
    { key: 'status', label: 'Status', value: (r) => r.status, render: (r) => html`<${Badge} status=${r.status} title=${r.error || r.status} />` },
    { key: 'created_at', label: 'Started', num: true, value: (r) => r.created_at, render: (r) => when(r.created_at) },
    { key: 'duration', label: 'Duration', num: true, value: (r) => (r.finished_at > 0 ? r.finished_at : Date.now() / 1000) - r.created_at, render: (r) => duration(r.created_at, r.finished_at) },
    { key: 'progress', label: 'Stages', value: (r) => (r.summary ? r.summary.stages_finished / Math.max(1, r.summary.stages_total) : 0), render: (r) => progress(r.summary) },
    { key: 'best', label: 'Best objective', num: true, value: (r) => r.summary && r.summary.best ? r.summary.best.value : null,
      render: (r) => r.summary && r.summary.best ? html`<span title=${`${r.summary.best.metric} (${r.summary.best.mode}) of ${r.summary.best.stage} trial ${r.summary.best.trial_number}`}>${metric(r.summary.best.value)} <span class="muted small">${r.summary.best.metric}</span></span>` : html`<span class="muted">–</span>` },
    { key: 'init', label: 'Final model from', value: (r) => initWords(r.summary && r.summary.init_from) || '', render: (r) => initWords(r.summary && r.summary.init_from) || html`<span class="muted">–</span>` },
  ];
  const chips = FILTERS.map((f) => html`<button class="chip" aria-pressed=${status === f} onClick=${() => { setPage(''); setStatus(f); }}>${f}</button>`);
  return html`<div data-page="runs">
    <${PageHead} title="Runs" meta=${[data ? `${runs.length} shown` : null, live ? html`<span class="live"><span class="dot"></span>live</span>` : null]}
      actions=${html`<${Link} class="btn primary" href="/new">New run<//>`} />
    <section class="card">
      <div class="row" style="margin-bottom:10px" role="group" aria-label="filter by status">${chips}</div>
      ${error && !data ? html`<${ErrorState} error=${error} retry=${reload} />`
        : !data && loading ? html`<${Loading} />`
        : !runs.length ? html`<${Empty}>${status === 'all' ? html`No runs yet. Start one with <code>baton --server URL run PIPELINE.json</code> or <${Link} href="/new">paste a pipeline<//>.` : `No ${status} runs.`}<//>`
        : html`<${DataTable} testid="runs-table" columns=${columns} rows=${runs} rowKey=${(r) => r.run_id} sort=${sort} dir=${dir}
            onSort=${(k, d) => { setSort(k); setDir(d); }} maxHeight=${640} />`}
      <div class="row" style="margin-top:10px">
        <button disabled=${!page} onClick=${() => setPage('')}>First page</button>
        <span class="spacer"></span>
        <button disabled=${!(data && data.next_page_token)} onClick=${() => setPage(data.next_page_token)}>Next page</button>
      </div>
    </section></div>`;
}

function progress(s) {
  if (!s) return html`<span class="muted">–</span>`;
  return html`<span class="row" style="gap:4px; flex-wrap:nowrap" title=${s.stages.map((x) => `${x.name}: ${x.status}`).join('\n')}>
    <span class="num" style="min-width:34px">${s.stages_finished}/${s.stages_total}</span>
    ${s.stages.map((x) => html`<span class=${'badge st-' + x.status} style="padding:0 5px; font-weight:500">${x.name}</span>`)}</span>`;
}
