// The JSON API and the page's meta values. Every request goes through here.

function meta(name) {
  const el = document.querySelector(`meta[name="${name}"]`);
  const v = el ? el.getAttribute('content') ?? '' : '';
  // A placeholder the server did not replace (a file opened as is) counts as empty.
  return /^__[A-Z]+__$/.test(v) ? '' : v;
}

export const csrfToken = () => meta('csrf-token');
export const metaReviewer = () => meta('console-reviewer');

/** An error from the API, with the server's code (ERR_VALIDATION…) and HTTP status. */
export class ApiError extends Error {
  /** @param {string} code @param {string} message @param {number} status */
  constructor(code, message, status) {
    super(message);
    this.code = code;
    this.status = status;
  }
}

async function errorFrom(res) {
  let body = null;
  try {
    body = await res.json();
  } catch {
    /* not JSON */
  }
  const e = body && typeof body === 'object' && body.error && typeof body.error === 'object' ? body.error : null;
  const code = e && typeof e.code === 'string' ? e.code : res.status === 401 ? 'ERR_UNAUTHORIZED' : res.status === 403 ? 'ERR_FORBIDDEN' : `HTTP_${res.status}`;
  const message = e && typeof e.message === 'string' ? e.message : res.statusText || `HTTP ${res.status}`;
  return new ApiError(code, message, res.status);
}

/** @param {string} path */
export async function getJSON(path, { signal } = {}) {
  let res;
  try {
    res = await fetch(path, { headers: { accept: 'application/json' }, credentials: 'same-origin', signal });
  } catch (err) {
    if (err && err.name === 'AbortError') throw err;
    throw new ApiError('ERR_NETWORK', 'The server cannot be reached', 0);
  }
  if (!res.ok) throw await errorFrom(res);
  return res.json();
}

/**
 * POSTs an action; resolves to the reply's `result`, rejects with an ApiError for a
 * refusal (`{ ok: false, error }`, whatever the HTTP status).
 * @param {string} path @param {unknown} body
 */
export async function postJSON(path, body) {
  let res;
  try {
    res = await fetch(path, {
      method: 'POST',
      credentials: 'same-origin',
      headers: { 'content-type': 'application/json', accept: 'application/json', 'x-csrf-token': csrfToken() },
      body: JSON.stringify(body),
    });
  } catch {
    throw new ApiError('ERR_NETWORK', 'The server cannot be reached', 0);
  }
  if (!res.ok) throw await errorFrom(res);
  let reply = null;
  try {
    reply = await res.json();
  } catch {
    return null;
  }
  if (reply && reply.ok === false) {
    const e = reply.error ?? {};
    throw new ApiError(String(e.code ?? 'ERR_UNKNOWN'), String(e.message ?? 'Refused'), res.status);
  }
  return reply && 'result' in reply ? reply.result : reply;
}

export const api = {
  projects: () => getJSON('/api/projects'),
  project: (id) => getJSON(`/api/projects/${encodeURIComponent(id)}`),
  inbox: () => getJSON('/api/inbox'),
  review: (id) => getJSON(`/api/reviews/${encodeURIComponent(id)}`),
  task: (id) => getJSON(`/api/tasks/${encodeURIComponent(id)}`),
  deadLetters: () => getJSON('/api/dead-letters'),
  control: (projectId, body) => postJSON(`/api/projects/${encodeURIComponent(projectId)}/control`, body),
  decide: (projectId, body) => postJSON(`/api/projects/${encodeURIComponent(projectId)}/decisions`, body),
};

/** An API error in words, for the person who clicked. @param {unknown} err */
export function errorText(err) {
  if (!(err instanceof ApiError)) return err instanceof Error ? err.message : String(err);
  const msg = err.message.replace(/\s+$/, '').replace(/\.$/, '');
  switch (err.code) {
    case 'ERR_APPROVAL':
      return `${msg} — this review is closed`;
    case 'ERR_ILLEGAL_TRANSITION':
      return `${msg} — the project changed meanwhile; the view is refreshed`;
    case 'ERR_PROJECT_NOT_FOUND':
      return `${msg} — the project no longer exists`;
    case 'ERR_VALIDATION':
      return `${msg}`;
    case 'ERR_NETWORK':
      return 'The server cannot be reached — check the connection and try again';
    default:
      if (err.status === 401) return `Not signed in (${msg}) — reload the page to sign in`;
      if (err.status === 403) return `Refused (${msg}) — the page may be stale: reload it`;
      return msg;
  }
}

/**
 * A URL from the server or an agent, checked before it becomes an href or src: internal
 * paths, http(s), and data: images and videos; anything else (javascript:, vbscript:…) is null.
 * @param {unknown} href
 */
export function safeHref(href) {
  if (typeof href !== 'string') return null;
  const s = href.trim();
  if (!s || /[\u0000-\u001f]/.test(s)) return null;
  if (s.startsWith('/') && !s.startsWith('//') && !s.startsWith('/\\')) return s;
  if (/^https?:\/\//i.test(s)) return s;
  if (/^data:(image|video)\//i.test(s)) return s;
  return null;
}
