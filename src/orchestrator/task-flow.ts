import { BudgetExceededError } from '../errors.js';
import type { TaskEvent } from '../machines/task-machine.js';
import type { SendOptions, TaskActor, TaskTransition } from '../actors/task-actor.js';
import type { OutboxEvent } from '../ports/task-store.js';
import type { BudgetChecker } from './budget-checker.js';
import { BatchFlow, type PromoteOutcome } from './batch-flow.js';
import { acceptsWork, backoffMs, publishTransition, type Core } from './core.js';

export type { PromoteOutcome };

export interface TaskFlowHooks {
  /** Tasks left RUNNING: free their slots and release their leases. */
  settledMany(taskIds: readonly string[]): Promise<void>;
  /** Tasks were queued: dispatch soon. */
  wake(): void;
  /** A reservation did not fit: pause the project (budget_exhausted). */
  pauseForBudget(projectId: string): Promise<void>;
  /** Handle events a transition raised (already in the outbox). */
  handleRaised(events: readonly OutboxEvent[]): Promise<void>;
  /** Runs a project's reaction in its project's order; never rejects. */
  react(projectId: string, what: string, fn: () => Promise<void>): Promise<void>;
}

/**
 * The life of a task after creation: promotion to READY (dependencies, back-off, budget
 * reservation), results, failures with retries and dead letters, cancellation cascades.
 * Every step is a durable transition of the task actor first, side effects after.
 */
export class TaskFlow {
  private readonly timers = new Set<unknown>();
  private stopped = false;
  /** The batched hot paths (promotion, results). */
  readonly batch: BatchFlow;

  constructor(
    private readonly core: Core,
    private readonly budget: BudgetChecker,
    private readonly hooks: TaskFlowHooks,
  ) {
    this.batch = new BatchFlow(core, budget, {
      settledMany: (ids) => hooks.settledMany(ids),
      wake: () => hooks.wake(),
      pauseForBudget: (projectId) => hooks.pauseForBudget(projectId),
      handleRaised: (events) => hooks.handleRaised(events),
      react: (projectId, what, fn) => hooks.react(projectId, what, fn),
      afterFailure: (taskId) => this.afterFailure(taskId),
      cancelTask: (taskId, reason) => this.cancelTask(taskId, reason),
      later: (ms, fn) => this.later(ms, fn),
    });
  }

  /** A durable transition, published on the status subject. */
  async send(taskId: string, event: TaskEvent, options?: SendOptions): Promise<TaskTransition> {
    const t = await this.core.registry.send(taskId, event, options);
    await publishTransition(this.core, t);
    return t;
  }

  now(): number {
    return this.core.clock.now();
  }

  /** Every dependency COMPLETED (`TaskScheduler.checkDependencies`). */
  async dependencyState(taskId: string): Promise<{ met: boolean; broken: string | null }> {
    const record = await this.core.tasks.getTask(taskId);
    if (!record) return { met: false, broken: null };
    return (await this.batch.dependencyStates([record])).get(taskId)!;
  }

  /** Moves a PENDING task to READY when it may run, reserving its estimate. */
  async promote(taskId: string): Promise<PromoteOutcome> {
    return (await this.batch.promoteMany([taskId])).get(taskId) ?? 'skipped';
  }

  /** Approves a task waiting at a checkpoint: READY when it can run now, else PENDING. */
  async approve(taskId: string): Promise<void> {
    const actor = (await this.core.registry.refresh([taskId])).get(taskId);
    if (actor?.status !== 'WAITING_APPROVAL') return;
    const deps = await this.dependencyState(taskId);
    const project = await this.core.projects.getProject(actor.projectId);
    if (deps.met && acceptsWork(project?.state)) {
      try {
        await this.send(taskId, { type: 'APPROVE', at: this.now(), dependenciesMet: true }, { budget: this.batch.reserve(actor) });
        await this.core.queue.put({ taskId: actor.taskId, priority: actor.priority });
        this.hooks.wake();
        await this.budget.afterChange(actor.projectId, false);
        return;
      } catch (err) {
        if (!(err instanceof BudgetExceededError)) throw err;
        await this.hooks.pauseForBudget(actor.projectId);
      }
    }
    await this.send(taskId, { type: 'APPROVE', at: this.now(), dependenciesMet: false });
    if (deps.broken) await this.cancelTask(taskId, deps.broken);
    // A dependency may have completed since it was read above, its result looking for
    // dependents to push before this write made the task PENDING: checked again after it.
    else if (!deps.met) await this.batch.promoteMany([taskId]);
  }

  /** The deadline of a RUNNING task passed. */
  async timeOut(taskId: string): Promise<void> {
    // Decided on the row (a held copy may be stale: another process may have dispatched it).
    const actor = (await this.core.registry.refresh([taskId])).get(taskId);
    if (!actor) return;
    const { deadline } = actor.getSnapshot().context;
    if (actor.status !== 'RUNNING' || deadline === null || deadline > this.now()) return;
    await this.fail(actor, { type: 'TIME_OUT', at: this.now() });
  }

  /** Cancels a task (any non-final state) and, in cascade, its dependents. */
  async cancelTask(taskId: string, reason: string): Promise<void> {
    const actor = (await this.core.registry.refresh([taskId])).get(taskId);
    if (!actor || actor.terminal) return;
    const before = actor.status;
    const held = before === 'READY' || before === 'RUNNING';
    await this.send(taskId, { type: 'CANCEL', at: this.now(), reason }, held ? { budget: this.batch.release(actor, 0) } : {});
    if (before === 'READY') await this.core.queue.remove(taskId);
    if (before === 'RUNNING') await this.hooks.settledMany([taskId]);
    if (held) await this.budget.afterChange(actor.projectId, true);
    await this.cancelDependents(taskId, `dependency ${taskId} cancelled: ${reason}`);
  }

  async cancelDependents(taskId: string, reason: string): Promise<void> {
    for (const dep of await this.core.tasks.listDependentsOf([taskId])) {
      if (dep.status === 'COMPLETED' || dep.status === 'CANCELLED') continue;
      await this.cancelTask(dep.taskId, reason);
    }
  }


  stop(): void {
    this.stopped = true;
    for (const t of this.timers) this.core.clock.clearTimeout(t);
    this.timers.clear();
  }

  private async fail(actor: TaskActor, event: TaskEvent): Promise<void> {
    await this.send(actor.taskId, event, { budget: this.batch.release(actor, 0) });
    await this.hooks.settledMany([actor.taskId]);
    await this.budget.afterChange(actor.projectId, true);
    await this.afterFailure(actor.taskId);
  }

  /** A task just FAILED: retry it after a back-off while attempts remain, else dead-letter it. */
  async afterFailure(taskId: string): Promise<void> {
    const actor = await this.core.registry.get(taskId);
    if (actor.status !== 'FAILED') return;
    const { attempts, maxAttempts } = actor.getSnapshot().context;
    if (attempts < maxAttempts) {
      const delay = backoffMs(this.core.config.scheduler.retryBackoffMs, attempts);
      await this.send(taskId, { type: 'RETRY', at: this.now(), notBefore: this.now() + delay });
      this.later(delay, () => this.promote(taskId));
      return;
    }
    await this.deadLetter(actor);
  }

  /** A task that used up its attempts: recorded as a dead letter, its dependents cancelled. */
  private async deadLetter(actor: TaskActor): Promise<void> {
    const { taskId } = actor;
    const { attempts, maxAttempts, lastError } = actor.getSnapshot().context;
    await this.core.deadLetters.record({
      taskId,
      projectId: actor.projectId,
      reason: `failed ${attempts} of ${maxAttempts} attempts`,
      lastError,
      attempts,
      at: new Date(this.now()),
    });
    this.core.logger.warn({ taskId, attempts, lastError }, 'task dead-lettered');
    await this.cancelDependents(taskId, `dependency ${taskId} failed: ${lastError ?? 'unknown error'}`);
  }

  /** Runs `fn` after `ms` on the injected clock (back-off); errors are logged. */
  private later(ms: number, fn: () => Promise<unknown>): void {
    if (this.stopped) return;
    const handle = this.core.clock.setTimeout(() => {
      this.timers.delete(handle);
      if (this.stopped) return;
      fn().catch((err) => this.core.logger.error({ err }, 'deferred task step failed'));
    }, Math.max(0, ms));
    this.timers.add(handle);
  }
}
