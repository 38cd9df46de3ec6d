import { ValidationError } from '../errors.js';
import { PROJECT_STATES, type ProjectState } from '../domain/project.js';
import { TASK_STATUSES, type TaskStatus } from '../domain/task.js';
import { QUERY_LIMITS, type DeadLetterView, type ProjectSummary, type QueryKind, type QueryPage, type TaskView } from '../domain/messages.js';
import { query } from './remote.js';
import { withConnection } from './remote-commands.js';
import { formatDeadLetters, formatProjects, formatRejected, formatTasks } from '../views/lists.js';
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

export async function runProjectsCommand(args: ParsedArgs, io: CliIo): Promise<number> {
  const states = listOf<ProjectState>(text(args, 'state'), PROJECT_STATES, 'state', (s) => s.toLowerCase());
  const limit = limitOf(args);
  const after = text(args, 'after');
  const result = await page<ProjectSummary, string>(io, 'projects', { ...(states ? { states } : {}), ...(limit ? { limit } : {}), ...(after ? { after } : {}) });
  if (args.values.json) io.out(JSON.stringify(result));
  else io.out(`${formatProjects(result.items)}${more(result.next, 'projects')}`);
  return 0;
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

export async function runDlqCommand(args: ParsedArgs, io: CliIo): Promise<number> {
  const projectId = args.positionals[0] ?? text(args, 'project');
  const limit = limitOf(args);
  const rawAfter = text(args, 'after');
  const after = rawAfter === undefined ? undefined : Number(rawAfter);
  if (after !== undefined && (!Number.isInteger(after) || after < 1)) throw new ValidationError(`--after expects a dead letter id, got ${rawAfter}`);
  if (args.values.messages) {
    if (projectId) throw new ValidationError('--messages lists every rejected message (their subjects name the project): without a project');
    if (limit !== undefined && limit > QUERY_LIMITS.dead_letters.max) throw new ValidationError(`--limit: at most ${QUERY_LIMITS.dead_letters.max}`);
    const { rejectedMessages } = await import('../adapters/nats/rejected-messages.js');
    const result = await withConnection(io, (nc, config) => rejectedMessages(nc, config.nats.subjectPrefix, limit ?? QUERY_LIMITS.dead_letters.default, after));
    if (args.values.json) io.out(JSON.stringify(result));
    else io.out(`${formatRejected(result.items)}${more(result.next, 'dlq --messages')}`);
    return 0;
  }
  const result = await page<DeadLetterView, number>(io, 'dead_letters', { ...(projectId ? { projectId } : {}), ...(limit ? { limit } : {}), ...(after ? { after } : {}) });
  if (args.values.json) io.out(JSON.stringify(result));
  else io.out(`${formatDeadLetters(result.items)}${more(result.next, `dlq${projectId ? ` ${projectId}` : ''}`)}`);
  return 0;
}
