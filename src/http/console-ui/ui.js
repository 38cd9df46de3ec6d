// Shared pieces: the html tag, the page-data hook, badges, bars, artifacts, JSON blocks.
import { h } from 'preact';
import { useState, useEffect, useRef, useCallback } from 'preact/hooks';
import htm from 'htm';
import { getJSON, safeHref } from './api.js';
import { subscribe } from './live.js';
import { money, prettyJson, JSON_TEXT_MAX, TASK_STATUSES, STATUS_LABEL, humanize, plural } from './format.js';

export const html = htm.bind(h);

/**
 * A page's JSON: fetched once (the stream is already open), then again after events the
 * page says are relevant, debounced (~200 ms, a burst coalesced into one fetch, never two
 * at once). `version` counts the renders of fetched data (the root's data-version).
 * @param {string|null} url
 * @param {(e: {kind: string, body: any}) => boolean} relevant
 */
export function usePage(url, relevant) {
  const [st, setSt] = useState({ url, data: null, error: null, version: 0, loaded: false, refreshError: null });
  const relevantRef = useRef(relevant);
  relevantRef.current = relevant;
  const loadRef = useRef(() => {});

  useEffect(() => {
    if (!url) return undefined;
    let alive = true;
    let timer = null;
    let inflight = false;
    let again = false;
    let ctrl = null;
    setSt({ url, data: null, error: null, version: 0, loaded: false, refreshError: null });

    async function load() {
      if (!alive) return;
      if (inflight) {
        again = true;
        return;
      }
      inflight = true;
      ctrl = new AbortController();
      try {
        const data = await getJSON(url, { signal: ctrl.signal });
        if (alive) setSt((s) => ({ url, data, error: null, version: s.version + 1, loaded: true, refreshError: null }));
      } catch (err) {
        if (alive && !(err && err.name === 'AbortError')) {
          // Keep what was shown when a refresh fails; the first fetch's failure is the page.
          setSt((s) => (s.data ? { ...s, version: s.version + 1, refreshError: err } : { url, data: null, error: err, version: s.version + 1, loaded: true, refreshError: null }));
        }
      } finally {
        inflight = false;
        if (again && alive) {
          again = false;
          load();
        }
      }
    }
    function schedule(delay = 200) {
      if (timer) return;
      timer = setTimeout(() => {
        timer = null;
        load();
      }, delay);
    }
    loadRef.current = () => {
      clearTimeout(timer);
      timer = null;
      load();
    };
    load();
    const off = subscribe((e) => {
      if (e.kind === 'reconnected' || relevantRef.current(e)) schedule();
    });
    return () => {
      alive = false;
      off();
      clearTimeout(timer);
      if (ctrl) ctrl.abort();
    };
  }, [url]);

  const reload = useCallback(() => loadRef.current(), []);
  // A state left from another URL is not shown for this one.
  const current = st.url === url ? st : { url, data: null, error: null, version: 0, loaded: false, refreshError: null };
  return { ...current, reload };
}

/** The current time, re-read every `ms` (for "waited 4 min"); a clock, not a poll. */
export function useNow(ms = 15000) {
  const [, setTick] = useState(0);
  useEffect(() => {
    const t = setInterval(() => setTick((n) => n + 1), ms);
    return () => clearInterval(t);
  }, [ms]);
  // The time of this render: a review that arrived since the last tick is not "0 s" old for 15 s.
  return Date.now();
}

/**
 * A page's root: data-page, data-loaded once the first fetch has rendered, data-version.
 * Until then a skeleton; a failed first fetch is the page's message.
 */
export function Page({ name, page, title, children }) {
  const loaded = page.loaded;
  return html`<main class="page" data-page=${name} data-loaded=${loaded ? 'true' : 'false'} data-version=${String(page.version)}>
    ${!loaded && html`<div class="loading" aria-busy="true"><div class="skeleton w40"></div><div class="skeleton w80"></div><div class="skeleton w60"></div></div>`}
    ${loaded && page.error && html`<div class="page-error" role="alert" data-error data-code=${page.error.code ?? ''}>
      <h1>${page.error.status === 404 ? 'Not found' : 'Could not load this page'}</h1>
      <p>${page.error.message}</p>
      <p><a href="/">Back to the projects</a></p>
    </div>`}
    ${loaded && page.refreshError && html`<div class="banner warn" role="status">Could not refresh: ${page.refreshError.message}. Showing the last data.</div>`}
    ${loaded && !page.error && page.data != null && (typeof children === 'function' ? children(page.data) : children)}
  </main>`;
}

export function ProjectStateBadge({ state, reason }) {
  return html`<span class="state-badge" data-state=${state}>${humanize(state)}</span>${reason ? html` <span class="state-reason" title=${reason}>${reason}</span>` : null}`;
}

export function StatusBadge({ status }) {
  return html`<span class="status-badge" data-status=${status}>${STATUS_LABEL[status] ?? String(status).toLowerCase()}</span>`;
}

const pct = (n) => `${Math.max(0, Math.min(100, n)).toFixed(3)}%`;

/**
 * Spent (solid), reserved (hatched), the forecast as a marker; the full width is the
 * limit (or the largest figure without one).
 * @param {{ budget: {limit: number|null, spent: number, reserved: number, forecast: number, exceedsBudget: boolean}, compact?: boolean }} p
 */
export function BudgetBar({ budget, compact = false }) {
  const b = budget ?? { limit: null, spent: 0, reserved: 0, forecast: 0, exceedsBudget: false };
  const spent = Number(b.spent) || 0;
  const reserved = Number(b.reserved) || 0;
  const forecast = Number(b.forecast) || 0;
  const limit = b.limit == null ? null : Number(b.limit);
  const scale = limit != null && limit > 0 ? limit : Math.max(spent + reserved, forecast, 0) || 1;
  const over = limit != null && spent + reserved > limit;
  const level = b.exceedsBudget || over ? 'over' : limit != null && (spent + reserved) / scale >= 0.8 ? 'warn' : 'ok';
  const text = `${money(spent)} spent · ${money(reserved)} reserved · ${limit == null ? 'no limit' : `${money(limit)} limit`}`;
  const fcTitle = `Forecast ${money(forecast)}${b.exceedsBudget ? ' — exceeds the budget' : ''}`;
  return html`<div class=${`budget-bar ${compact ? 'compact' : ''}`} data-spent=${String(spent)} data-reserved=${String(reserved)}
      data-limit=${limit == null ? '' : String(limit)} data-forecast=${String(forecast)} data-level=${level}>
    <div class="bar-track" role="img" aria-label=${`${text} · forecast ${money(forecast)}`} title=${`${text} · ${fcTitle}`}>
      <div class="bar-spent" style=${{ width: pct((spent / scale) * 100) }}></div>
      <div class="bar-reserved" style=${{ width: pct((reserved / scale) * 100) }}></div>
      ${forecast > 0 && html`<div class=${`bar-forecast ${b.exceedsBudget ? 'exceeds' : ''}`} style=${{ left: pct((forecast / scale) * 100) }} title=${fcTitle}></div>`}
    </div>
    <div class="bar-text"><span class="bar-figures">${text}</span>${!compact || b.exceedsBudget
      ? html`<span class=${`bar-fc ${b.exceedsBudget ? 'exceeds' : ''}`}> · forecast ${money(forecast)}${b.exceedsBudget ? ' (over)' : ''}</span>` : null}</div>
  </div>`;
}

/** Tasks by state as a stacked bar with counts. */
export function TaskProgress({ tasks }) {
  const counts = tasks ?? {};
  const total = TASK_STATUSES.reduce((n, s) => n + (counts[s] ?? 0), 0);
  if (!total) return html`<div class="progress empty"><span class="muted">no tasks yet</span></div>`;
  const done = counts.COMPLETED ?? 0;
  return html`<div class="progress" data-total=${String(total)}>
    <div class="progress-track" role="img" aria-label=${TASK_STATUSES.filter((s) => counts[s]).map((s) => `${counts[s]} ${STATUS_LABEL[s]}`).join(', ')}>
      ${TASK_STATUSES.filter((s) => counts[s]).map((s) => html`<div class="seg" data-status=${s} style=${{ width: pct((counts[s] / total) * 100) }} title=${`${counts[s]} ${STATUS_LABEL[s]}`}></div>`)}
    </div>
    <div class="progress-legend">
      <span class="progress-total">${done}/${total} done</span>
      ${TASK_STATUSES.filter((s) => s !== 'COMPLETED' && counts[s]).map((s) => html`<span class="legend-item" data-status=${s}><i class="dot"></i>${counts[s]} ${STATUS_LABEL[s]}</span>`)}
    </div>
  </div>`;
}

export function CopyButton({ text, label = 'Copy' }) {
  const [done, setDone] = useState('');
  const copy = async () => {
    try {
      await navigator.clipboard.writeText(text);
      setDone('Copied');
    } catch {
      setDone('Copy failed');
    }
    setTimeout(() => setDone(''), 1500);
  };
  return html`<button type="button" class="btn small ghost" onClick=${copy}>${done || label}</button>`;
}

/** A URI shown as text: not viewable here. */
export function UriText({ uri }) {
  return html`<div class="uri-row"><code class="uri">${uri}</code><${CopyButton} text=${uri} /></div>`;
}

/**
 * An artifact: an image, a video (or an animated SVG preview as an image), a link, or
 * its URI as text with a Copy button when the browser cannot load it.
 */
export function Artifact({ artifact, frame = false }) {
  const a = artifact;
  const href = safeHref(a.href);
  if (!href) return html`<div class=${frame ? 'not-viewable' : 'not-viewable thumb'}><span class="muted small">Not viewable here</span><${UriText} uri=${a.uri} /></div>`;
  const type = String(a.mediaType || '').toLowerCase();
  const alt = a.title || (a.shotIndex != null ? `Shot ${a.shotIndex + 1}` : a.uri);
  if (type.startsWith('video/')) {
    return html`<video class=${frame ? 'media' : 'media thumb'} src=${href} controls preload="metadata"></video>`;
  }
  if (type.startsWith('image/')) return html`<img class=${frame ? 'media' : 'media thumb'} src=${href} alt=${alt} loading=${frame ? 'eager' : 'lazy'} />`;
  return html`<div class="uri-row"><a class="uri" href=${href} target="_blank" rel="noopener noreferrer">${a.uri}</a></div>`;
}

/** Pretty JSON, collapsible. */
export function JsonBlock({ value, summary, open = true }) {
  const text = prettyJson(value, JSON_TEXT_MAX);
  return html`<details class="json" open=${open}>
    <summary>${summary}${' '}<span class="muted">${typeof value === 'object' && value ? plural(Object.keys(value).length, 'key') : ''}</span></summary>
    <pre class="code">${text}</pre>
  </details>`;
}

export function Empty({ children }) {
  return html`<div class="empty-state" data-empty>${children}</div>`;
}

/** An action's result next to it: the outcome or the error in words. */
export function ActionMessage({ msg }) {
  if (!msg) return null;
  if (msg.error) return html`<p class="msg error" role="alert" data-error data-code=${msg.code ?? ''}>${msg.error}</p>`;
  return html`<p class="msg ok" role="status" data-outcome>${msg.outcome}</p>`;
}
