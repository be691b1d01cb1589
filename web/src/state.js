// A tiny observable value and a hook to read it in components.
import { useEffect, useState } from 'preact/hooks';

export function signal(initial) {
  let value = initial;
  const subs = new Set();
  return {
    get: () => value,
    set: (v) => { value = v; subs.forEach((f) => f(v)); },
    subscribe: (f) => { subs.add(f); return () => subs.delete(f); },
  };
}

export function useSignal(s) {
  const [v, setV] = useState(s.get());
  useEffect(() => { setV(s.get()); return s.subscribe(setV); }, [s]);
  return v;
}
