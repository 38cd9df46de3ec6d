import { BudgetExceededError, IllegalTransitionError, ValidationError } from '../errors.js';
import type { TaskResult } from '../domain/messages.js';
import type { TaskEvent } from '../machines/task-machine.js';
import type { SendOptions, TaskActor, TaskTransition } from '../actors/task-actor.js';
import type { BudgetEffect, OutboxEvent } from '../ports/task-store.js';
import type { BudgetChecker } from './budget-checker.js';
import { backoffMs, publishTransition, type Core } from './core.js';

export interface TaskFlowHooks {
  /** The task left RUNNING: free its slot and release its lease. */
  settled(taskId: string): Promise<void>;
  /** Tasks were queued: dispatch soon. */
  wake(): void;
  /** A reservation did not fit: pause the project (budget_exhausted). */
  pauseForBudget(projectId: string): Promise<void>;
  /** Handle events a transition raised (already in the outbox). */
  handleRaised(events: readonly OutboxEvent[]): Promise<void>;
}

export type PromoteOutcome = 'ready' | 'waiting' | 'budget' | 'cancelled' | 'skipped';

/**
 * The life of a task after creation: promotion to READY (dependencies, back-off, budget
 * reservation), results, failures with retries and dead letters, cancellation cascades.
 * Every step is a durable transition of the task actor first, side effects after.
 */
export class TaskFlow {
  private readonly timers = new Set<unknown>();
  private stopped = false;

  constructor(
    private readonly core: Core,
    private readonly budget: BudgetChecker,
    private readonly hooks: TaskFlowHooks,
  ) {}

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
    if (!record || record.dependencies.length === 0) return { met: true, broken: null };
    const deps = await this.core.tasks.getTasks(record.dependencies);
    let met = deps.length === record.dependencies.length;
    for (const d of deps) {
      if (d.status === 'CANCELLED' || (d.status === 'FAILED' && d.attempts >= d.maxAttempts)) {
        return { met: false, broken: `dependency ${d.taskId} is ${d.status}` };
      }
      if (d.status !== 'COMPLETED') met = false;
    }
    return { met, broken: null };
  }

  /** Moves a PENDING task to READY when it may run, reserving its estimate. */
  async promote(taskId: string): Promise<PromoteOutcome> {
    const actor = await this.core.registry.get(taskId);
    if (actor.status !== 'PENDING') return 'skipped';
    const notBefore = actor.getSnapshot().context.notBefore;
    if (notBefore !== null && notBefore > this.now()) {
      this.later(notBefore - this.now(), () => this.promote(taskId));
      return 'waiting';
    }
    const deps = await this.dependencyState(taskId);
    if (deps.broken) {
      await this.cancelTask(taskId, deps.broken);
      return 'cancelled';
    }
    if (!deps.met) return 'waiting';
    const project = await this.core.projects.getProject(actor.projectId);
    if (!project || project.state !== 'active') return 'waiting';
    try {
      await this.send(taskId, { type: 'DEPENDENCIES_MET', at: this.now() }, { budget: this.reserve(actor) });
    } catch (err) {
      if (err instanceof BudgetExceededError) {
        await this.hooks.pauseForBudget(actor.projectId);
        return 'budget';
      }
      if (err instanceof IllegalTransitionError) return 'skipped';
      throw err;
    }
    await this.queue(actor);
    await this.budget.afterChange(actor.projectId, false);
    return 'ready';
  }

  /** Approves a task waiting at a checkpoint: READY when it can run now, else PENDING. */
  async approve(taskId: string): Promise<void> {
    const actor = await this.core.registry.get(taskId);
    if (actor.status !== 'WAITING_APPROVAL') return;
    const deps = await this.dependencyState(taskId);
    const project = await this.core.projects.getProject(actor.projectId);
    if (deps.met && project?.state === 'active') {
      try {
        await this.send(taskId, { type: 'APPROVE', at: this.now(), dependenciesMet: true }, { budget: this.reserve(actor) });
        await this.queue(actor);
        await this.budget.afterChange(actor.projectId, false);
        return;
      } catch (err) {
        if (!(err instanceof BudgetExceededError)) throw err;
        await this.hooks.pauseForBudget(actor.projectId);
      }
    }
    await this.send(taskId, { type: 'APPROVE', at: this.now(), dependenciesMet: false });
    if (deps.broken) await this.cancelTask(taskId, deps.broken);
  }

  /** A result from an agent. Resolves once its effects are durable. */
  async handleResult(projectId: string, result: TaskResult): Promise<void> {
    const actor = await this.core.registry.get(result.taskId);
    if (actor.projectId !== projectId) {
      throw new ValidationError(`task ${result.taskId} is not a task of project ${projectId}`);
    }
    if (result.status === 'failed') {
      await this.fail(actor, { type: 'FAIL', at: this.now(), error: result.error ?? 'failed' }, result.fencingToken, result.actualCost);
      return;
    }
    const record = await this.core.tasks.getTask(result.taskId);
    const output = result.output ?? {};
    const at = this.now();
    const raise: OutboxEvent[] = this.core.mapper
      .eventsForCompletion({ taskId: actor.taskId, projectId, taskType: actor.taskType, input: record?.input ?? {}, output })
      .map((e) => ({ eventId: `${actor.taskId}:${e.type}`, eventType: e.type, projectId, payload: e.payload, taskId: actor.taskId, at: new Date(at) }));
    const actual = result.actualCost ?? null;
    await this.send(
      actor.taskId,
      { type: 'COMPLETE', at, actualCost: actual },
      { fencingToken: result.fencingToken, output, budget: this.settle(actor, actual), raise },
    );
    await this.hooks.settled(actor.taskId);
    if (actual !== null) await this.budget.observe(actor.taskType, actor.assignedTo, actual);
    await this.budget.afterChange(projectId, true);
    // Raised events first: a redo may take over this task's dependents before they are pushed.
    await this.hooks.handleRaised(raise);
    await this.pushDependents(actor.taskId);
  }

  /** The deadline of a RUNNING task passed. */
  async timeOut(taskId: string): Promise<void> {
    const actor = await this.core.registry.get(taskId);
    const { deadline } = actor.getSnapshot().context;
    if (actor.status !== 'RUNNING' || deadline === null || deadline > this.now()) return;
    await this.fail(actor, { type: 'TIME_OUT', at: this.now() });
  }

  /** Cancels a task (any non-final state) and, in cascade, its dependents. */
  async cancelTask(taskId: string, reason: string): Promise<void> {
    const actor = await this.core.registry.get(taskId);
    if (actor.terminal) return;
    const before = actor.status;
    const held = before === 'READY' || before === 'RUNNING';
    await this.send(taskId, { type: 'CANCEL', at: this.now(), reason }, held ? { budget: this.release(actor, 0) } : {});
    if (before === 'READY') await this.core.queue.remove(taskId);
    if (before === 'RUNNING') await this.hooks.settled(taskId);
    if (held) await this.budget.afterChange(actor.projectId, true);
    await this.cancelDependents(taskId, `dependency ${taskId} cancelled: ${reason}`);
  }

  async cancelDependents(taskId: string, reason: string): Promise<void> {
    for (const dep of await this.core.tasks.listDependents(taskId)) {
      if (dep.status === 'COMPLETED' || dep.status === 'CANCELLED') continue;
      await this.cancelTask(dep.taskId, reason);
    }
  }

  /** Tries to promote the PENDING dependents of a completed task. */
  async pushDependents(taskId: string): Promise<void> {
    for (const dep of await this.core.tasks.listDependents(taskId)) {
      if (dep.status === 'PENDING') await this.promote(dep.taskId);
    }
  }

  stop(): void {
    this.stopped = true;
    for (const t of this.timers) this.core.clock.clearTimeout(t);
    this.timers.clear();
  }

  private async fail(actor: TaskActor, event: TaskEvent, fencingToken?: number, actualCost?: number): Promise<void> {
    const t = await this.send(actor.taskId, event, {
      ...(fencingToken === undefined ? {} : { fencingToken }),
      budget: this.release(actor, actualCost ?? 0),
    });
    await this.hooks.settled(actor.taskId);
    await this.budget.afterChange(actor.projectId, true);
    const { attempts, maxAttempts, lastError } = t.snapshot.context;
    if (attempts < maxAttempts) {
      const delay = backoffMs(this.core.config.scheduler.retryBackoffMs, attempts);
      await this.send(actor.taskId, { type: 'RETRY', at: this.now(), notBefore: this.now() + delay });
      this.later(delay, () => this.promote(actor.taskId));
      return;
    }
    await this.core.projects.recordDeadLetter({
      taskId: actor.taskId,
      projectId: actor.projectId,
      reason: `failed ${attempts} of ${maxAttempts} attempts`,
      lastError,
      attempts,
      at: new Date(this.now()),
    });
    this.core.logger.warn({ taskId: actor.taskId, attempts, lastError }, 'task dead-lettered');
    await this.cancelDependents(actor.taskId, `dependency ${actor.taskId} failed: ${lastError ?? 'unknown error'}`);
  }

  private async queue(actor: TaskActor): Promise<void> {
    await this.core.queue.put({ taskId: actor.taskId, priority: actor.priority });
    this.hooks.wake();
  }

  private reserve(actor: TaskActor): BudgetEffect {
    return { projectId: actor.projectId, reserve: actor.estimatedCost, enforce: this.core.config.budget.checkEnabled };
  }

  private release(actor: TaskActor, spend: number): BudgetEffect {
    return { projectId: actor.projectId, release: actor.estimatedCost, spend, enforce: false };
  }

  private settle(actor: TaskActor, actual: number | null): BudgetEffect {
    return this.release(actor, actual ?? 0);
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
