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
