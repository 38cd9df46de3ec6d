import { ValidationError } from '../errors.js';
import { PROJECT_STATES, type ProjectState } from '../domain/project.js';
import { TASK_STATUSES, type TaskStatus } from '../domain/task.js';
import { QUERY_LIMITS, type DeadLetterView, type ProjectSummary, type QueryKind, type QueryPage, type TaskView } from '../domain/messages.js';
import { query } from './remote.js';
import { withConnection } from './remote-commands.js';
import { bar, cutText, money, table, when } from './table.js';
import type { CliIo, ParsedArgs } from './types.js';

/**
 * `projects`, `tasks <projectId>`, `dlq`: one query each (`<prefix>.query.<kind>`), a page
 * at a time (`--limit`, `--after` the cursor the previous page printed), as an aligned
 * table or, with `--json`, the answer as it came (`{ items, next }`).
 */

function text(args: ParsedArgs, name: string): string | undefined {
  const v = args.values[name];
  return typeof v === 'string' ? v : undefined;
}

function limitOf(args: ParsedArgs): number | undefined {
  const raw = text(args, 'limit');
  if (raw === undefined) return undefined;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 1) throw new ValidationError(`--limit expects a positive integer, got ${raw}`);
  return n;
}

function listOf<T extends string>(raw: string | undefined, allowed: readonly T[], flag: string, normalise: (s: string) => string): T[] | undefined {
  if (raw === undefined) return undefined;
  const items = raw.split(',').map((s) => normalise(s.trim())).filter(Boolean);
  const bad = items.filter((s) => !(allowed as readonly string[]).includes(s));
  if (bad.length || items.length === 0) throw new ValidationError(`--${flag} expects some of ${allowed.join(', ')} (comma-separated), got ${raw}`);
  return items as T[];
}

async function page<T, C>(io: CliIo, kind: QueryKind, body: Record<string, unknown>): Promise<QueryPage<T, C>> {
  return withConnection(io, (nc, config) => query<QueryPage<T, C>>(nc, config, kind, body));
}

function more(next: unknown, command: string): string {
  return next === null ? '' : `\n\nmore: orchestrator ${command} --after ${String(next)}`;
}

// ---------------------------------------------------------------------------------------
// projects

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

export async function runProjectsCommand(args: ParsedArgs, io: CliIo): Promise<number> {
  const states = listOf<ProjectState>(text(args, 'state'), PROJECT_STATES, 'state', (s) => s.toLowerCase());
  const limit = limitOf(args);
  const after = text(args, 'after');
  const result = await page<ProjectSummary, string>(io, 'projects', { ...(states ? { states } : {}), ...(limit ? { limit } : {}), ...(after ? { after } : {}) });
  if (args.values.json) io.out(JSON.stringify(result));
  else io.out(`${formatProjects(result.items)}${more(result.next, 'projects')}`);
  return 0;
}

// ---------------------------------------------------------------------------------------
// tasks

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

export async function runTasksCommand(args: ParsedArgs, io: CliIo, usage: string): Promise<number> {
  const [projectId] = args.positionals;
  if (!projectId) throw new ValidationError(`missing <projectId>; usage: orchestrator ${usage}`);
  const statuses = listOf<TaskStatus>(text(args, 'state'), TASK_STATUSES, 'state', (s) => s.toUpperCase());
  const limit = limitOf(args);
  const after = text(args, 'after');
  const result = await page<TaskView, string>(io, 'tasks', { projectId, ...(statuses ? { statuses } : {}), ...(limit ? { limit } : {}), ...(after ? { after } : {}) });
  if (args.values.json) io.out(JSON.stringify(result));
  else io.out(`${formatTasks(result.items)}${more(result.next, `tasks ${projectId}`)}`);
  return 0;
}

// ---------------------------------------------------------------------------------------
// dlq

export function formatDeadLetters(items: readonly DeadLetterView[]): string {
  if (items.length === 0) return 'no dead letters';
  return table(
    [{ header: 'id', right: true }, { header: 'when' }, { header: 'project' }, { header: 'task' }, { header: 'tries', right: true }, { header: 'reason', max: 70 }, { header: 'last error' }],
    items.map((d) => [String(d.id), when(d.at), d.projectId, d.taskId, String(d.attempts), d.reason, d.lastError ? cutText(d.lastError, 100) : '—']),
  );
}

export async function runDlqCommand(args: ParsedArgs, io: CliIo): Promise<number> {
  const projectId = args.positionals[0] ?? text(args, 'project');
  const limit = limitOf(args);
  const rawAfter = text(args, 'after');
  const after = rawAfter === undefined ? undefined : Number(rawAfter);
  if (after !== undefined && (!Number.isInteger(after) || after < 1)) throw new ValidationError(`--after expects a dead letter id, got ${rawAfter}`);
  if (args.values.messages) {
    if (projectId) throw new ValidationError('--messages lists every rejected message (their subjects name the project): without a project');
    if (limit !== undefined && limit > QUERY_LIMITS.dead_letters.max) throw new ValidationError(`--limit: at most ${QUERY_LIMITS.dead_letters.max}`);
    const { rejectedMessages, formatRejected } = await import('./dlq-messages.js');
    const result = await withConnection(io, (nc, config) => rejectedMessages(nc, config, limit ?? QUERY_LIMITS.dead_letters.default, after));
    if (args.values.json) io.out(JSON.stringify(result));
    else io.out(`${formatRejected(result.items)}${more(result.next, 'dlq --messages')}`);
    return 0;
  }
  const result = await page<DeadLetterView, number>(io, 'dead_letters', { ...(projectId ? { projectId } : {}), ...(limit ? { limit } : {}), ...(after ? { after } : {}) });
  if (args.values.json) io.out(JSON.stringify(result));
  else io.out(`${formatDeadLetters(result.items)}${more(result.next, `dlq${projectId ? ` ${projectId}` : ''}`)}`);
  return 0;
}
