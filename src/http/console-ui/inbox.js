// Review inbox (/inbox): every pending review, the oldest first, each judged in place.
import { useEffect, useRef, useState } from 'preact/hooks';
import { html, usePage, useNow, Page, Empty } from './ui.js';
import { ReviewCard } from './review.js';
import { setPendingCount } from './store.js';
import { toMs } from './format.js';

/*
 * A card acted on (decided here, or refused) stays where it is, collapsed to its outcome,
 * while the inbox is open, until dismissed: the reviews still pending never move under the
 * pointer because another one left the list.
 */

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

  // Called as a decision is sent: the card stays even once the review has left the list.
  const onActed = (review) => {
    ghosts.current.set(review.approvalId, { review, at: Date.now() });
  };
  const onDismiss = (approvalId) => {
    ghosts.current.delete(approvalId);
    setDismissed((n) => n + 1);
  };

  let shown = [];
  if (list) {
    const ids = new Set(list.map((r) => r.approvalId));
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
