import { ProjectNotFoundError, ValidationError } from '../errors.js';
import {
  TASK_VIEW_DEPENDENCIES,
  type DeadLetterView,
  type ProjectSummary,
  type QueryPage,
  type QueryRequest,
  type TaskView,
} from '../domain/messages.js';
import type { TaskRecord } from '../ports/task-store.js';
import type { Core } from '../orchestrator/core.js';

/** The answer to each kind of query (`<prefix>.query.<kind>`). */
export interface QueryAnswers {
  projects: QueryPage<ProjectSummary, string>;
  tasks: QueryPage<TaskView, string>;
  dead_letters: QueryPage<DeadLetterView, number>;
}

const URI = /^[a-z][a-z0-9+.-]*:\/\/\S+$/i;
const MAX_ARTIFACTS = 10;
const ERROR_CHARS = 500;

/** The URIs among an output's top-level values (an image, a video, a file), at most MAX_ARTIFACTS. */
export function artifactsOf(output: Record<string, unknown> | null): Record<string, string> {
  const found: Record<string, string> = {};
  if (!output) return found;
  let n = 0;
  for (const [key, value] of Object.entries(output)) {
    if (typeof value !== 'string' || value.length > 2_000 || !URI.test(value)) continue;
    found[key] = value;
    if (++n === MAX_ARTIFACTS) break;
  }
  return found;
}

function cut(text: string | null, max: number): string | null {
  return text === null || text.length <= max ? text : `${text.slice(0, max)}… (${text.length} characters)`;
}

export function taskView(t: TaskRecord): TaskView {
  return {
    taskId: t.taskId,
    taskType: t.taskType,
    agent: t.assignedTo,
    status: t.status,
    priority: t.priority,
    dependencies: t.dependencies.slice(0, TASK_VIEW_DEPENDENCIES),
    dependencyCount: t.dependencies.length,
    attempts: t.attempts,
    maxAttempts: t.maxAttempts,
    estimatedCost: t.estimatedCost,
    actualCost: t.actualCost,
    lastError: cut(t.lastError, ERROR_CHARS),
    artifacts: artifactsOf(t.output),
    ...(typeof t.input.shotIndex === 'number' ? { shotIndex: t.input.shotIndex } : {}),
    createdAt: t.createdAt.toISOString(),
    startedAt: t.startedAt?.toISOString() ?? null,
    completedAt: t.completedAt?.toISOString() ?? null,
  };
}

/**
 * The read side for operators: what the `<prefix>.query.<kind>` subjects answer (the CLI's
 * `projects`, `tasks` and `dlq`). Reads only, a bounded page each (the limits are the
 * request schema's, `QUERY_LIMITS`), from the stores: what PostgreSQL holds, whichever
 * instance wrote it.
 */
export class Queries {
  constructor(private readonly core: Core) {}

  handle(request: QueryRequest): Promise<QueryAnswers[QueryRequest['query']]> {
    switch (request.query) {
      case 'projects':
        return this.projects(request);
      case 'tasks':
        return this.tasks(request);
      case 'dead_letters':
        return this.deadLetters(request);
    }
  }

  async projects(q: Extract<QueryRequest, { query: 'projects' }>): Promise<QueryAnswers['projects']> {
    // A cursor names a row that exists (a mistyped one would give an empty page, read as the end).
    if (q.after && !(await this.core.projects.getProject(q.after))) throw new ValidationError(`after: ${q.after} is no project (pass the previous page's next)`);
    // One more than asked: whether there is a next page.
    const rows = await this.core.projects.listProjectsPage({ ...(q.states ? { states: q.states } : {}), ...(q.after ? { after: q.after } : {}), limit: q.limit + 1 });
    const page = rows.slice(0, q.limit);
    const ids = page.map((p) => p.projectId);
    const [counts, pending] = await Promise.all([this.core.tasks.countByProjects(ids), this.core.projects.listPendingApprovals(ids)]);
    const items = page.map<ProjectSummary>((p) => ({
      projectId: p.projectId,
      title: p.title,
      state: p.state,
      reason: p.pausedReason,
      budget: { limit: p.budgetLimit, spent: p.spent, reserved: p.reserved },
      tasks: counts[p.projectId] ?? {},
      pendingApprovals: pending
        .filter((a) => a.projectId === p.projectId)
        .map((a) => ({ approvalId: a.approvalId, checkpoint: a.checkpoint, requestedAt: a.requestedAt.toISOString() })),
      createdAt: p.createdAt.toISOString(),
      updatedAt: p.updatedAt.toISOString(),
    }));
    return { items, next: rows.length > q.limit ? (page[page.length - 1]?.projectId ?? null) : null };
  }

  async tasks(q: Extract<QueryRequest, { query: 'tasks' }>): Promise<QueryAnswers['tasks']> {
    if (!(await this.core.projects.getProject(q.projectId))) throw new ProjectNotFoundError(q.projectId);
    if (q.after && (await this.core.tasks.getTask(q.after))?.projectId !== q.projectId) {
      throw new ValidationError(`after: ${q.after} is no task of ${q.projectId} (pass the previous page's next)`);
    }
    const rows = await this.core.tasks.listProjectPage(q.projectId, { ...(q.statuses ? { statuses: q.statuses } : {}), ...(q.after ? { after: q.after } : {}), limit: q.limit + 1 });
    const page = rows.slice(0, q.limit);
    return { items: page.map(taskView), next: rows.length > q.limit ? (page[page.length - 1]?.taskId ?? null) : null };
  }

  async deadLetters(q: Extract<QueryRequest, { query: 'dead_letters' }>): Promise<QueryAnswers['dead_letters']> {
    if (q.projectId && !(await this.core.projects.getProject(q.projectId))) throw new ProjectNotFoundError(q.projectId);
    const rows = await this.core.deadLetters.listPage({ ...(q.projectId ? { projectId: q.projectId } : {}), ...(q.after ? { before: q.after } : {}), limit: q.limit + 1 });
    const page = rows.slice(0, q.limit);
    const items = page.map<DeadLetterView>((d) => ({
      id: d.id,
      taskId: d.taskId,
      projectId: d.projectId,
      reason: cut(d.reason, 2_000)!,
      lastError: cut(d.lastError, ERROR_CHARS),
      attempts: d.attempts,
      at: d.at.toISOString(),
    }));
    return { items, next: rows.length > q.limit ? (page[page.length - 1]?.id ?? null) : null };
  }
}
