// The console's entry: the event stream, the router (History API, real hrefs
// intercepted), the layout with the nav bar, and the pending-reviews count.
import { render } from 'preact';
import { useState, useEffect } from 'preact/hooks';
import { html } from './ui.js';
import { connect, subscribe, liveState, onLiveState } from './live.js';
import { api } from './api.js';
import { ProjectsPage } from './projects.js';
import { ProjectPage } from './project.js';
import { InboxPage } from './inbox.js';
import { TaskPage } from './task.js';
import { DeadLettersPage } from './dead-letters.js';
import { pendingCount, onPendingCount, setPendingCount } from './store.js';

/** @param {string} path */
export function route(path) {
  const p = path.replace(/\/+$/, '') || '/';
  if (p === '/') return { name: 'projects' };
  if (p === '/inbox') return { name: 'inbox' };
  if (p === '/dead-letters') return { name: 'dead-letters' };
  let m = /^\/projects\/([^/]+)$/.exec(p);
  if (m) return { name: 'project', id: decodeURIComponent(m[1]) };
  m = /^\/tasks\/([^/]+)$/.exec(p);
  if (m) return { name: 'task', id: decodeURIComponent(m[1]) };
  return { name: 'not-found' };
}

const routeListeners = new Set();
export function navigate(href, { replace = false } = {}) {
  if (replace) history.replaceState(null, '', href);
  else history.pushState(null, '', href);
  for (const l of routeListeners) l();
  if (!location.hash) window.scrollTo(0, 0);
}

function useLocation() {
  const [loc, setLoc] = useState(location.pathname + location.search + location.hash);
  useEffect(() => {
    const update = () => setLoc(location.pathname + location.search + location.hash);
    routeListeners.add(update);
    window.addEventListener('popstate', update);
    return () => {
      routeListeners.delete(update);
      window.removeEventListener('popstate', update);
    };
  }, []);
  return loc;
}

// Links are real hrefs; same-origin app paths are handled here without a reload.
document.addEventListener('click', (e) => {
  if (e.defaultPrevented || e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey || e.altKey) return;
  const a = e.target instanceof Element ? e.target.closest('a[href]') : null;
  if (!a || a.hasAttribute('download')) return;
  const target = a.getAttribute('target');
  if (target && target !== '_self') return;
  // getAttribute: an SVG <a> (the task graph's nodes) has no string `href` property.
  const url = new URL(a.getAttribute('href') ?? '', location.href);
  if (url.origin !== location.origin) return;
  if (route(url.pathname).name === 'not-found') return;
  e.preventDefault();
  if (url.pathname === location.pathname && url.search === location.search && url.hash) {
    history.pushState(null, '', url.pathname + url.search + url.hash);
    for (const l of routeListeners) l();
    return;
  }
  navigate(url.pathname + url.search + url.hash);
});

function usePendingCount() {
  const [n, setN] = useState(pendingCount());
  useEffect(() => onPendingCount(setN), []);
  return n;
}

function useLive() {
  const [s, setS] = useState(liveState());
  useEffect(() => onLiveState(setS), []);
  return s;
}

function Nav({ current }) {
  const count = usePendingCount();
  const live = useLive();
  const link = (name, href, label, extra = null) =>
    html`<a href=${href} data-nav=${name} class=${current === name ? 'active' : ''} aria-current=${current === name ? 'page' : undefined}>${label}${extra}</a>`;
  return html`<header class="topbar">
    <nav class="nav">
      <a href="/" class="brand"><span class="logo" aria-hidden="true"></span>LivingAgent<span class="brand-sub">Review console</span></a>
      <div class="nav-links">
        ${link('projects', '/', 'Projects')}
        ${link('inbox', '/inbox', 'Inbox', html` <span class=${`count ${count ? 'has' : ''}`} data-pending-count=${String(count ?? 0)} aria-label=${`${count ?? 0} pending reviews`}>${count ?? '·'}</span>`)}
        ${link('dead-letters', '/dead-letters', 'Dead letters')}
      </div>
      <span class="live" data-live=${live} title=${live === 'connected' ? 'Live updates on' : 'Reconnecting to the live updates…'}>
        <i class="live-dot"></i>${live === 'connected' ? 'Live' : 'Reconnecting…'}
      </span>
    </nav>
  </header>`;
}

function NotFound() {
  return html`<main class="page" data-page="not-found" data-loaded="true" data-version="1">
    <div class="page-error"><h1>Not found</h1><p>There is no page here.</p><p><a href="/">Back to the projects</a></p></div>
  </main>`;
}

function App() {
  const loc = useLocation();
  const r = route(loc.split(/[?#]/)[0]);
  const current = r.name === 'project' || r.name === 'projects' ? 'projects' : r.name === 'task' ? '' : r.name;
  useEffect(() => {
    const titles = { projects: 'Projects', inbox: 'Review inbox', 'dead-letters': 'Dead letters', project: 'Project', task: 'Task' };
    document.title = `${titles[r.name] ?? 'Not found'} · LivingAgent`;
  }, [r.name]);
  let page;
  switch (r.name) {
    case 'projects': page = html`<${ProjectsPage} />`; break;
    case 'project': page = html`<${ProjectPage} key=${r.id} id=${r.id} />`; break;
    case 'inbox': page = html`<${InboxPage} />`; break;
    case 'task': page = html`<${TaskPage} key=${r.id} id=${r.id} />`; break;
    case 'dead-letters': page = html`<${DeadLettersPage} />`; break;
    default: page = html`<${NotFound} />`;
  }
  return html`<${Nav} current=${current} /><div class="content">${page}</div>`;
}

// The pending count: fetched at start, again after approval events and transitions
// (debounced), and set directly by the inbox page whenever it has fresh data.
let countTimer = null;
let countInflight = false;
async function refreshCount() {
  if (countInflight) return;
  countInflight = true;
  try {
    const list = await api.inbox();
    if (Array.isArray(list)) setPendingCount(list.filter((r) => !r.status || r.status === 'pending').length);
  } catch {
    /* the badge keeps its last value */
  } finally {
    countInflight = false;
  }
}
function scheduleCount(delay) {
  if (countTimer) return;
  countTimer = setTimeout(() => {
    countTimer = null;
    refreshCount();
  }, delay);
}

connect();
subscribe((e) => {
  if (location.pathname === '/inbox') return; // the inbox page sets the count from its own fetch
  if (e.kind === 'approval_requested' || e.kind === 'approval_expired' || e.kind === 'reconnected') scheduleCount(200);
  else if (e.kind === 'status' || e.kind === 'project') scheduleCount(1000);
});
refreshCount();

render(html`<${App} />`, document.getElementById('app'));
