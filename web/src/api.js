// The REST API client: every request of the UI goes through here. The token
// lives in this tab's sessionStorage (never in a URL); a 401 asks for it
// again (through the token dialog) and retries once.
import { signal } from './state.js';

const BASE = '/api/v1';
const KEY = 'baton.token';

export const token = signal(sessionStorage.getItem(KEY) || '');
// Set while the token dialog is wanted; resolves the waiting requests.
export const tokenPrompt = signal(null);

export function setToken(t) {
  if (t) sessionStorage.setItem(KEY, t);
  else sessionStorage.removeItem(KEY);
  token.set(t || '');
}

// Asks the person for the token once, however many requests wait for it.
let asking = null;
export function askToken(reason) {
  if (!asking) {
    asking = new Promise((resolve) => {
      tokenPrompt.set({ reason, done: (t) => { asking = null; tokenPrompt.set(null); resolve(t); } });
    });
  }
  return asking;
}

export class ApiError extends Error {
  constructor(status, body) {
    super((body && body.message) || `HTTP ${status}`);
    this.status = status;
    this.code = body && body.error_code;
    this.details = (body && body.details) || [];
  }
}

function headers(extra) {
  const h = { ...(extra || {}) };
  if (token.get()) h.Authorization = 'Bearer ' + token.get();
  return h;
}

// A JSON request; throws ApiError with the server's envelope on failure.
export async function request(method, path, { body, headers: extra, retried } = {}) {
  const init = { method, headers: headers(extra) };
  if (body !== undefined) {
    init.body = typeof body === 'string' ? body : JSON.stringify(body);
    init.headers['Content-Type'] = 'application/json';
  }
  let res;
  try {
    res = await fetch(BASE + path, init);
  } catch (e) {
    throw new ApiError(0, { message: 'the server cannot be reached (' + e.message + ')' });
  }
  const text = await res.text();
  let json = null;
  try { json = text ? JSON.parse(text) : null; } catch { json = { message: text.slice(0, 200) }; }
  if (res.status === 401 && !retried) {
    const t = await askToken(token.get() ? 'The server refused this token.' : 'This server needs its API token.');
    if (t !== null) return request(method, path, { body, headers: extra, retried: true });
  }
  if (!res.ok) throw new ApiError(res.status, json);
  return json;
}

export const get = (path) => request('GET', path);
export const post = (path, body, extra) => request('POST', path, { body, headers: extra });

export const enc = encodeURIComponent;

// Reads a run's server-sent events with fetch(), so that the token travels
// in a header (EventSource cannot send one) and Last-Event-ID is ours to
// send when the stream drops. onEvent(type, data, id); onState('live' |
// 'reconnecting' | 'ended'). Returns a function that closes the stream.
export function followEvents(runId, { onEvent, onState, after = '' }) {
  let last = after;
  let stopped = false;
  let controller = null;
  let wait = 500;
  const loop = async () => {
    while (!stopped) {
      controller = new AbortController();
      try {
        const h = headers({ Accept: 'text/event-stream' });
        if (last) h['Last-Event-ID'] = last;
        const res = await fetch(`${BASE}/runs/${enc(runId)}/events`, { headers: h, signal: controller.signal });
        if (res.status === 401) {
          if ((await askToken('The event stream needs the API token.')) === null) { onState('ended'); return; }
          continue;
        }
        if (!res.ok || !res.body) throw new Error('HTTP ' + res.status);
        onState('live');
        wait = 500;
        const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
        let buf = '';
        let finished = false;
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          buf += value;
          let cut;
          while ((cut = buf.indexOf('\n\n')) >= 0) {
            const block = buf.slice(0, cut);
            buf = buf.slice(cut + 2);
            let id = '', type = 'message', data = '';
            for (const line of block.split('\n')) {
              if (line.startsWith('id: ')) id = line.slice(4);
              else if (line.startsWith('event: ')) type = line.slice(7);
              else if (line.startsWith('data: ')) data += line.slice(6);
            }
            if (!data) continue;  // keep-alive comment
            if (id) last = id;
            let parsed = null;
            try { parsed = JSON.parse(data); } catch { parsed = data; }
            onEvent(type, parsed, id);
            if (type === 'run_finished') finished = true;
          }
        }
        if (finished || stopped) { onState('ended'); return; }
      } catch (e) {
        if (stopped) return;
      }
      onState('reconnecting');
      await new Promise((r) => setTimeout(r, wait));
      wait = Math.min(wait * 2, 8000);
    }
  };
  loop();
  return () => { stopped = true; if (controller) controller.abort(); };
}

// Starts a download of a checkpoint's safetensors without loading it into
// the page: the server signs a short-lived URL (no token in it).
export async function downloadSafetensors(digest) {
  const link = await get(`/checkpoints/${digest}/download-link`);
  const a = document.createElement('a');
  a.href = link.url;
  a.download = digest.slice(0, 12) + '.safetensors';
  document.body.appendChild(a);
  a.click();
  a.remove();
}
