import type { TaskView } from '../domain/messages.js';
import { cutText, table, when, wrap, type Column } from './table.js';

/**
 * What a pending checkpoint asks a person to judge, in human form: the checkpoint event's
 * payload (the request's `summary`) laid out — a script as text, a list of shots as a table
 * (with the images made for each shot so far), URIs of images and videos as they are. The
 * summary is read defensively: an orchestrator may send it whole (arrays as arrays) or
 * bounded (arrays as `{ count, first }`, long strings cut), and its fields depend on the
 * pipeline.
 */
export interface ReviewedApproval {
  approvalId: string;
  checkpoint: string;
  requestedAt: string;
  expiresAt: string | null;
  summary?: unknown;
  counts?: { tasks?: number; shots?: number };
  taskIds?: unknown;
}

export interface ReviewInput {
  project: { projectId: string };
  pendingApprovals: readonly ReviewedApproval[];
}

/** Media made per shot: shot index → artifact name (`image`, `video`) → URI, the latest completed task's. */
export type ShotMedia = Record<number, Record<string, string>>;

export const isObject = (v: unknown): v is Record<string, unknown> => v !== null && typeof v === 'object' && !Array.isArray(v);
const URI = /^[a-z][a-z0-9+.-]*:\/\/\S+$/i;

/** A list as the summary carries it: an array, or a bounded one `{ count, first }`. */
export function asList(value: unknown): { items: unknown[]; count: number } | null {
  if (Array.isArray(value)) return { items: value, count: value.length };
  if (isObject(value) && typeof value.count === 'number' && Object.keys(value).every((k) => k === 'count' || k === 'first')) {
    return { items: Array.isArray(value.first) ? value.first : [], count: value.count };
  }
  return null;
}

function scalar(value: unknown): string {
  if (value === null || value === undefined) return '—';
  if (typeof value === 'string') return value;
  if (typeof value === 'number' || typeof value === 'boolean') return String(value);
  return JSON.stringify(value);
}

const MAX_COLUMNS = 6;

function listTable(key: string, items: readonly unknown[], count: number, indent: string, media: ShotMedia | null): string[] {
  const rows = items.filter(isObject);
  const keys: string[] = [];
  for (const r of rows) for (const k of Object.keys(r)) if (!keys.includes(k) && keys.length < MAX_COLUMNS) keys.push(k);
  // The shots' media (keyframes, clips) joined by index: `index` when the items carry one, else their position.
  const indexOf = (r: Record<string, unknown>, i: number) => (typeof r.index === 'number' ? r.index : i);
  const mediaKeys = media ? [...new Set(rows.flatMap((r, i) => Object.keys(media[indexOf(r, i)] ?? {})))] : [];
  const hasIndex = keys.includes('index');
  const columns: Column[] = [
    ...(hasIndex ? [] : [{ header: '#', right: true }]),
    ...keys.map((k) => ({ header: k, right: rows.every((r) => r[k] === undefined || typeof r[k] === 'number'), max: 50 })),
    ...mediaKeys.map((k) => ({ header: k, max: 200 })),
  ];
  const body = rows.map((r, i) => [
    ...(hasIndex ? [] : [String(i)]),
    ...keys.map((k) => scalar(r[k])),
    ...mediaKeys.map((k) => media?.[indexOf(r, i)]?.[k] ?? '—'),
  ]);
  const shown = rows.length < count ? ` — the first ${rows.length} shown` : '';
  return [`${indent}${key} (${count})${shown}`, ...table(columns, body).split('\n').map((l) => `${indent}  ${l}`)];
}

/** The lines of one summary field. */
function field(key: string, value: unknown, indent: string, depth: number, media: ShotMedia | null): string[] {
  const list = asList(value);
  if (list) {
    if (list.items.length && list.items.every(isObject)) return listTable(key, list.items, list.count, indent, key === 'shots' ? media : null);
    const shown = list.items.map(scalar).join(', ');
    return [`${indent}${key} (${list.count})${list.count ? `: ${shown}${list.items.length < list.count ? ', …' : ''}` : ''}`];
  }
  if (typeof value === 'string') {
    if (URI.test(value)) return [`${indent}${key}  ${value}`];
    if (value.length > 60 || value.includes('\n')) return [`${indent}${key}`, wrap(value, `${indent}  `)];
    return [`${indent}${key}  ${value}`];
  }
  if (isObject(value) && depth < 2) {
    return [`${indent}${key}`, ...Object.entries(value).flatMap(([k, v]) => field(k, v, `${indent}  `, depth + 1, media))];
  }
  return [`${indent}${key}  ${cutText(scalar(value), 200)}`];
}

/** One pending request, laid out for a person, with how to decide it. */
export function formatApproval(projectId: string, a: ReviewedApproval, media: ShotMedia | null): string {
  const tasks = a.counts?.tasks ?? (Array.isArray(a.taskIds) ? a.taskIds.length : undefined);
  const lines = [
    `checkpoint ${a.checkpoint} — approval ${a.approvalId}`,
    `  waiting since ${when(a.requestedAt)}${a.expiresAt ? `, expires ${when(a.expiresAt)}` : ''}${tasks !== undefined ? `; ${tasks} task${tasks === 1 ? '' : 's'} wait for the decision` : ''}`,
  ];
  const summary = isObject(a.summary) ? a.summary : {};
  const entries = Object.entries(summary);
  if (entries.length === 0) lines.push('  (the request carries nothing to show)');
  for (const [k, v] of entries) lines.push(...field(k, v, '  ', 0, media));
  // Whether a rejection may name shots: the request says so (`counts.shots`); an older orchestrator's does not, its preview does.
  const shots = a.counts ? a.counts.shots : a.checkpoint === 'PREVIEW_VIDEO_READY' ? (asList(summary.shots)?.count ?? undefined) : undefined;
  const shotsHint = shots === undefined ? '' : ` [--shots 0,2]  (shots 0 to ${shots - 1}; without --shots, every shot is redone)`;
  lines.push(
    `  approve  orchestrator approve ${projectId} --approval ${a.approvalId}`,
    `  reject   orchestrator reject ${projectId} --approval ${a.approvalId} --comment "what to change"${shotsHint}`,
  );
  return lines.join('\n');
}

/** Media per shot from a project's completed tasks (the latest completion of each kind wins). */
export function shotMedia(tasks: readonly TaskView[]): ShotMedia {
  const media: ShotMedia = {};
  const at: Record<string, string> = {};
  for (const t of tasks) {
    if (t.status !== 'COMPLETED' || t.shotIndex === undefined) continue;
    for (const [name, uri] of Object.entries(t.artifacts)) {
      const key = `${t.shotIndex}:${name}`;
      const done = t.completedAt ?? '';
      if (at[key] !== undefined && at[key] > done) continue;
      at[key] = done;
      (media[t.shotIndex] ??= {})[name] = uri;
    }
  }
  return media;
}

