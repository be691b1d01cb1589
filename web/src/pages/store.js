// The store: blobs and bytes on disk, bytes per run and stage (what each
// references, what it added, how many checkpoints), what deduplication
// saves, and garbage collection: a dry run listing what retention would
// release and which bytes would go, then apply (token, confirmed first).
import { useEffect, useMemo, useState } from 'preact/hooks';
import { html, useApi, useCrumbs, DataTable, Loading, ErrorState, Empty, Card, PageHead, Digest, bytes, toast } from '../ui.js';
import { Link, useQuery } from '../router.js';
import { enc, post, token } from '../api.js';
import { useSignal } from '../state.js';

const pct = (a, b) => (b > 0 ? ((100 * a) / b).toFixed(1) + ' %' : '–');

export function StorePage() {
  useCrumbs([{ label: 'Store' }], []);
  const stats = useApi('/store/stats');
  const [group, setGroup] = useQuery('by', 'stage');
  const [sort, setSort] = useQuery('sort', 'referenced_bytes');
  const [dir, setDir] = useQuery('dir', 'desc');
  const d = stats.data;
  const rows = (d && d.stages) || [];
  const sums = useMemo(() => rows.reduce((a, r) => ({
    referenced: a.referenced + (r.referenced_bytes || 0), fresh: a.fresh + (r.new_bytes || 0), checkpoints: a.checkpoints + (r.checkpoints || 0),
  }), { referenced: 0, fresh: 0, checkpoints: 0 }), [rows]);
  const byRun = useMemo(() => {
    const m = new Map();
    for (const r of rows) {
      const x = m.get(r.run_id) || { run_id: r.run_id, stage: null, stages: 0, checkpoints: 0, referenced_bytes: 0, new_bytes: 0 };
      x.stages++; x.checkpoints += r.checkpoints || 0; x.referenced_bytes += r.referenced_bytes || 0; x.new_bytes += r.new_bytes || 0;
      m.set(r.run_id, x);
    }
    return [...m.values()];
  }, [rows]);
  const saved = Math.max(0, sums.referenced - sums.fresh);

  const columns = [
    { key: 'run_id', label: 'Run', mono: true, value: (r) => r.run_id, render: (r) => html`<${Link} href=${'/runs/' + enc(r.run_id)}>${r.run_id}<//>` },
    group === 'run'
      ? { key: 'stages', label: 'Stages', num: true, value: (r) => r.stages }
      : { key: 'stage', label: 'Stage', value: (r) => r.stage, render: (r) => html`<${Link} href=${`/runs/${enc(r.run_id)}/stages/${enc(r.stage)}`}>${r.stage}<//>` },
    { key: 'checkpoints', label: 'Checkpoints', num: true, value: (r) => r.checkpoints },
    { key: 'referenced_bytes', label: 'Referenced', num: true, title: 'bytes of every blob its checkpoints refer to, shared or not', value: (r) => r.referenced_bytes, render: (r) => bytes(r.referenced_bytes) },
    { key: 'new_bytes', label: 'New', num: true, title: 'bytes of the blobs it stored first (what it added to the disk)', value: (r) => r.new_bytes, render: (r) => bytes(r.new_bytes) },
    { key: 'shared', label: 'Shared', num: true, title: 'referenced bytes that were already stored (deduplicated)', value: (r) => r.referenced_bytes - r.new_bytes,
      render: (r) => bytes(Math.max(0, r.referenced_bytes - r.new_bytes)) },
    { key: 'share', label: 'Of the disk', num: true, title: 'its new bytes as a share of the store', value: (r) => r.new_bytes,
      render: (r) => html`<span class="sharebar"><span style=${{ width: (d && d.bytes ? Math.min(100, (100 * r.new_bytes) / d.bytes) : 0) + '%' }}></span></span><span class="sharepct">${pct(r.new_bytes, d && d.bytes)}</span>` },
  ];

  return html`<div data-page="store">
    <${PageHead} title="Store" meta=${['blobs on disk, bytes per run and stage, garbage collection']}
      actions=${html`<button onClick=${stats.reload} disabled=${stats.loading}>Refresh</button>`} />
    ${stats.error && !d ? html`<${ErrorState} error=${stats.error} retry=${stats.reload} />`
      : !d ? html`<section class="card"><${Loading} lines=${5} /></section>`
      : html`
        <div class="stat-row" data-testid="store-totals">
          <div class="stat"><div class="stat-label">Stored</div><div class="stat-value">${bytes(d.bytes)}</div><div class="muted small">${d.blobs.toLocaleString()} blobs</div></div>
          <div class="stat"><div class="stat-label">Checkpoints</div><div class="stat-value">${sums.checkpoints.toLocaleString()}</div><div class="muted small">in ${rows.length} stages of ${byRun.length} runs</div></div>
          <div class="stat"><div class="stat-label">Referenced by stages</div><div class="stat-value">${bytes(sums.referenced)}</div><div class="muted small">what they would take without sharing</div></div>
          <div class="stat" data-testid="dedup"><div class="stat-label">Saved by deduplication</div><div class="stat-value">${bytes(saved)}</div>
            <div class="muted small">${sums.referenced > 0 ? `${pct(saved, sums.referenced)} of referenced bytes; ${(sums.referenced / Math.max(1, sums.fresh)).toFixed(2)}× less` : 'nothing referenced yet'}</div></div>
        </div>
        <${Card} title="Bytes per ${group === 'run' ? 'run' : 'run and stage'}" right=${html`<span class="row" role="group" aria-label="group by">
            <button class="chip" aria-pressed=${group === 'stage'} onClick=${() => setGroup('stage')}>by stage</button>
            <button class="chip" aria-pressed=${group === 'run'} onClick=${() => setGroup('run')}>by run</button></span>`}>
          <${DataTable} testid="store-table" columns=${columns} rows=${group === 'run' ? byRun : rows} rowKey=${(r) => r.run_id + '/' + (r.stage || '')}
            sort=${sort} dir=${dir} onSort=${(k, x) => { setSort(k); setDir(x); }} maxHeight=${420}
            empty="No checkpoints stored yet: the stages of a run store one per trial epoch." />
          <p class="muted small" style="margin:8px 0 0">Referenced counts every blob a stage's checkpoints point at; New counts the blobs it stored first.
            A warm start (<code>init_from</code>) or an unchanged tensor costs no new bytes.</p>
        <//>`}
    <${Gc} onDone=${stats.reload} />
  </div>`;
}

// Garbage collection: a dry run first (automatic when a token is set, as
// POST needs one on most servers), then apply after a confirmation.
function Gc({ onDone }) {
  const t = useSignal(token);
  const [plan, setPlan] = useState(null);      // the dry run's GcJson
  const [applied, setApplied] = useState(null); // the apply's GcJson
  const [busy, setBusy] = useState('');
  const [err, setErr] = useState(null);
  const [confirming, setConfirming] = useState(false);
  const dry = async () => {
    setBusy('dry'); setErr(null);
    try { setPlan(await post('/store:gc', {})); } catch (e) { setErr(e); } finally { setBusy(''); }
  };
  useEffect(() => { if (t && !plan) dry(); }, [t]);
  const apply = async () => {
    setBusy('apply'); setErr(null); setConfirming(false);
    try {
      const r = await post('/store:gc', { apply: true });
      setApplied(r);
      toast(`store gc freed ${bytes(r.bytes_freed)}`);
      onDone();
      setPlan(await post('/store:gc', {}));
    } catch (e) { setErr(e); toast(e.message, true); } finally { setBusy(''); }
  };
  const nothing = plan && plan.unreferenced_blobs === 0 && plan.released_checkpoints === 0;
  return html`<${Card} title="Garbage collection" data-testid="gc" right=${html`
      <button data-testid="gc-dry-run" onClick=${dry} disabled=${!!busy}>${busy === 'dry' ? '…' : ''}${plan ? 'Dry run again' : 'Dry run'}</button>
      <button data-testid="gc-apply" class="danger" onClick=${() => setConfirming(true)} disabled=${!!busy || !plan || nothing}
        title=${!plan ? 'run a dry run first to see what would go' : nothing ? 'nothing to free' : 'release and delete what the dry run lists'}>${busy === 'apply' ? '…' : ''}Apply…</button>`}>
    <p class="muted small" style="margin-top:0">Retention releases the checkpoints each stage's <code>checkpoints.keep</code> does not keep
      (unfinished and pinned runs, and what a pending <code>init_from</code> may select, are kept), then deletes the blobs nothing kept refers to.
      Safe while runs write. The dry run changes nothing.</p>
    ${applied ? html`<div class="callout" data-testid="gc-applied" role="status"><strong>Applied:</strong> ${bytes(applied.bytes_freed)} freed —${' '}
      ${applied.unreferenced_blobs} blob${applied.unreferenced_blobs === 1 ? '' : 's'} deleted, ${applied.released_checkpoints} checkpoint${applied.released_checkpoints === 1 ? '' : 's'} released${
      applied.spared_blobs ? `; ${applied.spared_blobs} (${bytes(applied.spared_bytes)}) spared because a writer just used them: a later gc frees them` : ''}.</div>` : null}
    ${confirming && plan ? html`<div class="confirm" role="alertdialog" aria-labelledby="gc-confirm-text" data-testid="gc-confirm">
        <div id="gc-confirm-text"><strong>Delete for good?</strong> This releases ${plan.released_checkpoints} checkpoint${plan.released_checkpoints === 1 ? '' : 's'}${' '}
          and deletes ${plan.unreferenced_blobs} blob${plan.unreferenced_blobs === 1 ? '' : 's'} (${bytes(plan.bytes)}). Their lineage stays; their weights cannot be downloaded again.</div>
        <div class="row" style="margin-top:8px"><span class="spacer"></span>
          <button onClick=${() => setConfirming(false)} autofocus>Keep them</button>
          <button class="danger" data-testid="gc-confirm-apply" onClick=${apply}>Delete ${bytes(plan.bytes)}</button></div></div>` : null}
    ${err ? html`<${ErrorState} error=${err} retry=${dry} />` : null}
    ${!plan && !err ? html`<${Empty}>${busy ? 'Running a dry run…' : html`Run a dry run to see what garbage collection would free.${t ? '' : html`<br /><span class="small">It needs the API token on most servers.</span>`}`}<//>` : null}
    ${plan ? html`<${GcPlan} plan=${plan} />` : null}
  <//>`;
}

function GcPlan({ plan }) {
  const cols = [
    { key: 'run_id', label: 'Run', mono: true, render: (r) => html`<${Link} href=${'/runs/' + enc(r.run_id)}>${r.run_id}<//>` },
    { key: 'stage', label: 'Stage', render: (r) => html`<${Link} href=${`/runs/${enc(r.run_id)}/stages/${enc(r.stage)}`}>${r.stage}<//>` },
    { key: 'checkpoints', label: 'Checkpoints released', num: true },
  ];
  return html`<div data-testid="gc-plan">
    <div class="stat-row">
      <div class="stat"><div class="stat-label">Would free</div><div class="stat-value" data-testid="gc-bytes">${bytes(plan.bytes)}</div>
        <div class="muted small">${plan.unreferenced_blobs} of ${plan.blobs_scanned} blobs unreferenced</div></div>
      <div class="stat"><div class="stat-label">Checkpoints released</div><div class="stat-value">${plan.released_checkpoints}</div>
        <div class="muted small">${plan.kept_checkpoints} kept</div></div>
      ${plan.spared_blobs ? html`<div class="stat"><div class="stat-label">Spared</div><div class="stat-value">${bytes(plan.spared_bytes)}</div><div class="muted small">${plan.spared_blobs} blobs just used by a writer</div></div>` : null}
    </div>
    ${plan.unreferenced_blobs === 0 && plan.released_checkpoints === 0
      ? html`<${Empty}>Nothing to collect: every blob is referenced by a kept run, checkpoint or artifact.<//>`
      : html`
        <h3 style="margin-top:12px">Checkpoints retention would release</h3>
        <${DataTable} testid="gc-released" columns=${cols} rows=${plan.released || []} rowKey=${(r) => r.run_id + '/' + r.stage} maxHeight=${260}
          empty="None: every checkpoint is kept by its stage's policy, a pin or a reference." />
        ${plan.blobs && plan.blobs.length ? html`<details style="margin-top:10px"><summary>${plan.unreferenced_blobs} unreferenced blob${plan.unreferenced_blobs === 1 ? '' : 's'}${plan.blobs.length < plan.unreferenced_blobs ? ` (first ${plan.blobs.length} shown)` : ''}</summary>
          <ul class="bloblist">${plan.blobs.map((b) => html`<li><${Digest} value=${b} /></li>`)}</ul></details>` : null}`}
  </div>`;
}
