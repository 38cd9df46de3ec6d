import { createHash } from 'node:crypto';
import { IllegalTransitionError, ProjectNotFoundError, ValidationError } from '../errors.js';
import type { NewTaskInput } from '../domain/task.js';
import type { TaskRecord } from '../ports/task-store.js';
import type { PlannedTask } from '../pipeline/event-mapper.js';
import type { ProjectLifecycle } from '../control/lifecycle.js';
import type { Ingest } from '../ingest/ingest.js';
import type { Core } from '../orchestrator/core.js';

/** The tasks a retry plans: a copy of each task that failed for good and of its cancelled dependents. */
export interface RetryPlan {
  /** The tasks that failed for good and get a copy. */
  failed: string[];
  /** The copies, dependencies rewired to the copies; ids derived from the originals (copyIdOf). */
  tasks: (PlannedTask & Pick<NewTaskInput, 'assignedTo' | 'maxAttempts' | 'timeoutMs'>)[];
  /** The event the copies are ingested under: one effect per retry, whoever sends it and how often. */
  eventId: string;
}

export interface RetryOutcome {
  projectId: string;
  /** The tasks that had failed for good, copied now (empty: an earlier retry copied them). */
  failed: string[];
  /** The ids of the copies created now. */
  taskIds: string[];
}

/**
 * The id of a task's copy: derived from the original's, so that the copy is found again
 * (the original counts as retried once it exists) and two processes retrying at once plan
 * the same tasks under the same event.
 */
export function copyIdOf(taskId: string): string {
  return `tsk_${createHash('sha256').update(`retry:${taskId}`).digest('hex').slice(0, 32)}`;
}

const failedForGood = (t: TaskRecord) => t.status === 'FAILED' && t.attempts >= t.maxAttempts;

/**
 * What a retry of a project plans, from its tasks (pure). A task that failed for good and
 * has no copy yet gets one, with fresh attempts; so does each CANCELLED task downstream of
 * it (its dependents were cancelled in cascade). A copy depends on the copies of what the
 * original depended on, and on the completed tasks themselves. The originals stay as they
 * are (final, in the audit log): a task's terminal transition is never undone.
 */
export function planRetry(projectId: string, tasks: readonly TaskRecord[]): RetryPlan {
  const byId = new Map(tasks.map((t) => [t.taskId, t]));
  const dependents = new Map<string, TaskRecord[]>();
  for (const t of tasks) {
    for (const dep of t.dependencies) dependents.set(dep, [...(dependents.get(dep) ?? []), t]);
  }
  const failed = tasks.filter((t) => failedForGood(t) && !byId.has(copyIdOf(t.taskId))).map((t) => t.taskId);
  const copied = new Set<string>();
  const order: TaskRecord[] = [];
  const visit = (task: TaskRecord) => {
    if (copied.has(task.taskId)) return;
    copied.add(task.taskId);
    order.push(task);
    for (const d of dependents.get(task.taskId) ?? []) {
      if (d.status === 'CANCELLED' && !byId.has(copyIdOf(d.taskId))) visit(d);
    }
  };
  for (const id of failed) visit(byId.get(id)!);
  // The task that stands for a dependency now: the latest copy of it, if any.
  const current = (id: string): string => {
    let at = id;
    while (copied.has(at) || byId.has(copyIdOf(at))) at = copyIdOf(at);
    return at;
  };
  const planned = order.map((t) => ({
    taskId: copyIdOf(t.taskId),
    projectId,
    taskType: t.taskType,
    assignedTo: t.assignedTo,
    priority: t.priority,
    input: t.input,
    dependencies: t.dependencies.map(current),
    maxAttempts: t.maxAttempts,
    timeoutMs: t.timeoutMs,
  }));
  const key = createHash('sha256').update(planned.map((p) => p.taskId).sort().join(',')).digest('hex').slice(0, 24);
  return { failed, tasks: planned, eventId: `retry:${key}` };
}

/**
 * A user's retry of a project (the `retry` control action, the CLI): every task of it
 * that failed for good is planned again with fresh attempts, with its cancelled dependents
 * (planRetry), then the project — `failed` — is made active again, and its waiting work
 * goes on. Decide → commit → react: the copies are ingested first, in one transaction and
 * idempotent by the plan's event id; then the project machine's RETRY step, whose
 * reaction promotes them. Interrupted between the two, a retry sent again finds nothing
 * left to copy and takes the step.
 */
export class ProjectRetry {
  constructor(
    private readonly core: Core,
    private readonly ingest: Ingest,
    private readonly lifecycle: ProjectLifecycle,
  ) {}

  async retry(projectId: string): Promise<RetryOutcome> {
    const project = await this.core.projects.getProject(projectId);
    if (!project) throw new ProjectNotFoundError(projectId);
    if (project.state === 'completed' || project.state === 'cancelled') {
      throw new ValidationError(`project ${projectId} is ${project.state}: nothing to retry`);
    }
    const plan = planRetry(projectId, await this.core.tasks.listByProject(projectId));
    let taskIds: string[] = [];
    if (plan.tasks.length) {
      const outcome = await this.ingest.retry(projectId, plan.eventId, plan.failed, plan.tasks);
      taskIds = outcome.taskIds;
      await outcome.reacted;
    }
    try {
      await this.lifecycle.send(projectId, { type: 'RETRY' });
    } catch (err) {
      if (!(err instanceof IllegalTransitionError)) throw err;
      // Not failed (any more): fine when there was something to copy (its failure may not
      // have been reported yet, or another process took the step), else nothing to retry.
      if (!plan.tasks.length) throw new ValidationError(`project ${projectId} is ${err.state}: it has no task that failed for good to retry`);
    }
    return { projectId, failed: plan.failed, taskIds };
  }
}
