// The event stream: one EventSource for the whole app, its connection state, and
// subscribers (pages that re-fetch on relevant events). No polling anywhere.

const KINDS = ['status', 'budget', 'project', 'approval_requested', 'approval_expired', 'dlq'];

/** @typedef {{ kind: string, body: any }} LiveEvent */

/** @type {Set<(e: LiveEvent) => void>} */
const listeners = new Set();
/** @type {Set<(s: string) => void>} */
const stateListeners = new Set();
let state = 'reconnecting';
let source = null;
let hadError = false;

function setState(s) {
  if (s === state) return;
  state = s;
  for (const l of stateListeners) l(s);
}

function emit(event) {
  for (const l of [...listeners]) {
    try {
      l(event);
    } catch (err) {
      console.error(err);
    }
  }
}

/** Opens the stream (once). */
export function connect(url = '/api/events') {
  if (source || typeof EventSource === 'undefined') return;
  source = new EventSource(url);
  source.onopen = () => {
    setState('connected');
    // Events may have been missed while the stream was down: every page re-fetches.
    if (hadError) emit({ kind: 'reconnected', body: {} });
    hadError = false;
  };
  source.onerror = () => {
    hadError = true;
    setState('reconnecting');
  };
  for (const kind of KINDS) {
    source.addEventListener(kind, (e) => {
      let body = null;
      try {
        body = JSON.parse(e.data);
      } catch {
        return;
      }
      // Tolerate `{ kind, body }` envelopes as well as bare bodies.
      if (body && typeof body === 'object' && body.kind === kind && body.body && typeof body.body === 'object') body = body.body;
      emit({ kind, body: body ?? {} });
    });
  }
}

/** @param {(e: LiveEvent) => void} fn @returns {() => void} */
export function subscribe(fn) {
  listeners.add(fn);
  return () => listeners.delete(fn);
}

export const liveState = () => state;

/** @param {(s: string) => void} fn */
export function onLiveState(fn) {
  stateListeners.add(fn);
  return () => stateListeners.delete(fn);
}
