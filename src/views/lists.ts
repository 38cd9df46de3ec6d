import type { TaskStatus } from '../domain/task.js';
import type { DeadLetterView, ProjectSummary, TaskView } from '../domain/messages.js';
import { bar, cutText, money, table, when } from './table.js';
import type { RejectedMessageView } from '../ports/console.js';

/** The operator's lists (the CLI's `projects`, `tasks`, `dlq`) as aligned tables, from the queries' answers. */

const TASK_ORDER: readonly TaskStatus[] = ['RUNNING', 'READY', 'PENDING', 'WAITING_APPROVAL', 'FAILED', 'CANCELLED', 'COMPLETED'];
const SHORT: Record<TaskStatus, string> = {
  RUNNING: 'running',
  READY: 'ready',
  PENDING: 'pending',
  WAITING_APPROVAL: 'awaiting',
  FAILED: 'failed',
  CANCELLED: 'cancelled',
  COMPLETED: 'done',
};

/** `12/30 ████░░░░░░`: completed tasks of all, and a bar. */
export function progress(tasks: Partial<Record<TaskStatus, number>>): string {
  const total = Object.values(tasks).reduce((a, n) => a + (n ?? 0), 0);
  const done = tasks.COMPLETED ?? 0;
  return `${bar(done, total)} ${done}/${total}`;
}

function breakdown(tasks: Partial<Record<TaskStatus, number>>): string {
  const parts = TASK_ORDER.filter((s) => s !== 'COMPLETED' && tasks[s]).map((s) => `${tasks[s]} ${SHORT[s]}`);
  return parts.join(', ') || '—';
}

function budget(b: ProjectSummary['budget']): string {
  const used = money(b.spent + b.reserved);
  return b.limit === null ? `${used} (no limit)` : `${used} of ${money(b.limit)}`;
}

export function formatProjects(items: readonly ProjectSummary[]): string {
  if (items.length === 0) return 'no projects';
  return table(
    [
      { header: 'project' },
      { header: 'title', max: 30 },
      { header: 'state' },
      { header: 'progress' },
      { header: 'tasks', max: 50 },
      { header: 'budget', right: true },
      { header: 'review', max: 50 },
      { header: 'why' },
    ],
    items.map((p) => [
      p.projectId,
      p.title,
      p.state,
      progress(p.tasks),
      breakdown(p.tasks),
      budget(p.budget),
      p.pendingApprovals.map((a) => a.checkpoint).join(', ') || '—',
      // Why it is paused or failed: in full, last (a failure names the task and its error).
      p.reason && (p.state === 'paused' || p.state === 'failed') ? p.reason : '',
    ]),
  );
}

/** `#3-#7,#9`: the numbers of the dependencies, runs joined. */
function refs(numbers: number[]): string {
  const sorted = [...numbers].sort((a, b) => a - b);
  const parts: string[] = [];
  for (let i = 0; i < sorted.length; ) {
    let j = i;
    while (j + 1 < sorted.length && sorted[j + 1] === sorted[j]! + 1) j++;
    parts.push(j > i + 1 ? `#${sorted[i]}-#${sorted[j]}` : sorted.slice(i, j + 1).map((n) => `#${n}`).join(','));
    i = j + 1;
  }
  return parts.join(',');
}

/**
 * The tasks in the order of their graph: each after its dependencies (those on the page),
 * otherwise in creation order, a shot's tasks by shot — so a task's dependents follow it.
 */
export function graphOrder(items: readonly TaskView[]): TaskView[] {
  const index = new Map(items.map((t, i) => [t.taskId, i]));
  const key = (t: TaskView): [string, number, number] => [t.createdAt, t.shotIndex ?? -1, index.get(t.taskId)!];
  const before = (a: TaskView, b: TaskView): boolean => {
    const [x, y] = [key(a), key(b)];
    return x[0] !== y[0] ? x[0] < y[0] : x[1] !== y[1] ? x[1] < y[1] : x[2] < y[2];
  };
  const waiting = new Map(items.map((t) => [t.taskId, new Set(t.dependencies.filter((d) => index.has(d) && d !== t.taskId))]));
  const dependents = new Map<string, string[]>();
  for (const t of items) for (const d of waiting.get(t.taskId)!) (dependents.get(d) ?? dependents.set(d, []).get(d)!).push(t.taskId);
  const byId = new Map(items.map((t) => [t.taskId, t]));
  const out: TaskView[] = [];
  const ready = items.filter((t) => waiting.get(t.taskId)!.size === 0);
  const placed = new Set<string>();
  while (out.length < items.length) {
    // A cycle cannot be stored; should one be on the page all the same, the rest follow in creation order.
    if (ready.length === 0) ready.push(...items.filter((t) => !placed.has(t.taskId)));
    let best = 0;
    for (let i = 1; i < ready.length; i++) if (before(ready[i]!, ready[best]!)) best = i;
    const [t] = ready.splice(best, 1);
    if (placed.has(t!.taskId)) continue;
    placed.add(t!.taskId);
    out.push(t!);
    for (const id of dependents.get(t!.taskId) ?? []) {
      const w = waiting.get(id)!;
      w.delete(t!.taskId);
      if (w.size === 0 && !placed.has(id)) ready.push(byId.get(id)!);
    }
  }
  return out;
}

/**
 * The task graph as an indented table: each task numbered, after its dependencies, indented
 * by its depth (the longest chain of dependencies above it on the page), its dependencies by
 * number (`#3-#7`; one outside this page by its id's start). A DAG, not a tree: a task that
 * waits for many (a fan-in) lists them all and is drawn once.
 */
export function formatTasks(page: readonly TaskView[]): string {
  if (page.length === 0) return 'no tasks';
  const items = graphOrder(page);
  const number = new Map(items.map((t, i) => [t.taskId, i + 1]));
  const depth = new Map<string, number>();
  for (const t of items) {
    const above = t.dependencies.map((d) => depth.get(d)).filter((d): d is number => d !== undefined);
    depth.set(t.taskId, above.length ? Math.max(...above) + 1 : 0);
  }
  const rows = items.map((t) => {
    const d = depth.get(t.taskId)!;
    const inside = t.dependencies.filter((id) => number.has(id)).map((id) => number.get(id)!);
    const outside = t.dependencies.filter((id) => !number.has(id)).map((id) => cutText(id, 14));
    const hidden = t.dependencyCount - t.dependencies.length;
    const deps = [refs(inside), ...outside, ...(hidden > 0 ? [`+${hidden} more`] : [])].filter(Boolean).join(',');
    const cost = t.actualCost !== null ? money(t.actualCost) : t.estimatedCost !== null ? `~${money(t.estimatedCost)}` : '—';
    const artifact = Object.values(t.artifacts)[0];
    const note = t.lastError && t.status !== 'COMPLETED' ? cutText(t.lastError, 60) : (artifact ?? '');
    return [
      `#${number.get(t.taskId)}`,
      `${'  '.repeat(Math.min(d, 8))}${d > 0 ? '└ ' : ''}${t.taskType}${t.shotIndex !== undefined ? ` [shot ${t.shotIndex}]` : ''}`,
      t.status,
      t.agent,
      `${t.attempts}/${t.maxAttempts}`,
      cost,
      deps || '—',
      t.taskId,
      note,
    ];
  });
  const counts = new Map<string, number>();
  for (const t of items) counts.set(t.status, (counts.get(t.status) ?? 0) + 1);
  return [
    table(
      [{ header: '#', right: true }, { header: 'task', max: 60 }, { header: 'state' }, { header: 'agent' }, { header: 'tries', right: true }, { header: 'cost', right: true }, { header: 'after', max: 30 }, { header: 'id' }, { header: 'output / error' }],
      rows,
    ),
    '',
    `${items.length} tasks: ${[...counts.entries()].map(([s, n]) => `${n} ${s}`).join(', ')}`,
  ].join('\n');
}

export function formatDeadLetters(items: readonly DeadLetterView[]): string {
  if (items.length === 0) return 'no dead letters';
  return table(
    [{ header: 'id', right: true }, { header: 'when' }, { header: 'project' }, { header: 'task' }, { header: 'tries', right: true }, { header: 'reason', max: 70 }, { header: 'last error' }],
    items.map((d) => [String(d.id), when(d.at), d.projectId, d.taskId, String(d.attempts), d.reason, d.lastError ? cutText(d.lastError, 100) : '—']),
  );
}


/** A rejected inbound message kept in `<PREFIX>_DLQ`: where it came, why it was refused, what it said. */
export type RejectedMessage = RejectedMessageView;

export function formatRejected(items: readonly RejectedMessage[]): string {
  if (items.length === 0) return 'no rejected messages';
  return table(
    [{ header: 'seq', right: true }, { header: 'when' }, { header: 'subject', max: 80 }, { header: 'reason', max: 90 }, { header: 'message' }],
    items.map((m) => [String(m.seq), when(m.at), m.subject, m.reason, cutText(m.data, 120)]),
  );
}
