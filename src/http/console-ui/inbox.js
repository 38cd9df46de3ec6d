// Review inbox (/inbox): every pending review, the oldest first, each judged in place.
import { useEffect, useRef, useState } from 'preact/hooks';
import { html, usePage, useNow, Page, Empty } from './ui.js';
import { ReviewCard } from './review.js';
import { setPendingCount } from './store.js';
import { toMs } from './format.js';

/*
 * A card whose decision is being sent stays in the list whatever a refresh says meanwhile
 * (the decision's own events refresh the inbox before its reply arrives). Decided, it shows
 * the outcome and leaves with the first refresh at least OUTCOME_MS later (one is asked
 * for then). Refused (decided elsewhere, the project gone…), it stays with the error, in
 * words, until dismissed: the reader needs the time to read it.
 */
const OUTCOME_MS = 1200;

const relevant = (e) => e.kind !== 'dlq';

export function InboxPage() {
  const page = usePage('/api/inbox', relevant);
  const now = useNow(15000);
  const ghosts = useRef(new Map());
  const [, setDismissed] = useState(0);
  const [focus, setFocus] = useState(() => decodeURIComponent(location.hash.replace(/^#review-/, '')));
  const list = Array.isArray(page.data) ? page.data : null;

  useEffect(() => {
    if (list) setPendingCount(list.filter((r) => !r.status || r.status === 'pending').length);
  }, [page.version]);

  // The review a link pointed at (#review-<id>): scrolled to and outlined, once loaded.
  useEffect(() => {
    const onHash = () => setFocus(decodeURIComponent(location.hash.replace(/^#review-/, '')));
    window.addEventListener('hashchange', onHash);
    window.addEventListener('popstate', onHash);
    return () => {
      window.removeEventListener('hashchange', onHash);
      window.removeEventListener('popstate', onHash);
    };
  }, []);
  useEffect(() => {
    if (!page.loaded || !focus) return;
    const el = document.getElementById(`review-${focus}`);
    if (el) el.scrollIntoView({ block: 'start', behavior: 'smooth' });
  }, [page.loaded, focus]);

  /** @param {any} review @param {'sending'|'decided'|'refused'} phase */
  const onActed = (review, phase) => {
    ghosts.current.set(review.approvalId, { review, phase, at: Date.now() });
    if (phase === 'decided') setTimeout(() => page.reload(), OUTCOME_MS + 100);
  };
  const onDismiss = (approvalId) => {
    ghosts.current.delete(approvalId);
    setDismissed((n) => n + 1);
  };

  let shown = [];
  if (list) {
    const ids = new Set(list.map((r) => r.approvalId));
    const t = Date.now();
    for (const [id, g] of ghosts.current) {
      if (ids.has(id) && g.phase !== 'sending') ghosts.current.delete(id);
      else if (g.phase === 'decided' && t - g.at >= OUTCOME_MS && !ids.has(id)) ghosts.current.delete(id);
    }
    const gone = [...ghosts.current.values()].filter((g) => !ids.has(g.review.approvalId)).map((g) => ({ ...g.review, closedHere: true }));
    shown = [...list, ...gone].sort((a, b) => toMs(a.requestedAt) - toMs(b.requestedAt));
  }

  return html`<${Page} name="inbox" page=${page}>${() => html`
    <div class="page-head">
      <div><h1>Review inbox</h1><p class="sub">${list.length ? `${list.length} waiting for a decision, the oldest first` : ''}</p></div>
    </div>
    ${!list.length ? html`<${Empty}><h2>Nothing to review</h2><p>Checkpoints the agents reach show up here, live.</p><//>` : null}
    ${shown.length ? html`<div class="reviews">${shown.map((r) => html`<${ReviewCard} key=${r.approvalId} review=${r} now=${now}
          focused=${focus === r.approvalId} onActed=${onActed} onDismiss=${onDismiss} reload=${page.reload} />`)}</div>` : null}
  `}<//>`;
}
