// Path routes (the server answers index.html for any path outside /api):
// every page and its view state (sort, filter, selection) live in the URL,
// so reload, back and shared links restore them.
import { h } from 'preact';
import { useEffect, useState } from 'preact/hooks';
import { signal, useSignal } from './state.js';

const here = () => ({ path: location.pathname, search: location.search });
export const place = signal(here());
window.addEventListener('popstate', () => place.set(here()));

export function navigate(url, { replace = false } = {}) {
  if (replace) history.replaceState(null, '', url);
  else history.pushState(null, '', url);
  place.set(here());
  if (!replace) window.scrollTo(0, 0);
}

// Matches "/runs/:run/stages/:stage" against a path; null or the params.
export function match(pattern, path) {
  const p = pattern.split('/').filter(Boolean);
  const s = path.split('/').filter(Boolean);
  if (p.length !== s.length) return null;
  const params = {};
  for (let i = 0; i < p.length; i++) {
    if (p[i].startsWith(':')) params[p[i].slice(1)] = decodeURIComponent(s[i]);
    else if (p[i] !== s[i]) return null;
  }
  return params;
}

export function usePlace() {
  return useSignal(place);
}

// One URL query parameter as component state; changes replace the history
// entry (view state, not navigation). `parse`/`format` convert the string.
export function useQuery(key, fallback = '') {
  const p = usePlace();
  const value = new URLSearchParams(p.search).get(key);
  const set = (v) => {
    const q = new URLSearchParams(location.search);
    if (v === '' || v === null || v === undefined || v === fallback) q.delete(key);
    else q.set(key, v);
    const s = q.toString();
    navigate(location.pathname + (s ? '?' + s : ''), { replace: true });
  };
  return [value === null ? fallback : value, set];
}

// An <a> that navigates inside the app (ctrl/middle click open a tab as usual).
export function Link({ href, children, ...rest }) {
  const onClick = (e) => {
    if (e.defaultPrevented || e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey || e.altKey) return;
    e.preventDefault();
    navigate(href);
  };
  return h('a', { href, onClick, ...rest }, children);
}

// Re-renders every `ms` while `active`: for polling views.
export function useTick(ms, active) {
  const [n, setN] = useState(0);
  useEffect(() => {
    if (!active) return undefined;
    const t = setInterval(() => setN((x) => x + 1), ms);
    return () => clearInterval(t);
  }, [ms, active]);
  return n;
}
