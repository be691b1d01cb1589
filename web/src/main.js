// Baton's web UI: the shell (top bar, breadcrumb, token dialog, toasts) and
// the route table. Pages live in pages/; they talk only to /api/v1.
import './app.css';
import { h, render } from 'preact';
import { useEffect, useState } from 'preact/hooks';
import { html, crumbs, Toasts, Loading, ErrorState } from './ui.js';
import { token, tokenPrompt, setToken, askToken } from './api.js';
import { usePlace, match, Link } from './router.js';
import { useSignal } from './state.js';
import { RunsPage } from './pages/runs.js';

// Pages other than the runs list load on first use (esbuild splits them,
// with uPlot and dagre, into chunks of their own): the home page parses a
// fraction of the code.
function lazyPage(load, name) {
  let Page = null, promise = null, error = null;
  return function LazyPage(props) {
    const [, redraw] = useState(0);
    useEffect(() => {
      if (Page) return undefined;
      let alive = true;
      if (!promise) promise = load().then((m) => { Page = m[name]; error = null; }, (e) => { error = e; promise = null; });
      promise.then(() => alive && redraw((n) => n + 1));
      return () => { alive = false; };
    }, [error]);
    if (Page) return h(Page, props);
    if (error) return html`<${ErrorState} error=${new Error('this page could not be loaded: ' + error.message)} retry=${() => { error = null; redraw((n) => n + 1); }} />`;
    return html`<${Loading} />`;
  };
}
const RunPage = lazyPage(() => import('./pages/run.js'), 'RunPage');
const StagePage = lazyPage(() => import('./pages/stage.js'), 'StagePage');
const TrialPage = lazyPage(() => import('./pages/trial.js'), 'TrialPage');
const CheckpointPage = lazyPage(() => import('./pages/checkpoint.js'), 'CheckpointPage');
const StorePage = lazyPage(() => import('./pages/store.js'), 'StorePage');
const NewRunPage = lazyPage(() => import('./pages/new.js'), 'NewRunPage');

const ROUTES = [
  ['/', RunsPage],
  ['/new', NewRunPage],
  ['/store', StorePage],
  ['/runs/:run', RunPage],
  ['/runs/:run/stages/:stage', StagePage],
  ['/trials/:trial', TrialPage],
  ['/checkpoints/:digest', CheckpointPage],
];

function TokenDialog() {
  const p = useSignal(tokenPrompt);
  const [value, setValue] = useState('');
  if (!p) return null;
  const submit = (e) => { e.preventDefault(); setToken(value.trim()); setValue(''); p.done(value.trim()); };
  const cancel = () => p.done(null);
  return html`<div class="overlay" role="dialog" aria-modal="true" aria-labelledby="tokhead" onKeyDown=${(e) => e.key === 'Escape' && cancel()}>
    <form class="dialog" onSubmit=${submit} data-testid="token-dialog">
      <h2 id="tokhead">API token</h2>
      <div class="muted small">${p.reason} It is in the store's <code>api-token</code> file (printed by <code>baton serve</code> on its first start).
        It stays in this tab only (session storage), never in a URL.</div>
      <input type="password" autofocus autocomplete="off" aria-label="API token" value=${value} onInput=${(e) => setValue(e.currentTarget.value)} />
      <div class="row"><span class="spacer"></span><button type="button" onClick=${cancel}>Cancel</button><button class="primary" type="submit">Use token</button></div>
    </form></div>`;
}

function TopBar() {
  const list = useSignal(crumbs);
  const t = useSignal(token);
  const lock = () => (t ? (setToken(''), location.reload()) : askToken('Enter the API token to act on runs.').then((v) => v && location.reload()));
  return html`<header class="topbar">
    <${Link} class="brand" href="/">Baton<//>
    <nav class="crumbs" aria-label="breadcrumb">
      <${Link} href="/">Runs<//>
      ${list.map((c) => html`<span class="sep">›</span>${c.href ? html`<${Link} href=${c.href}>${c.label}<//>` : html`<span>${c.label}</span>`}`)}
    </nav>
    <div class="right">
      <${Link} href="/new">New run<//>
      <${Link} href="/store">Store<//>
      <a href="/api/v1/openapi.json" target="_blank" rel="noopener">API</a>
      <button class="lock" onClick=${lock} title=${t ? 'token set for this tab: click to forget it' : 'no token: click to enter one'} data-testid="lock">
        <svg viewBox="0 0 24 24" aria-hidden="true"><rect x="5" y="11" width="14" height="10" rx="2" />
          <path d=${t ? 'M8 11V7a4 4 0 0 1 7.5-2' : 'M8 11V7a4 4 0 0 1 8 0v4'} /></svg>
        ${t ? 'token set' : 'no token'}</button>
    </div></header>`;
}

function NotFound() {
  crumbs.set([]);
  return html`<div class="card empty">No page at this address. <${Link} href="/">Back to the runs<//>.</div>`;
}

function App() {
  const p = usePlace();
  let page = null;
  for (const [pattern, Page] of ROUTES) {
    const params = match(pattern, p.path);
    if (params) { page = html`<${Page} key=${p.path} ...${params} />`; break; }
  }
  return html`<${TopBar} /><main>${page || html`<${NotFound} />`}</main><${TokenDialog} /><${Toasts} />`;
}

render(html`<${App} />`, document.getElementById('app'));
