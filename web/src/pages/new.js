// Trigger a run: paste or upload a pipeline JSON, validate it through the
// API (POST /pipelines), see each problem next to its JSON pointer (and the
// line it points at), then start it (POST /runs with an Idempotency-Key per
// document text, so a double click makes one run) and go to its run page.
import { useEffect, useMemo, useRef, useState } from 'preact/hooks';
import { html, useCrumbs, PageHead, toast } from '../ui.js';
import { navigate, Link } from '../router.js';
import { post, enc } from '../api.js';

const DRAFT = 'baton.new.draft';

const EXAMPLE = {
  schema_version: '1',
  name: 'my-experiment',
  seed: 7,
  stages: {
    prep: { type: 'prepare', dataset: { format: 'idx', path: '/usr/share/datasets/fashion-mnist' },
      train_subset: 20000, validation_fraction: 0.2, normalize: true },
    tune: { type: 'tune', depends_on: ['prep'],
      model: { layers: [
        { name: 'conv1', type: 'conv2d', out_channels: 16, kernel_size: 3, padding: 1 },
        { name: 'act1', type: 'relu' }, { name: 'pool1', type: 'max_pool2d', kernel_size: 2 },
        { name: 'drop', type: 'dropout', p: '$dropout' }, { name: 'flat', type: 'flatten' },
        { name: 'fc1', type: 'linear', out_features: 64 }, { name: 'act2', type: 'relu' },
        { name: 'fc2', type: 'linear', out_features: 10 }] },
      search_space: {
        lr: { type: 'float', low: 0.001, high: 0.3, log: true },
        momentum: { type: 'float', low: 0.5, high: 0.99 },
        batch_size: { type: 'categorical', values: [64, 128] },
        dropout: { type: 'float', low: 0.0, high: 0.5 } },
      objective: { metric: 'val_accuracy', mode: 'max' },
      sampler: { type: 'random' },
      budget: { max_trials: 8, max_parallel: 2, max_epochs: 4 },
      pruner: { type: 'median', min_resource: 1 } },
    train: { type: 'train', depends_on: ['tune'],
      hyperparameters: { from: 'tune', trial: 'best' },
      init_from: { stage: 'tune', trial: 'best', epoch: 'last' },
      epochs: 6 },
  },
};

// ---- where a JSON pointer or a parse error is in the text ----

// Line and column (1-based) of an offset.
export function lineCol(text, offset) {
  const before = text.slice(0, Math.max(0, Math.min(offset, text.length)));
  const line = before.split('\n').length;
  return { line, column: offset - before.lastIndexOf('\n') };
}

// The offset JSON.parse's message names, or null. V8 says "... at position
// 42 (line 3 column 5)"; others "line 3 column 5".
function syntaxError(text, e) {
  const m = /position (\d+)/.exec(e.message);
  if (m) return { offset: +m[1], ...lineCol(text, +m[1]) };
  const lc = /line (\d+) column (\d+)/.exec(e.message);
  if (lc) {
    const lines = text.split('\n');
    const line = +lc[1], column = +lc[2];
    const offset = lines.slice(0, line - 1).reduce((n, l) => n + l.length + 1, 0) + column - 1;
    return { offset, line, column };
  }
  if (/end of (JSON|data)/i.test(e.message)) return { offset: text.length, ...lineCol(text, text.length) };
  return null;
}

// The text span of each value by JSON pointer, from a small scanner over
// text that JSON.parse has accepted: {"/stages/tune/budget": [start, end]}.
export function pointerSpans(text) {
  const spans = {};
  let i = 0;
  const ws = () => { while (i < text.length && ' \t\n\r'.includes(text[i])) i++; };
  const str = () => {
    const start = i++;
    while (i < text.length && text[i] !== '"') i += text[i] === '\\' ? 2 : 1;
    i++;
    return JSON.parse(text.slice(start, i));
  };
  const esc = (k) => String(k).replace(/~/g, '~0').replace(/\//g, '~1');
  const value = (ptr) => {
    ws();
    const start = i;
    const c = text[i];
    if (c === '{') {
      i++; ws();
      if (text[i] === '}') i++;
      else {
        for (;;) {
          ws();
          const key = str();
          ws(); i++;  // ':'
          value(ptr + '/' + esc(key));
          ws();
          if (text[i++] === '}') break;  // else ','
        }
      }
    } else if (c === '[') {
      i++; ws();
      if (text[i] === ']') i++;
      else {
        for (let n = 0; ; n++) {
          value(ptr + '/' + n);
          ws();
          if (text[i++] === ']') break;
        }
      }
    } else if (c === '"') str();
    else while (i < text.length && !',}] \t\n\r'.includes(text[i])) i++;
    spans[ptr] = [start, i];
  };
  try { value(''); } catch { /* a best effort: spans found so far */ }
  return spans;
}

// The span of the pointer, or of its nearest ancestor that exists (a
// missing member is reported at the object that lacks it).
function spanOf(spans, pointer) {
  let p = pointer;
  for (;;) {
    if (spans[p]) return { span: spans[p], exact: p === pointer };
    if (!p) return null;
    p = p.slice(0, p.lastIndexOf('/'));
  }
}

function randomKey() {
  if (crypto.randomUUID) return crypto.randomUUID();
  return Array.from(crypto.getRandomValues(new Uint8Array(16)), (b) => b.toString(16).padStart(2, '0')).join('');
}

export function NewRunPage() {
  useCrumbs([{ label: 'New run' }], []);
  const [text, setText] = useState(() => sessionStorage.getItem(DRAFT) || '');
  const [result, setResult] = useState(null);  // {kind: 'syntax'|'invalid'|'valid'|'error', ...} for `for` text
  const [busy, setBusy] = useState('');
  const keys = useRef(new Map());  // document text -> its Idempotency-Key
  const area = useRef(null);
  const file = useRef(null);

  useEffect(() => { try { sessionStorage.setItem(DRAFT, text); } catch { /* full: the draft is not kept */ } }, [text]);
  const stale = result && result.for !== text;

  // Parse locally first: a syntax error needs no server round trip.
  const parse = () => {
    if (!text.trim()) { setResult({ for: text, kind: 'syntax', message: 'The document is empty.', at: null }); return null; }
    try {
      return JSON.parse(text);
    } catch (e) {
      setResult({ for: text, kind: 'syntax', message: e.message, at: syntaxError(text, e) });
      return null;
    }
  };
  const fail = (e, prefix) => {
    if (e.details && e.details.length) {
      const details = e.details.map((d) => ({ ...d, pointer: prefix && d.pointer && d.pointer.startsWith(prefix) ? d.pointer.slice(prefix.length) : d.pointer }));
      setResult({ for: text, kind: 'invalid', message: e.message, details });
    } else {
      setResult({ for: text, kind: 'error', message: e.message, status: e.status });
    }
  };
  const validate = async () => {
    const doc = parse();
    if (!doc) return;
    setBusy('validate');
    try {
      const r = await post('/pipelines', doc);
      setResult({ for: text, kind: 'valid', pipeline: r });
    } catch (e) {
      fail(e, '');
    } finally {
      setBusy('');
    }
  };
  const start = async () => {
    if (busy) return;
    const doc = parse();
    if (!doc) return;
    if (!keys.current.has(text)) keys.current.set(text, randomKey());
    setBusy('start');
    try {
      const r = await post('/runs', { pipeline: doc }, { 'Idempotency-Key': keys.current.get(text) });
      toast(r.created === false ? `run ${r.run_id} was started already (same document, same key)` : `run ${r.run_id} started`);
      navigate('/runs/' + enc(r.run_id));
    } catch (e) {
      fail(e, '/pipeline');
      setBusy('');
    }
  };
  const upload = (e) => {
    const f = e.currentTarget.files && e.currentTarget.files[0];
    if (!f) return;
    f.text().then((t) => { setText(t); setResult(null); toast(`loaded ${f.name}`); }, (err) => toast(err.message, true));
    e.currentTarget.value = '';
  };
  const format = () => {
    const doc = parse();
    if (doc) { setText(JSON.stringify(doc, null, 2)); setResult(null); }
  };
  const example = () => { setText(JSON.stringify(EXAMPLE, null, 2)); setResult(null); };
  const spans = useMemo(() => (result && result.kind === 'invalid' && !stale ? pointerSpans(text) : {}), [result, text]);
  // Select the text an error points at and scroll the editor to it.
  const reveal = (start, end) => {
    const el = area.current;
    if (!el) return;
    el.focus();
    el.setSelectionRange(start, Math.max(start + 1, end));
    const { line } = lineCol(text, start);
    const lh = parseFloat(getComputedStyle(el).lineHeight) || 18;
    el.scrollTop = Math.max(0, (line - 4) * lh);
  };
  const keydown = (e) => {
    if ((e.ctrlKey || e.metaKey) && e.key === 'Enter') { e.preventDefault(); e.shiftKey ? start() : validate(); }
  };
  const lines = text ? text.split('\n').length : 0;

  return html`<div data-page="new">
    <${PageHead} title="New run" meta=${['paste or upload a pipeline document, validate it, start it']}
      actions=${html`<label class="btn" title="load a pipeline JSON file from your computer">Upload JSON…
          <input ref=${file} type="file" accept=".json,application/json" onChange=${upload} data-testid="upload" class="visually-hidden" /></label>
        <button onClick=${format} disabled=${!text.trim()} title="re-indent the document">Format</button>`} />
    <div class="new-grid">
      <section class="card new-editor">
        <div class="row" style="margin-bottom:8px"><h2 style="margin:0">Pipeline JSON</h2><span class="spacer"></span>
          <span class="muted small">${lines ? `${lines} lines` : ''}</span></div>
        <textarea ref=${area} data-testid="pipeline-text" aria-label="pipeline JSON" spellcheck="false" value=${text}
          placeholder=${'{\n  "schema_version": "1",\n  "name": "my-experiment",\n  "stages": { … }\n}'}
          onInput=${(e) => setText(e.currentTarget.value)} onKeyDown=${keydown}></textarea>
        <div class="row" style="margin-top:10px">
          <button data-testid="validate" onClick=${validate} disabled=${!!busy || !text.trim()} title="check the document with the server (Ctrl+Enter)">
            ${busy === 'validate' ? '…' : ''}Validate</button>
          <button data-testid="start" class="primary" onClick=${start} disabled=${!!busy || !text.trim()} title="start a run of this document (Ctrl+Shift+Enter)">
            ${busy === 'start' ? 'Starting…' : 'Start run'}</button>
          <span class="spacer"></span>
          <span class="muted small">Ctrl+Enter validates · Ctrl+Shift+Enter starts</span>
        </div>
      </section>
      <section class="card new-result" aria-live="polite">
        ${!text.trim() ? html`<${Intro} example=${example} />`
          : !result ? html`<h2>Check</h2><p class="muted">Validate to have the server check the document: the schema, the stage graph, the search space, what <code>init_from</code> and <code>hyperparameters</code> select. Each problem is listed with its JSON pointer; click one to go to it.</p>`
          : html`${stale ? html`<div class="callout small">The document changed since this check: validate again.</div>` : null}
              <${Result} result=${result} text=${text} spans=${spans} reveal=${reveal} stale=${stale} /> `}
      </section>
    </div></div>`;
}

function Intro({ example }) {
  return html`<div data-testid="new-empty"><h2>Start from a document</h2>
    <p>A pipeline is a JSON document of stages: <span class="tag">prepare</span> a dataset, <span class="tag">tune</span> hyperparameters
      (trials, early stopping), <span class="tag">ablate</span> components, <span class="tag">train</span> the final model, which may start
      from a chosen trial epoch's checkpoint (<code>init_from</code>).</p>
    <p><button class="primary" onClick=${example} data-testid="example">Insert an example pipeline</button></p>
    <p class="muted small">Or paste your own, or upload a file. The schema is <code>schema/pipeline.schema.json</code> and full examples are in <code>examples/</code>
      of the Baton repository; the API is described at <a href="/api/v1/openapi.json" target="_blank" rel="noopener">/api/v1/openapi.json</a>.
      From a shell: <code>baton --server URL run PIPELINE.json</code>.</p></div>`;
}

function Result({ result, text, spans, reveal, stale }) {
  if (result.kind === 'valid') {
    const p = result.pipeline || {};
    return html`<div data-testid="valid"><h2><span class="badge st-succeeded">valid</span> ${p.name || ''}</h2>
      <dl class="kv"><dt>pipeline id</dt><dd class="mono" title=${p.pipeline_id}>${(p.pipeline_id || '').slice(0, 12)}</dd>
        <dt>stages</dt><dd>${(p.stages || []).map((s, i) => html`${i ? html`<span class="muted"> → </span>` : null}<span class="tag">${s}</span>`)}</dd></dl>
      <p class="muted small">Stored on the server. Start run executes it in the background; the same document started twice from this page makes one run.</p></div>`;
  }
  if (result.kind === 'syntax') {
    const at = result.at;
    let snippet = null;
    if (at) {
      const lines = text.split('\n');
      const l = lines[at.line - 1] || '';
      const prev = at.line > 1 ? `${String(at.line - 1).padStart(4)} | ${lines[at.line - 2]}\n` : '';
      const cur = `${String(at.line).padStart(4)} | ${l}\n`;
      const pad = ' '.repeat(7 + Math.max(0, at.column - 1));
      snippet = html`<pre class="snippet">${html`<span class="muted">${prev}</span>`}${cur}${pad}${html`<span class="caret">^</span>`}</pre>`;
    }
    return html`<div data-testid="errors"><h2><span class="badge st-failed">not JSON</span> The document does not parse</h2>
      <ul class="errors" data-testid="error-list"><li>${at ? html`<button class="linklike" onClick=${() => reveal(at.offset, at.offset + 1)}><code>line ${at.line}, column ${at.column}</code></button> ` : null}${result.message}</li></ul>
      ${snippet}</div>`;
  }
  if (result.kind === 'invalid') {
    return html`<div data-testid="errors"><h2><span class="badge st-failed">invalid</span> ${result.details.length} problem${result.details.length === 1 ? '' : 's'}</h2>
      <ul class="errors pointer-list" data-testid="error-list">${result.details.map((d) => {
        const hit = stale ? null : spanOf(spans, d.pointer || '');
        const lc = hit ? lineCol(text, hit.span[0]) : null;
        return html`<li data-pointer=${d.pointer}>
          ${hit ? html`<button class="linklike" title=${'go to ' + (d.pointer || '/') + (hit.exact ? '' : ' (the nearest part that exists)')} onClick=${() => reveal(hit.span[0], hit.span[1])}><code>${d.pointer || '/'}</code></button>`
            : html`<code>${d.pointer || '/'}</code>`}
          ${lc ? html`<span class="muted small"> line ${lc.line}</span>` : null}
          <div>${d.message}</div></li>`;
      })}</ul></div>`;
  }
  return html`<div data-testid="errors"><h2><span class="badge st-failed">error</span> The server refused</h2>
    <ul class="errors" data-testid="error-list"><li>${result.message}</li></ul>
    ${result.status === 0 ? html`<p class="muted small">Is <code>baton serve</code> running? <${Link} href="/">Back to the runs<//></p>` : null}</div>`;
}
