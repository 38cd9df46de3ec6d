import type { TaskEvent } from '../machines/task-machine.js';
import type { TaskActor } from '../actors/task-actor.js';
import type { BudgetChecker } from '../budget/budget-checker.js';
import { releaseFor } from '../budget/effects.js';
import type { Cancellation } from '../control/cancellation.js';
import type { ProjectLifecycle } from '../control/lifecycle.js';
import type { Promotion } from '../promotion/promotion.js';
import type { TaskScheduler } from '../orchestrator/scheduler.js';
import type { Core } from '../orchestrator/core.js';
import { sendAndPublish } from '../reactions/statuses.js';
import { copyIdOf } from './project-retry.js';
import type { Timers } from '../reactions/timers.js';

/** How many due retries, timed-out attempts or left-behind failures one sweep takes. */
const SWEEP_BATCH = 200;

/** Exponential back-off with full jitter: base * 2^(attempt-1), jittered within [50%, 100%]. */
export function backoffMs(baseMs: number, attempt: number, random: () => number = Math.random): number {
  const ceiling = baseMs * 2 ** Math.max(0, attempt - 1);
  return Math.round(ceiling / 2 + (random() * ceiling) / 2);
}

/**
 * Timeouts and retries: an attempt that failed — the agent's error, or its deadline
 * passed — is retried after a back-off while attempts remain (FAILED → PENDING with a
 * `notBefore`, promoted when it is over), else dead-lettered with its reason, its
 * dependents cancelled and its project reported `failed` (a user may retry it: see
 * project-retry.ts). Each step is decided on the fresh row and committed first.
 */
export class Retries {
  constructor(
    private readonly core: Core,
    private readonly budget: BudgetChecker,
    private readonly scheduler: TaskScheduler,
    private readonly promotion: Promotion,
    private readonly cancellation: Cancellation,
    private readonly lifecycle: ProjectLifecycle,
    private readonly timers: Timers,
  ) {}

  /** The deadline of a RUNNING task passed: the attempt fails (TIME_OUT) and is retried. */
  async timeOut(taskId: string): Promise<void> {
    // Decided on the row (a held copy may be stale: another process may have dispatched it).
    const actor = (await this.core.registry.refresh([taskId])).get(taskId);
    if (!actor) return;
    const { deadline } = actor.getSnapshot().context;
    const now = this.core.clock.now();
    if (actor.status !== 'RUNNING' || deadline === null || deadline > now) return;
    await this.fail(actor, { type: 'TIME_OUT', at: now });
  }

  /** A task just FAILED: retried after a back-off while attempts remain, else dead-lettered. */
  async afterFailure(taskId: string): Promise<void> {
    const actor = await this.core.registry.get(taskId);
    if (actor.status !== 'FAILED') return;
    const { attempts, maxAttempts } = actor.getSnapshot().context;
    if (attempts < maxAttempts) {
      const now = this.core.clock.now();
      const delay = backoffMs(this.core.config.scheduler.retryBackoffMs, attempts);
      await sendAndPublish(this.core, taskId, { type: 'RETRY', at: now, notBefore: now + delay });
      this.timers.later(delay, () => this.promotion.promote(taskId));
      return;
    }
    await this.deadLetter(actor);
  }

  /** RUNNING attempts past their deadline. */
  async sweepTimeouts(now: number): Promise<void> {
    for (const task of await this.core.tasks.listExpired(new Date(now), SWEEP_BATCH)) {
      try {
        await this.timeOut(task.taskId);
      } catch (err) {
        this.core.logger.warn({ err, taskId: task.taskId }, 'timeout of an attempt failed; the next sweep tries again');
      }
    }
  }

  /** Retries whose back-off is over (the timer that promotes them is only a shortcut). */
  async sweepDue(now: number): Promise<void> {
    const due = await this.core.tasks.listDueRetries(new Date(now), SWEEP_BATCH);
    if (due.length) await this.promotion.promoteMany(due.map((t) => t.taskId));
  }

  /** FAILED tasks a failed reaction did not retry or dead-letter (older than `before`). */
  async sweepFailed(before: Date): Promise<void> {
    for (const t of await this.core.tasks.loadNonFinal({ limit: SWEEP_BATCH, statuses: ['FAILED'] })) {
      if (t.updatedAt.getTime() >= before.getTime()) continue;
      await this.afterFailure(t.taskId).catch((err: unknown) => this.core.logger.warn({ err, taskId: t.taskId }, 'retry of a failed task failed'));
    }
  }

  /**
   * On start, for an open project: a task that failed for good, not retried since, whose
   * cascade or report a crash interrupted, has its dependents cancelled and its project
   * reported failed (both idempotent).
   */
  async recoverFailures(projectId: string): Promise<void> {
    const failed = (await this.core.tasks.listByProject(projectId, ['FAILED'])).filter((t) => t.attempts >= t.maxAttempts);
    if (!failed.length) return;
    const copied = new Set((await this.core.tasks.getTasks(failed.map((t) => copyIdOf(t.taskId)))).map((t) => t.taskId));
    const open = failed.filter((t) => !copied.has(copyIdOf(t.taskId)));
    for (const t of open) await this.cancellation.cancelDependents(t.taskId, `dependency ${t.taskId} failed: ${t.lastError ?? 'unknown error'}`);
    const last = open.at(-1);
    if (last) await this.lifecycle.fail(projectId, failureReason(last.taskId, last.taskType, last.attempts, last.maxAttempts, last.lastError));
  }

  private async fail(actor: TaskActor, event: TaskEvent): Promise<void> {
    await sendAndPublish(this.core, actor.taskId, event, { budget: releaseFor(actor, 0) });
    await this.scheduler.settled([actor.taskId]);
    await this.budget.afterChange(actor.projectId, true);
    await this.afterFailure(actor.taskId);
  }

  /** A task that used up its attempts: recorded as a dead letter, its dependents cancelled, its project failed. */
  private async deadLetter(actor: TaskActor): Promise<void> {
    const { taskId } = actor;
    const { attempts, maxAttempts, lastError } = actor.getSnapshot().context;
    await this.core.deadLetters.record({
      taskId,
      projectId: actor.projectId,
      reason: `failed ${attempts} of ${maxAttempts} attempts`,
      lastError,
      attempts,
      at: new Date(this.core.clock.now()),
    });
    this.core.metrics.deadLetter('task', 'ERR_ATTEMPTS_EXHAUSTED');
    this.core.logger.warn({ taskId, attempts, lastError }, 'task dead-lettered');
    await this.cancellation.cancelDependents(taskId, `dependency ${taskId} failed: ${lastError ?? 'unknown error'}`);
    await this.lifecycle.fail(actor.projectId, failureReason(taskId, actor.getSnapshot().context.taskType, attempts, maxAttempts, lastError));
  }
}

/** The reason a failed project gives: the task that failed for good, and how. */
export function failureReason(taskId: string, taskType: string, attempts: number, maxAttempts: number, lastError: string | null): string {
  return `task ${taskId} (${taskType}) failed ${attempts} of ${maxAttempts} attempts: ${lastError ?? 'unknown error'}`;
}
