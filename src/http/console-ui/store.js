// App-wide state shared by the nav and the pages: the pending-reviews count.
let count = null;
const listeners = new Set();

export const pendingCount = () => count;

/** @param {number} n */
export function setPendingCount(n) {
  if (n === count) return;
  count = n;
  for (const l of listeners) l(n);
}

/** @param {(n: number|null) => void} fn */
export function onPendingCount(fn) {
  listeners.add(fn);
  return () => listeners.delete(fn);
}

// The reviewer's name, shared by every review card: the basic-auth user's (the meta tag)
// when there is one, else the last one typed (remembered in localStorage).
const REVIEWER_KEY = 'livingagent.reviewer';
let reviewer = null;
const reviewerListeners = new Set();

/** @param {() => string} fromMeta */
export function reviewerName(fromMeta) {
  if (reviewer == null) {
    reviewer = fromMeta();
    if (!reviewer) {
      try {
        reviewer = localStorage.getItem(REVIEWER_KEY) ?? '';
      } catch {
        reviewer = '';
      }
    }
  }
  return reviewer;
}

/** @param {string} name */
export function setReviewerName(name) {
  reviewer = name;
  try {
    localStorage.setItem(REVIEWER_KEY, name);
  } catch {
    /* storage unavailable (private mode) */
  }
  for (const l of reviewerListeners) l(name);
}

/** @param {(name: string) => void} fn */
export function onReviewerName(fn) {
  reviewerListeners.add(fn);
  return () => reviewerListeners.delete(fn);
}
