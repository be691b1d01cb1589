// A checkpoint: what it is (trial, epoch), its tensors and which other
// checkpoints share each blob, a safetensors download (a signed link, never
// loaded into the page), its lineage as a graph (upstream: dataset → trial
// → epoch; downstream: the models initialised from it), the init_from uses
// in words, and a tensor-level diff against another checkpoint (URL: with=)
// with tensors that never change across the trial's epochs flagged.
import { useEffect, useMemo, useState } from 'preact/hooks';
import { html, useApi, useCrumbs, DataTable, Loading, ErrorState, Empty, Card, Digest, PageHead, ActionButton, bytes, short, toast } from '../ui.js';
import { Link, useQuery, navigate } from '../router.js';
import { enc, get, downloadSafetensors } from '../api.js';
import { Graph } from '../graph.js';

const RELEASED = /released by baton store gc/;
const isDigest = (s) => /^[0-9a-f]{64}$/.test(s);

// "tune trial 3, epoch 2" from a lineage node's description.
export function checkpointWords(d) {
  if (!d || d.trial_number === undefined) return null;
  const ep = d.epoch < 0 ? 'initial weights' : `epoch ${d.epoch}`;
  return `${d.stage} trial ${d.trial_number}, ${ep}`;
}

export function CheckpointPage({ digest }) {
  const ck = useApi(`/checkpoints/${enc(digest)}`);
  const up = useApi(`/lineage?node=${enc(digest)}&direction=upstream&depth=4`);
  const down = useApi(`/lineage?node=${enc(digest)}&direction=downstream&depth=2`);
  const [withD, setWith] = useQuery('with', '');
  const [gc, setGc] = useQuery('gc', '');
  const released = ck.error && ck.error.status === 404 && RELEASED.test(ck.error.message);
  const me = up.data && up.data.nodes ? up.data.nodes['checkpoint:' + digest] : null;
  const words = checkpointWords(me);
  const recorded = (ck.data && ck.data.recorded) || (me && me.trial_id !== undefined ? { trial_id: me.trial_id, epoch: me.epoch } : null);
  const trial = useTrial(recorded && recorded.trial_id, me);

  useCrumbs(me && me.run_id ? [
    { label: me.run_id, href: '/runs/' + enc(me.run_id) },
    { label: me.stage, href: `/runs/${enc(me.run_id)}/stages/${enc(me.stage)}` },
    { label: `trial ${me.trial_number}`, href: '/trials/' + me.trial_id },
    { label: (me.epoch < 0 ? 'initial ' : `epoch ${me.epoch} `) + short(digest) },
  ] : [{ label: 'checkpoint ' + short(digest) }], [digest, me && me.run_id]);

  if (!isDigest(digest)) {
    return html`<div data-page="checkpoint"><${PageHead} title="Checkpoint" /><div class="card"><${Empty}>
      “${digest}” is not a checkpoint digest (64 hexadecimal characters).<//></div></div>`;
  }
  const d = ck.data;
  const head = html`<${PageHead} title=${html`Checkpoint <span class="muted" style="font-weight:400">${words || ''}</span>`}
    meta=${[html`<span data-testid="digest"><${Digest} value=${digest} full /></span>`,
      d ? `${d.tensors.length} tensors` : null, d ? bytes(d.total_bytes) : null, d && d.kind ? d.kind : null]}
    actions=${released ? null : html`<${ActionButton} class="primary" data-testid="download" disabled=${!d}
      run=${() => downloadSafetensors(digest)} done="download started">Download safetensors<//>`} />`;
  const lineage = html`<${Card} title="Lineage" right=${html`<span class="muted small">what it came from (left) and what started from it (right) · nodes link to their pages · drag, wheel, double-click to fit</span>
      <button data-testid="gc-overlay" aria-pressed=${gc ? 'true' : 'false'} title="what store gc would keep (and why) and release, drawn on the graph; changes nothing"
        onClick=${() => setGc(gc ? '' : '1')}>${gc ? 'Hide gc dry run' : 'Show gc dry run'}</button>`}>
      ${up.error && down.error ? html`<${ErrorState} error=${up.error} retry=${() => { up.reload(); down.reload(); }} />`
        : !up.data && !down.data ? html`<${Loading} lines=${4} />`
        : html`<${Lineage} up=${up.data} down=${down.data} digest=${digest} gc=${!!gc} trial=${trial} />`}
    <//>`;
  const uses = html`<${InitUses} down=${down.data} digest=${digest} run=${me && me.run_id} />`;
  const diff = released ? null : html`<${Diff} digest=${digest} data=${d} withD=${withD} setWith=${setWith} trial=${trial} recorded=${recorded} down=${down.data} up=${up.data} />`;
  return html`<div data-page="checkpoint">
    ${head}
    ${released ? html`<div class="callout released" data-testid="released" role="status"><strong>Weights released.</strong>${' '}This checkpoint was released by <code>baton store gc</code> (its stage's <code>checkpoints.keep</code> did not keep it):
      its lineage is kept below, its tensors are not. ${recorded ? html`Its trial: <${Link} href=${'/trials/' + recorded.trial_id}>${me && me.stage ? `${me.stage} trial ${me.trial_number}` : 'trial ' + recorded.trial_id}<//>.` : null}</div>`
      : ck.error ? html`<${ErrorState} error=${ck.error} retry=${ck.reload} />` : null}
    ${lineage}
    <div class=${'ck-row' + (withD && !released ? ' stacked' : '')}>${uses}${diff}</div>
    ${released ? null : html`<${Card} title="Tensors" right=${d ? html`<span class="muted small">${d.tensors.length} tensors · ${bytes(d.total_bytes)} · shared blobs link to the other checkpoints holding them</span>` : null}>
      ${!d ? html`<${Loading} lines=${6} />` : html`<${Tensors} data=${d} trial=${trial} digest=${digest} />`}
    <//>`}
  </div>`;
}

// The checkpoint's trial (its epochs, for prev/next and the frozen check).
function useTrial(id, me) {
  const [state, setState] = useState(null);
  useEffect(() => {
    if (id === undefined || id === null) return undefined;
    let alive = true;
    get(`/trials/${id}`).catch(() => (me && me.run_id
      ? get(`/runs/${enc(me.run_id)}/stages/${enc(me.stage)}/trials`).then((x) => x.trials.find((t) => t.trial_id === id) || null)
      : null)).then((t) => alive && setState(t), () => alive && setState(null));
    return () => { alive = false; };
  }, [id, me && me.run_id]);
  return state;
}

// Names this trial's checkpoints by epoch, for links ("epoch 2").
function epochNames(trial) {
  const m = new Map();
  if (!trial) return m;
  if (trial.initial_checkpoint) m.set(trial.initial_checkpoint, 'initial');
  for (const e of trial.epochs || []) if (e.checkpoint) m.set(e.checkpoint, 'epoch ' + e.epoch);
  return m;
}

// Blobs that stay the same in every checkpoint of the trial (at most 50
// manifests read): a frozen layer, or a bug.
function useFrozen(trial, digest) {
  const [frozen, setFrozen] = useState(null);
  useEffect(() => {
    if (!trial) return undefined;
    const list = [...(trial.epochs || []).filter((e) => e.checkpoint && !e.released).map((e) => e.checkpoint)];
    if (trial.initial_checkpoint && !trial.initial_checkpoint_released) list.unshift(trial.initial_checkpoint);
    const digests = [...new Set(list)].slice(0, 50);
    if (digests.length < 2 || !digests.includes(digest)) { setFrozen(null); return undefined; }
    let alive = true;
    Promise.all(digests.map((x) => get(`/checkpoints/${x}`).catch(() => null))).then((all) => {
      if (!alive) return;
      const got = all.filter(Boolean);
      if (got.length < 2) return;
      const blobs = new Map();
      for (const c of got) for (const t of c.tensors) (blobs.get(t.name) || blobs.set(t.name, new Set()).get(t.name)).add(t.blob);
      const same = new Set();
      for (const [name, set] of blobs) if (set.size === 1) same.add(name);
      setFrozen({ names: same, checkpoints: got.length });
    });
    return () => { alive = false; };
  }, [trial && trial.trial_id, digest]);
  return frozen;
}

function Tensors({ data, trial, digest }) {
  const [sort, setSort] = useQuery('sort', '');
  const [dir, setDir] = useQuery('dir', 'asc');
  const [filter, setFilter] = useQuery('q', '');
  const names = useMemo(() => epochNames(trial), [trial]);
  const frozen = useFrozen(trial, digest);
  const rows = data.tensors.filter((t) => !filter || t.name.toLowerCase().includes(filter.toLowerCase()));
  const sharedLink = (x) => html`<${Link} href=${'/checkpoints/' + x} title=${x} class="mono">${names.get(x) || short(x)}<//>`;
  const columns = [
    { key: 'name', label: 'Tensor', mono: true, render: (t) => html`<span>${t.name}${frozen && frozen.names.has(t.name)
      ? html` <span class="tag frozen" title=${`the same blob in all ${frozen.checkpoints} checkpoints of this trial`}>unchanged in every epoch: frozen?</span>` : null}</span>` },
    { key: 'dtype', label: 'dtype', mono: true },
    { key: 'shape', label: 'Shape', mono: true, value: (t) => t.shape.reduce((a, b) => a * b, 1), render: (t) => `[${t.shape.join(', ')}]` },
    { key: 'bytes', label: 'Bytes', num: true, render: (t) => html`<span title=${t.bytes + ' bytes'}>${bytes(t.bytes)}</span>` },
    { key: 'blob', label: 'Blob', render: (t) => html`<${Digest} value=${t.blob} />` },
    { key: 'shared', label: 'Shared with', value: (t) => t.shared_with.length, render: (t) => (t.shared_with.length
      ? html`<span class="shared">${t.shared_with.slice(0, 4).map((x, i) => html`${i ? ', ' : ''}${sharedLink(x)}`)}${t.shared_with.length > 4
        ? html` <span class="muted" title=${t.shared_with.slice(4).join('\n')}>+${t.shared_with.length - 4}${t.shared_with.length >= 100 ? '+' : ''} more</span>` : null}</span>`
      : html`<span class="muted">only here</span>`) },
  ];
  return html`
    <div class="row" style="margin-bottom:8px">
      <input type="search" placeholder="filter tensors" aria-label="filter tensors" value=${filter} onInput=${(e) => setFilter(e.currentTarget.value)} style="width:240px" />
      ${frozen ? html`<span class="muted small">${frozen.names.size ? `${frozen.names.size} tensor(s) unchanged across the trial's ${frozen.checkpoints} checkpoints` : `every tensor changes across the trial's ${frozen.checkpoints} checkpoints`}</span>` : null}
    </div>
    <${DataTable} testid="tensors-table" columns=${columns} rows=${rows} rowKey=${(t) => t.name} sort=${sort} dir=${dir}
      onSort=${(k, d) => { setSort(k); setDir(d); }} maxHeight=${420} empty=${filter ? 'No tensor matches the filter.' : 'This checkpoint has no tensors.'} />`;
}

// ---- lineage ----

const EDGE_WORDS = { initialized_from: 'initialised from', resumed_from: 'resumed from', hyperparameters_from: 'hyperparameters', trained_on: 'trained on', model_from: 'model file' };

// A lineage node's bytes (checkpoints and datasets carry them), for its corner.
const sizeOf = (d) => (typeof d.bytes === 'number' ? bytes(d.bytes) : undefined);

function nodeOf(id, d, current) {
  const kind = id.slice(0, id.indexOf(':'));
  const key = id.slice(id.indexOf(':') + 1);
  d = d || {};
  if (kind === 'checkpoint') {
    return { id, title: d.trial_number !== undefined ? (d.epoch < 0 ? 'initial weights' : `epoch ${d.epoch}`) : 'checkpoint',
      sub: d.stage ? `${d.stage} trial ${d.trial_number}` : '', sub2: short(key), href: '/checkpoints/' + key, current,
      right: sizeOf(d) };
  }
  if (kind === 'trial') {
    return { id, title: d.stage ? `${d.stage} trial ${d.trial_number}` : 'trial ' + key, status: d.status, sub: `trial id ${key}`,
      sub2: d.run_id ? 'run ' + d.run_id : '', href: '/trials/' + key };
  }
  if (kind === 'stage') {
    return { id, title: d.stage ? `stage ${d.stage}` : 'stage ' + key, status: d.status, sub: d.type || '', sub2: d.run_id ? 'run ' + d.run_id : '',
      href: d.run_id ? `/runs/${enc(d.run_id)}/stages/${enc(d.stage)}` : null };
  }
  if (kind === 'artifact') {
    const a = d.artifact || {};
    const m = a.meta || {};
    const path = m.source && m.source.path ? String(m.source.path).split('/').filter(Boolean).pop() : '';
    const split = ['train', 'validation', 'test'].filter((k) => typeof m[k] === 'number').map((k) => `${m[k]} ${k === 'validation' ? 'val' : k}`).join(' · ');
    return { id, title: a.kind || 'dataset', sub: [path, short(key)].filter(Boolean).join(' · '), sub2: split,
      right: sizeOf(d) };
  }
  if (kind === 'run') return { id, title: 'run ' + key, href: '/runs/' + enc(key) };
  return { id, title: id };
}

// Short labels (the full text in the edge's title): "11/11" tensors
// transferred by an init_from, words for the other kinds.
function transferText(a) {
  const tr = (a.transferred || []).length, re = (a.reinitialized || []).length;
  return { short: `${tr}/${tr + re}`, long: `${tr} of ${tr + re} tensors transferred${re ? `; re-initialised: ${a.reinitialized.join(', ')}` : ''}` };
}
function edgeLabel(e) {
  const a = e.attrs || {};
  if (e.kind === 'initialized_from' && a.transferred) {
    const t = transferText(a);
    return { label: t.short, title: `initialised from it: ${t.long}` };
  }
  if (e.kind === 'resumed_from') {
    // An ASHA promotion goes on from its rung's checkpoint; a retry from
    // the last epoch the failed attempt stored.
    if (a.promoted) return { label: 'promoted', title: 'ASHA promotion: resumed from this checkpoint' };
    if (a.after) return { label: `retry${a.attempt ? ' ' + a.attempt : ''}`, title: `attempt ${a.attempt || '?'} resumed from it after: ${a.after}` };
  }
  if (e.kind === 'partitioned') {
    // Importance-aware data-parallel partitioning: which examples each rank trained on.
    const sizes = (a.examples || []).join(' / ');
    return { label: `partitioned (${a.heuristic || 'importance'})`,
      title: `ranks trained on partitions of ${sizes || '?'} examples, scored at epoch ${a.scored_at_epoch ?? '?'}` };
  }
  return { label: EDGE_WORDS[e.kind] || '', title: '' };
}

// Upstream and downstream merged; a trial's epochs collapse into one node
// when the graph would have more than 12 nodes, and when more than three
// trials started from the checkpoint, they collapse into one node per stage
// (the "used as init_from" list beside the graph names each).
export function lineageGraph(up, down, digest) {
  const nodes = new Map();
  const edges = [];
  const seen = new Set();
  for (const part of [up, down]) {
    if (!part) continue;
    for (const [id, d] of Object.entries(part.nodes || {})) if (!nodes.has(id) && (!id.startsWith('run:') || id === part.node)) nodes.set(id, d);
    for (const e of part.edges || []) {
      // The stage node names its run, and its trials say what they trained
      // on: run nodes and stage-level trained_on edges only add clutter.
      if (e.dst.startsWith('run:') || e.src.startsWith('run:') || (e.kind === 'trained_on' && e.src.startsWith('stage:'))) continue;
      const k = e.src + '|' + e.dst + '|' + e.kind;
      if (!seen.has(k)) { seen.add(k); edges.push(e); }
    }
  }
  const me = 'checkpoint:' + digest;
  // Checkpoints that matter on their own: this one and those that others start from.
  const keep = new Set([me]);
  for (const e of edges) if (e.kind === 'initialized_from' || e.kind === 'resumed_from') keep.add(e.dst);
  const group = new Map();  // node id -> the id of the node it is drawn in
  // The trials that started from this checkpoint, by run and stage.
  const users = edges.filter((e) => e.kind === 'initialized_from' && e.dst === me && nodes.has(e.src));
  const userGroups = new Map();  // group id -> {run_id, stage, trials: [{id, d, edge}]}
  if (users.length > 3) {
    for (const e of users) {
      const d = nodes.get(e.src);
      const gid = `users:${d.run_id || ''}|${d.stage || ''}`;
      (userGroups.get(gid) || userGroups.set(gid, { run_id: d.run_id, stage: d.stage, trials: [] }).get(gid)).trials.push({ id: e.src, d, edge: e });
    }
    for (const [gid, u] of userGroups) {
      if (u.trials.length < 2) { userGroups.delete(gid); continue; }
      const tids = new Set(u.trials.map((t) => String(t.id.slice(t.id.indexOf(':') + 1))));
      let cps = 0;
      for (const [id, d] of nodes) {
        if (id.startsWith('checkpoint:') && !keep.has(id) && d.trial_id !== undefined && tids.has(String(d.trial_id))) { group.set(id, gid); nodes.delete(id); cps += 1; }
      }
      u.checkpoints = cps;
      for (const t of u.trials) { group.set(t.id, gid); nodes.delete(t.id); }
      u.trials.sort((a, b) => a.d.trial_number - b.d.trial_number);
      nodes.set(gid, { kind: 'users', ...u });
    }
  }
  const folded = new Map();  // trial id -> its collapsed checkpoints
  if (nodes.size > 12) {
    const byTrial = new Map();
    for (const [id, d] of nodes) {
      if (!id.startsWith('checkpoint:') || keep.has(id) || d.trial_id === undefined) continue;
      (byTrial.get(d.trial_id) || byTrial.set(d.trial_id, []).get(d.trial_id)).push(id);
    }
    for (const [tid, ids] of byTrial) {
      if (ids.length < 2) continue;
      const d = nodes.get(ids[0]);
      const epochs = ids.map((x) => nodes.get(x).epoch).sort((a, b) => a - b);
      // Into the trial's own node when the graph has it, else one node per trial.
      const trialId = `trial:${tid}`;
      const gid = nodes.has(trialId) ? trialId : `epochs:${tid}`;
      for (const id of ids) group.set(id, gid);
      if (gid === trialId) folded.set(trialId, { count: ids.length, epochs });
      else nodes.set(gid, { kind: 'group', count: ids.length, trial_id: tid, stage: d.stage, trial_number: d.trial_number, epochs });
      for (const id of ids) nodes.delete(id);
    }
  }
  // The checkpoints each drawn node stands for (its own, or those folded
  // into it), for overlays such as the gc dry run.
  const members = new Map();
  const add = (nodeId, id) => {
    if (!id.startsWith('checkpoint:')) return;
    (members.get(nodeId) || members.set(nodeId, []).get(nodeId)).push(id.slice(id.indexOf(':') + 1));
  };
  for (const [id, gid] of group) add(gid, id);
  for (const id of nodes.keys()) add(id, id);
  const out = [];
  for (const [id, d] of nodes) {
    if (d.kind === 'users') {
      const st = [...new Set(d.trials.map((t) => t.d.status).filter(Boolean))];
      const nums = d.trials.map((t) => t.d.trial_number);
      out.push({ id, title: `${d.stage}: ${d.trials.length} trials`, status: st.length === 1 ? st[0] : undefined,
        sub: [clipList('trials ', nums), d.checkpoints ? `${d.checkpoints} checkpoints` : ''].filter(Boolean).join(' · ').length <= 30
          ? [clipList('trials ', nums), d.checkpoints ? `${d.checkpoints} checkpoints` : ''].filter(Boolean).join(' · ') : clipList('trials ', nums),
        sub2: d.run_id ? 'run ' + d.run_id : '',
        href: d.run_id && d.stage ? `/runs/${enc(d.run_id)}/stages/${enc(d.stage)}` : null });
    } else if (d.kind === 'group') {
      const eps = d.epochs.filter((x) => x >= 0);
      out.push({ id, title: `${d.count} checkpoints`, sub: `${d.stage} trial ${d.trial_number}`,
        sub2: eps.length ? `epochs ${eps[0]}–${eps[eps.length - 1]}` : '', href: '/trials/' + d.trial_id });
    } else {
      const n = nodeOf(id, d, id === me);
      const f = folded.get(id);
      if (f) {
        const eps = f.epochs.filter((x) => x >= 0);
        n.sub = `${f.count} checkpoints${eps.length ? `, epochs ${eps[0]}–${eps[eps.length - 1]}` : ''}`;
      }
      out.push(n);
    }
  }
  // Edges point from the origin to what was made from it (left to right).
  const outEdges = [];
  const eseen = new Set();
  for (const e of edges) {
    const from = group.get(e.dst) || e.dst, to = group.get(e.src) || e.src;
    if (from === to) continue;
    if (userGroups.has(to) && e.kind === 'initialized_from') continue;  // one edge per group, below
    const { label, title } = edgeLabel(e);
    const k = from + '>' + to + '>' + label;
    if (eseen.has(k)) continue;
    eseen.add(k);
    outEdges.push({ from, to, label, title });
  }
  for (const [gid, u] of userGroups) {
    const texts = u.trials.map((t) => (t.edge.attrs && t.edge.attrs.transferred ? transferText(t.edge.attrs) : null));
    const shorts = [...new Set(texts.filter(Boolean).map((t) => t.short))];
    outEdges.push({ from: me, to: gid, label: shorts.length ? shorts.join(', ') : 'initialised from',
      title: u.trials.map((t, i) => `${u.stage} trial ${t.d.trial_number}: ${texts[i] ? texts[i].long : 'initialised from it'}`).join('\n') });
  }
  return { nodes: out, edges: outEdges, members };
}

function clipList(prefix, nums) {
  const s = prefix + nums.join(', ');
  return s.length <= 30 ? s : prefix + nums.slice(0, 5).join(', ') + ` +${nums.length - 5}`;
}

// ---- gc dry run on the lineage graph ----

// Why gc keeps a checkpoint (GET /store/retention's reasons), short for a
// node and long for its hover text and the legend.
const KEPT_WORDS = {
  pinned: ['pinned', 'its run is pinned'],
  init_from: ['init_from', 'a model started from it (init_from or compare)'],
  best_k: ['best', "among its trial's best epochs (checkpoints.keep.best_k)"],
  last_k: ['last', "among its trial's last epochs (checkpoints.keep.last_k)"],
  demanded: ['demanded', 'an unfinished run may still choose it (init_from not resolved yet)'],
  no_policy: ['no policy', 'its stage keeps every checkpoint (no checkpoints.keep)'],
  run_unfinished: ['run unfinished', 'its run has not finished'],
  stage_unfinished: ['stage unfinished', 'its stage has not finished'],
  ablation_output: ['ablation model', "an ablation variant's trained model"],
};
// Most telling first (the order of KEPT_WORDS); a node shows two.
const ORDER = Object.keys(KEPT_WORDS);
const rank = (r) => (ORDER.includes(r) ? ORDER.indexOf(r) : ORDER.length);  // an unknown reason last
const ranked = (rs) => [...rs].sort((a, b) => rank(a) - rank(b));
const keptShort = (rs) => {
  const r = ranked(rs);
  return r.slice(0, 2).map((x) => (KEPT_WORDS[x] || [x])[0]).join(', ') + (r.length > 2 ? ` +${r.length - 2}` : '');
};
const keptLong = (rs) => ranked(rs).map((r) => (KEPT_WORDS[r] || [r, r])[1]).join('; ');

function stateWords(c) {
  if (!c) return 'not known to gc';
  if (c.state === 'kept') return 'kept: ' + (c.reasons.length ? keptLong(c.reasons) : 'referenced');
  if (c.state === 'would_release') return `would be released, freeing ${bytes(c.frees_bytes)} of its ${bytes(c.bytes)}`;
  if (c.state === 'released') return 'released by an earlier gc (its weights are gone)';
  return 'not a recorded checkpoint';
}

// The overlay of one drawn node: a word, a colour kind and hover lines.
function gcTag(digests, plan, names) {
  const cs = digests.map((d) => plan.checkpoints[d]).filter((c) => c && c.state !== 'not_recorded');
  if (!cs.length) return null;
  const n = (st) => cs.filter((c) => c.state === st).length;
  const kept = n('kept'), go = n('would_release'), gone = n('released');
  let tag;
  if (cs.length === 1) {
    const c = cs[0];
    tag = c.state === 'kept' ? { kind: 'kept', text: 'kept: ' + keptShort(c.reasons) }
      : c.state === 'would_release' ? { kind: 'go', text: `would go · frees ${bytes(c.frees_bytes)}` }
      : { kind: 'released', text: 'released by gc' };
  } else {
    const parts = [kept ? `${kept} kept` : '', go ? `${go} would go` : '', gone ? `${gone} released` : ''].filter(Boolean);
    tag = { kind: go && !kept && !gone ? 'go' : kept && !go && !gone ? 'kept' : gone && !kept && !go ? 'released' : 'mixed', text: parts.join(' · ') };
  }
  const tip = ['gc dry run:', ...digests.slice(0, 10).map((d) => `${names.get(d) || short(d)}: ${stateWords(plan.checkpoints[d])}`)];
  if (digests.length > 10) tip.push(`… and ${digests.length - 10} more`);
  return { ...tag, tip };
}

function Lineage({ up, down, digest, gc, trial }) {
  const g = useMemo(() => lineageGraph(up, down, digest), [up, down, digest]);
  // This checkpoint's trial node also stands for the trial's other
  // checkpoints (not drawn on their own), so the dry run shows what of the
  // trial would go.
  const members = useMemo(() => {
    const m = new Map(g.members);
    const id = trial ? 'trial:' + trial.trial_id : null;
    if (id && g.nodes.some((n) => n.id === id)) {
      const drawn = new Set([...m.values()].flat());
      const extra = [trial.initial_checkpoint, ...(trial.epochs || []).map((e) => e.checkpoint)].filter((d) => d && !drawn.has(d));
      m.set(id, [...(m.get(id) || []), ...extra]);
    }
    return m;
  }, [g, trial]);
  const asked = useMemo(() => [...new Set([...members.values()].flat())].sort().slice(0, 500), [members]);
  const plan = useApi(gc && asked.length ? `/store/retention?checkpoints=${asked.join(',')}` : null);
  const names = useMemo(() => {
    const m = new Map();
    for (const part of [up, down]) {
      for (const [id, d] of Object.entries((part && part.nodes) || {})) {
        if (id.startsWith('checkpoint:') && d.trial_number !== undefined) m.set(id.slice(11), checkpointWords(d));
      }
    }
    for (const [d, name] of epochNames(trial)) if (!m.has(d)) m.set(d, name === 'initial' ? 'initial weights' : name);
    return m;
  }, [up, down, trial]);
  const nodes = useMemo(() => {
    if (!gc || !plan.data) return g.nodes;
    return g.nodes.map((n) => {
      const t = gcTag(members.get(n.id) || [], plan.data, names);
      return t ? { ...n, tag: { kind: t.kind, text: t.text }, tip: t.tip } : n;
    });
  }, [g, members, gc, plan.data, names]);
  if (g.nodes.length <= 1) return html`<div data-testid="lineage-graph"><${Empty}>No lineage recorded around this checkpoint.<//></div>`;
  // Compact: the first screen shows the lineage and what started from it.
  return html`<${Graph} testid="lineage-graph" nodes=${nodes} edges=${g.edges} height=${g.nodes.length > 8 ? 300 : 260} />
    ${gc ? html`<${GcLegend} plan=${plan} asked=${asked} />` : null}`;
}

// What the dry run says about the checkpoints drawn, and across the store.
function GcLegend({ plan, asked }) {
  if (plan.error) return html`<${ErrorState} error=${plan.error} retry=${plan.reload} />`;
  if (!plan.data) return html`<div class="gc-legend muted small" aria-busy="true">gc dry run…</div>`;
  const cs = asked.map((d) => plan.data.checkpoints[d]).filter((c) => c && c.state !== 'not_recorded');
  const count = (st) => cs.filter((c) => c.state === st).length;
  const reasons = new Map();
  for (const c of cs) for (const r of c.reasons || []) reasons.set(r, (reasons.get(r) || 0) + 1);
  const frees = cs.reduce((a, c) => a + (c.frees_bytes || 0), 0);
  const key = (kind, text) => html`<span><span class=${'key tag-' + kind}></span>${text}</span>`;
  return html`<div class="gc-legend small" data-testid="gc-legend" role="status">
    <strong>gc dry run</strong>
    ${key('kept', `${count('kept')} kept${reasons.size ? ' (' + ranked([...reasons.keys()]).map((r) => `${(KEPT_WORDS[r] || [r])[0]} ${reasons.get(r)}`).join(', ') + ')' : ''}`)}
    ${key('go', `${count('would_release')} would be released, freeing ${bytes(frees)}`)}
    ${count('released') ? key('released', `${count('released')} already released`) : null}
    <span class="muted">of the ${cs.length} checkpoints on the graph · across the store gc would release ${plan.data.would_release} and keep ${plan.data.kept} ·${' '}
      hover a node for why · <${Link} href="/store">apply on the Store page<//></span>
  </div>`;
}

// The trials that started from this checkpoint, one compact row each:
// trial (linked), run when it is another run's, tensors transferred.
function InitUses({ down, digest, run }) {
  if (!down) return null;
  const me = 'checkpoint:' + digest;
  const uses = (down.edges || []).filter((e) => e.dst === me && (e.kind === 'initialized_from' || e.kind === 'resumed_from'));
  if (!uses.length) return null;
  const inits = uses.filter((e) => e.kind === 'initialized_from');
  const resumes = uses.filter((e) => e.kind === 'resumed_from');
  const other = inits.some((e) => ((down.nodes || {})[e.src] || {}).run_id !== run);
  const anyRe = inits.some((e) => ((e.attrs || {}).reinitialized || []).length);
  const row = (e) => {
    const t = (down.nodes || {})[e.src] || {};
    const id = e.src.slice(e.src.indexOf(':') + 1);
    const a = e.attrs || {};
    const tr = (a.transferred || []).length, re = (a.reinitialized || []).length;
    return html`<tr>
      <td><${Link} href=${'/trials/' + id}>${t.stage ? `${t.stage} trial ${t.trial_number}` : 'trial ' + id}<//></td>
      ${other ? html`<td class="mono small">${t.run_id ? html`<${Link} href=${'/runs/' + enc(t.run_id)}>${t.run_id}<//>` : ''}</td>` : null}
      <td class="num" title=${a.transferred ? `${tr} of ${tr + re} tensors transferred` : 'no transfer record'}>${a.transferred ? `${tr} / ${tr + re}` : '–'}</td>
      ${anyRe ? html`<td class="small mono muted reinit" title=${re ? a.reinitialized.join(', ') : ''}>${re ? a.reinitialized.join(', ') : ''}</td>` : null}
    </tr>`;
  };
  return html`<${Card} title=${`Used as init_from by ${inits.length} trial${inits.length === 1 ? '' : 's'}`} data-testid="init-uses"
      right=${run && !other ? html`<span class="muted small">all in run <${Link} href=${'/runs/' + enc(run)} class="mono">${run}<//></span>` : null}>
    ${inits.length ? html`<div class="uses-wrap"><table class="uses small">
      <thead><tr><th>Trial</th>${other ? html`<th>Run</th>` : null}<th class="num" title="tensors transferred / tensors of the model">Transferred</th>${anyRe ? html`<th>Re-initialised</th>` : null}</tr></thead>
      <tbody>${inits.map(row)}</tbody></table></div>` : null}
    ${resumes.length ? html`<div class="muted small" style="margin-top:4px">${resumes.length} trial(s) resumed from it (ASHA promotion or retry).</div>` : null}
  <//>`;
}

// ---- diff ----

export function diffManifests(a, b) {
  const A = new Map(a.tensors.map((t) => [t.name, t]));
  const B = new Map(b.tensors.map((t) => [t.name, t]));
  const rows = [];
  for (const name of new Set([...A.keys(), ...B.keys()])) {
    const x = A.get(name), y = B.get(name);
    let state;
    if (!y) state = 'removed';
    else if (!x) state = 'added';
    else if (JSON.stringify(x.shape) !== JSON.stringify(y.shape) || x.dtype !== y.dtype) state = 'reshaped';
    else state = x.blob === y.blob ? 'identical' : 'changed';
    rows.push({ name, state, a: x, b: y });
  }
  rows.sort((p, q) => (p.name < q.name ? -1 : 1));
  return rows;
}

const STATES = ['identical', 'changed', 'reshaped', 'added', 'removed'];

function Diff({ digest, data, withD, setWith, trial, recorded, down, up }) {
  const [only, setOnly] = useQuery('only', '');
  const [paste, setPaste] = useState('');
  const other = useApi(withD && isDigest(withD) ? `/checkpoints/${enc(withD)}` : null);
  // Choices: the previous and next epoch of the same trial, its initial
  // weights, and the trials' checkpoints that started from this one.
  const options = [];
  if (trial && recorded) {
    const eps = trial.epochs || [];
    const at = recorded.epoch;
    const prev = at === 0 ? (trial.initial_checkpoint ? { checkpoint: trial.initial_checkpoint, label: 'initial weights' } : null)
      : (eps.find((e) => e.epoch === at - 1) || null);
    const next = eps.find((e) => e.epoch === at + 1);
    if (prev) options.push({ d: prev.checkpoint, label: prev.label ? `previous: ${prev.label}` : `previous epoch (${prev.epoch})` });
    if (next) options.push({ d: next.checkpoint, label: `next epoch (${next.epoch})` });
    // The trial's warm start (init_from) names its source.
    const init = up && (up.edges || []).find((e) => e.kind === 'initialized_from' && e.src === 'trial:' + recorded.trial_id);
    const initLabel = init && init.attrs && init.attrs.stage !== undefined ? `warm start: ${init.attrs.stage} trial ${init.attrs.trial_number}, epoch ${init.attrs.epoch}` : 'initial weights of the trial';
    if (init && init.dst.slice(11) !== trial.initial_checkpoint && init.dst.slice(11) !== digest) options.push({ d: init.dst.slice(11), label: initLabel });
    const sameAsSource = init && init.dst.slice(11) === trial.initial_checkpoint;
    if (at > 0 && trial.initial_checkpoint && trial.initial_checkpoint !== (prev && prev.checkpoint)) {
      options.push({ d: trial.initial_checkpoint, label: !init || sameAsSource ? initLabel : 'initial weights of the trial (after the warm start)' });
    }
    const last = eps[eps.length - 1];
    if (last && last.epoch !== at && last.epoch !== at + 1) options.push({ d: last.checkpoint, label: `last epoch (${last.epoch})` });
  }
  if (down) {
    for (const e of down.edges || []) {
      if (e.kind !== 'derived_from' || !e.src.startsWith('checkpoint:')) continue;
      const n = (down.nodes || {})[e.src] || {};
      if (n.trial_id === (recorded && recorded.trial_id)) continue;
      const d = e.src.slice(11);
      if (!options.some((o) => o.d === d)) options.push({ d, label: `${n.stage} trial ${n.trial_number}, ${n.epoch < 0 ? 'initial' : 'epoch ' + n.epoch} (started from this)` });
    }
  }
  const opts = options.filter((o) => o.d && o.d !== digest).slice(0, 30);
  const rows = useMemo(() => (data && other.data ? diffManifests(data, other.data) : []), [data, other.data]);
  const counts = Object.fromEntries(STATES.map((s) => [s, rows.filter((r) => r.state === s).length]));
  const shown = only === 'diff' ? rows.filter((r) => r.state !== 'identical') : rows;
  const submit = (e) => {
    e.preventDefault();
    const v = paste.trim().toLowerCase().replace(/^checkpoint:/, '');
    if (!isDigest(v)) { toast('a checkpoint digest is 64 hexadecimal characters', true); return; }
    setWith(v);
    setPaste('');
  };
  const cell = (t) => (t ? html`<span><span class="mono">[${t.shape.join(', ')}]</span> <span class="muted mono small">${t.dtype}</span></span>` : html`<span class="muted">—</span>`);
  const columns = [
    { key: 'name', label: 'Tensor', mono: true },
    { key: 'state', label: 'Difference', value: (r) => STATES.indexOf(r.state), render: (r) => html`<span class=${'diffstate ds-' + r.state}>${r.state}</span>` },
    { key: 'a', label: 'This checkpoint', sortable: false, render: (r) => cell(r.a) },
    { key: 'ablob', label: 'Blob', sortable: false, render: (r) => (r.a ? html`<span class="mono small" title=${r.a.blob}>${short(r.a.blob)}</span>` : '') },
    { key: 'b', label: 'Other', sortable: false, render: (r) => cell(r.b) },
    { key: 'bblob', label: 'Blob', sortable: false, render: (r) => (r.b ? html`<span class="mono small" title=${r.b.blob}>${short(r.b.blob)}</span>` : '') },
  ];
  // Beside the init_from list while nothing is compared; the whole width
  // once a comparison is shown.
  return html`<${Card} title="Compare with another checkpoint" data-testid="diff" class=${'card diffcard' + (withD ? ' wide' : '')}>
    <div class="diffpick">
      <select id="diffwith" data-testid="diff-select" aria-label="checkpoint to compare with" value=${opts.some((o) => o.d === withD) ? withD : ''} onChange=${(e) => setWith(e.currentTarget.value)}>
        <option value="">${opts.length ? 'choose a checkpoint…' : 'no neighbouring checkpoint known'}</option>
        ${opts.map((o) => html`<option value=${o.d}>${o.label} · ${short(o.d)}</option>`)}
      </select>
      <form class="row" onSubmit=${submit} style="gap:6px; flex-wrap:nowrap">
        <input type="text" class="mono" placeholder="or paste a digest" aria-label="digest to compare with" value=${paste} onInput=${(e) => setPaste(e.currentTarget.value)} />
        <button type="submit">Compare</button>
        ${withD ? html`<button type="button" onClick=${() => setWith('')}>Clear</button>` : null}
      </form>
    </div>
    ${!withD ? html`<div class="muted small">Pick the previous or next epoch (or paste any digest) to see, tensor by tensor, what changed: identical tensors share their blob, nothing is downloaded.</div>`
      : !isDigest(withD) ? html`<${ErrorState} error=${{ message: `“${withD}” is not a checkpoint digest.` }} />`
      : other.error ? html`<${ErrorState} error=${other.error} retry=${other.reload} />`
      : !other.data || !data ? html`<${Loading} lines=${4} />`
      : html`
        <div class="row small" style="margin-bottom:8px">
          <span>against <${Link} href=${'/checkpoints/' + withD} class="mono" title=${withD}>${short(withD)}<//>
            ${other.data.recorded ? html` <span class="muted">(trial id ${other.data.recorded.trial_id}, ${other.data.recorded.epoch < 0 ? 'initial weights' : 'epoch ' + other.data.recorded.epoch})</span>` : null}:</span>
          ${STATES.map((s) => html`<span class=${'diffstate ds-' + s} data-count=${counts[s]}>${counts[s]} ${s}</span>`)}
          <span class="spacer"></span>
          <button class="chip" aria-pressed=${only === 'diff'} onClick=${() => setOnly(only === 'diff' ? '' : 'diff')}>differences only</button>
          <button class="chip" onClick=${() => navigate(`/checkpoints/${withD}?with=${digest}`)} title="open the other checkpoint's page, compared with this one">swap</button>
        </div>
        <${DataTable} testid="diff-table" columns=${columns} rows=${shown} rowKey=${(r) => r.name} maxHeight=${420}
          empty=${only === 'diff' ? 'The two checkpoints hold the same tensors: nothing differs.' : 'No tensors.'} />`}
  <//>`;
}
