// Formatting helpers: money, times, durations, labels. Pure functions, no DOM.

const money2 = new Intl.NumberFormat('en-US', { style: 'currency', currency: 'USD', minimumFractionDigits: 2, maximumFractionDigits: 2 });
const money4 = new Intl.NumberFormat('en-US', { style: 'currency', currency: 'USD', minimumFractionDigits: 2, maximumFractionDigits: 4 });

/** @param {number|null|undefined} n */
export function money(n) {
  if (n == null || !Number.isFinite(n)) return '—';
  const abs = Math.abs(n);
  return abs > 0 && abs < 0.01 ? money4.format(n) : money2.format(n);
}

/** @param {string|null|undefined} iso */
export function toMs(iso) {
  if (!iso) return NaN;
  return Date.parse(iso);
}

/** A duration in words: "45 s", "4 min", "2 h 5 min", "3 d". @param {number} ms */
export function duration(ms) {
  if (!Number.isFinite(ms)) return '—';
  if (ms < 950) return `${Math.max(0, Math.round(ms))} ms`;
  if (ms < 9_950) return `${(ms / 1000).toFixed(1)} s`;
  const s = Math.max(0, Math.round(ms / 1000));
  if (s < 60) return `${s} s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m} min`;
  const h = Math.floor(m / 60);
  if (h < 24) return m % 60 ? `${h} h ${m % 60} min` : `${h} h`;
  const d = Math.floor(h / 24);
  return h % 24 ? `${d} d ${h % 24} h` : `${d} d`;
}

/** @param {string|null|undefined} iso @param {number} now */
export function ago(iso, now = Date.now()) {
  const t = toMs(iso);
  if (!Number.isFinite(t)) return '—';
  return `${duration(now - t)} ago`;
}

const pad = (n, w = 2) => String(n).padStart(w, '0');

/** Local time, "14:02" today, else "Dec 3, 14:02". @param {string|null|undefined} iso */
export function time(iso) {
  const t = toMs(iso);
  if (!Number.isFinite(t)) return '—';
  const d = new Date(t);
  const hm = `${pad(d.getHours())}:${pad(d.getMinutes())}`;
  const today = new Date();
  if (d.toDateString() === today.toDateString()) return hm;
  return `${d.toLocaleDateString('en-US', { month: 'short', day: 'numeric' })}, ${hm}`;
}

/** Local time with seconds and milliseconds: "2026-12-03 14:02:07.123". @param {string|null|undefined} iso */
export function timeMs(iso) {
  const t = toMs(iso);
  if (!Number.isFinite(t)) return '—';
  const d = new Date(t);
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}.${pad(d.getMilliseconds(), 3)}`;
}

/** The full timestamp for a title attribute. @param {string|null|undefined} iso */
export function fullTime(iso) {
  const t = toMs(iso);
  return Number.isFinite(t) ? new Date(t).toString() : '';
}

/** "SCENE_WRITTEN" → "Scene written", "durationSeconds" → "Duration seconds". @param {string} name */
export function humanize(name) {
  const s = String(name ?? '')
    .replace(/([a-z0-9])([A-Z])/g, '$1 $2')
    .toLowerCase()
    .replace(/[_\s]+/g, ' ')
    .trim();
  return s ? s[0].toUpperCase() + s.slice(1) : '';
}

/** Strings longer than this are shown cut in a task's input and output (a data: URI is tens of KB of base64). */
export const JSON_TEXT_MAX = 300;

/** Pretty JSON that never throws; strings longer than `max` cut, with their length. @param {unknown} value @param {number} [max] */
export function prettyJson(value, max = Infinity) {
  try {
    const s = JSON.stringify(value, (_key, v) => (typeof v === 'string' && v.length > max ? `${v.slice(0, max)}… (${v.length} characters)` : v), 2);
    return s === undefined ? String(value) : s;
  } catch {
    return String(value);
  }
}

/** One-line JSON, for table cells. @param {unknown} value */
export function compactJson(value) {
  try {
    const s = JSON.stringify(value);
    return s === undefined ? String(value) : s;
  } catch {
    return String(value);
  }
}

/** @param {number} n @param {string} one @param {string} [many] */
export function plural(n, one, many = `${one}s`) {
  return `${n} ${n === 1 ? one : many}`;
}

/** The task states in the order the bars and legends show them. */
export const TASK_STATUSES = ['COMPLETED', 'RUNNING', 'READY', 'WAITING_APPROVAL', 'PENDING', 'FAILED', 'CANCELLED'];

export const STATUS_LABEL = {
  PENDING: 'pending',
  READY: 'ready',
  RUNNING: 'running',
  COMPLETED: 'completed',
  FAILED: 'failed',
  CANCELLED: 'cancelled',
  WAITING_APPROVAL: 'waiting approval',
};

/** A shot index (0-based, as the API gives it) as people count it. @param {number} index */
export function shotLabel(index) {
  return `Shot ${index + 1}`;
}
