import { BudgetExceededError, IllegalTransitionError } from '../errors.js';
import { acceptsWork } from '../domain/project.js';
import type { TaskActor, TaskTransition } from '../actors/task-actor.js';
import type { BatchItem } from '../actors/task-registry.js';
import type { ProjectRecord } from '../ports/project-store.js';
import type { ProjectBudget } from '../ports/commit.js';
import type { TaskRecord } from '../ports/task-store.js';
import type { BudgetChecker } from '../budget/budget-checker.js';
import { budgetOptions, reserveFor } from '../budget/effects.js';
import type { Cancellation } from '../control/cancellation.js';
import type { ProjectLifecycle } from '../control/lifecycle.js';
import type { TaskScheduler } from '../orchestrator/scheduler.js';
import type { Core } from '../orchestrator/core.js';
import { publishTransitions } from '../reactions/statuses.js';
import type { Timers } from '../reactions/timers.js';
import { dependencyStates } from './dependencies.js';

export type PromoteOutcome = 'ready' | 'waiting' | 'budget' | 'cancelled' | 'skipped';

/**
 * Promotion: PENDING → READY, a batch at a time. Decided on the rows (TaskRegistry
 * decides again on fresh ones when a copy is stale): a task goes READY when its
 * dependencies are COMPLETED, its back-off is over and its project accepts work. Its
 * estimate is reserved in the same statement, refused when it does not fit (the project
 * then pauses, budget_exhausted). Committed, then queued; a dependency found broken
 * cancels the task. What a failure leaves PENDING is found again by the reaction sweep.
 */
export class Promotion {
  constructor(
    private readonly core: Core,
    private readonly budget: BudgetChecker,
    private readonly lifecycle: ProjectLifecycle,
    private readonly cancellation: Cancellation,
    private readonly scheduler: TaskScheduler,
    private readonly timers: Timers,
  ) {}

  /** Promotes one task. */
  async promote(taskId: string): Promise<PromoteOutcome> {
    return (await this.promoteMany([taskId])).get(taskId) ?? 'skipped';
  }

  /**
   * Moves PENDING tasks to READY where they may run, reserving their estimates, highest
   * priority first. `known`: their dependency lists, read after the writes that completed
   * their dependencies (else read here).
   */
  async promoteMany(taskIds: readonly string[], known?: ReadonlyMap<string, Pick<TaskRecord, 'taskId' | 'dependencies'>>): Promise<Map<string, PromoteOutcome>> {
    const outcome = new Map<string, PromoteOutcome>();
    const actors = await this.core.registry.getMany([...new Set(taskIds)]);
    const now = this.core.clock.now();
    const candidates: TaskActor[] = [];
    for (const id of new Set(taskIds)) {
      const actor = actors.get(id);
      if (!actor || actor.status !== 'PENDING') {
        outcome.set(id, 'skipped');
        continue;
      }
      const { notBefore } = actor.getSnapshot().context;
      if (notBefore !== null && notBefore > now) {
        this.timers.later(notBefore - now, () => this.promoteMany([id]));
        outcome.set(id, 'waiting');
        continue;
      }
      candidates.push(actor);
    }
    if (!candidates.length) return outcome;
    const withDeps = candidates.filter((a) => a.hasDependencies);
    const unknown = withDeps.filter((a) => !known?.has(a.taskId)).map((a) => a.taskId);
    const lists = [...withDeps.flatMap((a) => known?.get(a.taskId) ?? []), ...(unknown.length ? await this.core.tasks.getLinks(unknown) : [])];
    const states = withDeps.length ? await dependencyStates(this.core.tasks, lists) : new Map();
    const projects = await this.projectsOf(candidates);
    const eligible: TaskActor[] = [];
    for (const actor of candidates) {
      const state = states.get(actor.taskId) ?? { met: true, broken: null };
      if (state.broken) {
        await this.cancellation.cancelTask(actor.taskId, state.broken);
        outcome.set(actor.taskId, 'cancelled');
      } else if (!state.met || !acceptsWork(projects.get(actor.projectId)?.state)) {
        outcome.set(actor.taskId, 'waiting');
      } else {
        eligible.push(actor);
      }
    }
    eligible.sort((a, b) => b.priority - a.priority);
    const enforce = this.core.config.budget.checkEnabled;
    const items: BatchItem[] = eligible.map((a) => ({
      taskId: a.taskId,
      event: { type: 'DEPENDENCIES_MET', at: now },
      options: budgetOptions(reserveFor(a, enforce)),
    }));
    const results = await this.core.registry.sendMany(items);
    const queued: { taskId: string; priority: number }[] = [];
    const exhausted = new Set<string>();
    const changed = new Set<string>();
    const budgets = new Map<string, ProjectBudget>();
    const done: TaskTransition[] = [];
    for (const [i, r] of results.entries()) {
      const actor = eligible[i]!;
      if (r.ok) {
        done.push(r.transition);
        queued.push({ taskId: actor.taskId, priority: actor.priority });
        // Amounts that did not move (a task of no cost, unenforced) need no budget follow-up.
        if (items[i]!.options?.budget) changed.add(actor.projectId);
        if (r.project) budgets.set(r.project.projectId, r.project);
        outcome.set(actor.taskId, 'ready');
      } else if (r.error instanceof BudgetExceededError) {
        exhausted.add(actor.projectId);
        outcome.set(actor.taskId, 'budget');
      } else {
        if (!(r.error instanceof IllegalTransitionError)) this.core.logger.warn({ err: r.error, taskId: actor.taskId }, 'promotion refused');
        outcome.set(actor.taskId, 'skipped');
      }
    }
    await publishTransitions(this.core, done);
    if (queued.length) {
      await this.core.queue.putMany(queued);
      this.scheduler.wake();
    }
    for (const projectId of exhausted) await this.lifecycle.pauseForBudget(projectId);
    // A project paused just above is read again (its state changed after the write).
    for (const projectId of changed) await this.budget.afterChange(projectId, false, exhausted.has(projectId) ? undefined : budgets.get(projectId));
    return outcome;
  }

  /**
   * Promotes the PENDING dependents of completed tasks. Looked up after the completing
   * write (not in it): a dependent an event created meanwhile is seen by one side or the other.
   */
  async pushDependents(taskIds: readonly string[]): Promise<void> {
    if (!taskIds.length) return;
    const dependents = await this.core.tasks.listDependentsOf(taskIds);
    const pending = dependents.filter((d) => d.status === 'PENDING');
    if (pending.length) await this.promoteMany(pending.map((d) => d.taskId), new Map(pending.map((d) => [d.taskId, d])));
  }

  /** Promotes every PENDING task of a project that may run (at start, at resume). */
  async promotePending(projectId: string): Promise<void> {
    const pending = await this.core.tasks.listByProject(projectId, ['PENDING']);
    for (let i = 0; i < pending.length; i += 1000) await this.promoteMany(pending.slice(i, i + 1000).map((t) => t.taskId));
  }

  /** PENDING tasks whose dependencies are done but which a failed reaction left behind. */
  async sweep(before: Date): Promise<void> {
    const promotable = await this.core.tasks.listPromotable(before, 1000);
    if (promotable.length) await this.promoteMany(promotable);
  }

  private async projectsOf(actors: readonly TaskActor[]): Promise<Map<string, ProjectRecord | null>> {
    const projects = new Map<string, ProjectRecord | null>();
    for (const a of actors) {
      if (!projects.has(a.projectId)) projects.set(a.projectId, await this.core.projects.getProject(a.projectId));
    }
    return projects;
  }
}
