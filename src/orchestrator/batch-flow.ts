import { BudgetExceededError, IllegalTransitionError, TaskNotFoundError, ValidationError } from '../errors.js';
import type { TaskResult } from '../domain/messages.js';
import type { TaskActor, TaskTransition } from '../actors/task-actor.js';
import type { BatchItem } from '../actors/task-registry.js';
import type { ProjectRecord } from '../ports/project-store.js';
import type { BudgetEffect, ProjectBudget } from '../ports/commit.js';
import type { OutboxEvent, TaskLinks, TaskRecord } from '../ports/task-store.js';
import type { BudgetChecker } from './budget-checker.js';
import { acceptsWork, publishTransitions, type Core } from './core.js';

export type PromoteOutcome = 'ready' | 'waiting' | 'budget' | 'cancelled' | 'skipped';

/** A result to write, and (set once it is durable) its project's reaction, which never rejects. */
export interface ResultItem {
  projectId: string;
  result: TaskResult;
  reacted?: Promise<void>;
}

/** What the reaction to one project's results follows up. */
interface ResultsFollowUp {
  done: TaskTransition[];
  completed: string[];
  failed: string[];
  raised: OutboxEvent[];
  budget: ProjectBudget | undefined;
}

export interface BatchHooks {
  /** Tasks left RUNNING: free their slots and release their leases. */
  settledMany(taskIds: readonly string[]): Promise<void>;
  /** Tasks were queued: dispatch soon. */
  wake(): void;
  /** A reservation did not fit: pause the project (budget_exhausted). */
  pauseForBudget(projectId: string): Promise<void>;
  /** Handle events transitions raised (already in the outbox). */
  handleRaised(events: readonly OutboxEvent[]): Promise<void>;
  /** Runs a project's reaction in its project's order; never rejects (a failure is logged and left to the sweeps). */
  react(projectId: string, what: string, fn: () => Promise<void>): Promise<void>;
  /** Retry or dead-letter a task that failed (one at a time: rare). */
  afterFailure(taskId: string): Promise<void>;
  /** Cancel a task whose dependency failed or was cancelled, and its dependents. */
  cancelTask(taskId: string, reason: string): Promise<void>;
  /** Run `fn` after `ms` (a retried task's back-off). */
  later(ms: number, fn: () => Promise<unknown>): void;
}

/** Whether a dependency blocks for good. */
function brokenDependency(d: TaskLinks): boolean {
  return d.status === 'CANCELLED' || (d.status === 'FAILED' && d.attempts >= d.maxAttempts);
}

/**
 * The hot paths, a batch at a time: promotion to READY and results. Each batch reads what
 * it needs in a few queries, writes every transition in one round trip
 * (`TaskRegistry.sendMany` → `Commit.applyTransitions`), then does the side effects.
 */
export class BatchFlow {
  constructor(
    private readonly core: Core,
    private readonly budget: BudgetChecker,
    private readonly hooks: BatchHooks,
  ) {}

  /** Dependency states of many tasks (their dependencies given), in one narrow read. */
  async dependencyStates(
    records: readonly Pick<TaskRecord, 'taskId' | 'dependencies'>[],
  ): Promise<Map<string, { met: boolean; broken: string | null }>> {
    const depIds = [...new Set(records.flatMap((r) => r.dependencies))];
    const deps = new Map((depIds.length ? await this.core.tasks.getLinks(depIds) : []).map((d) => [d.taskId, d]));
    const states = new Map<string, { met: boolean; broken: string | null }>();
    for (const r of records) {
      let met = true;
      let broken: string | null = null;
      for (const id of r.dependencies) {
        const d = deps.get(id);
        if (!d) met = false;
        else if (brokenDependency(d)) broken ??= `dependency ${d.taskId} is ${d.status}`;
        else if (d.status !== 'COMPLETED') met = false;
      }
      states.set(r.taskId, { met: met && !broken, broken });
    }
    return states;
  }

  /**
   * Moves PENDING tasks to READY where they may run (dependencies COMPLETED, back-off
   * over, project active), reserving their estimates, highest priority first.
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
        this.hooks.later(notBefore - now, () => this.promoteMany([id]));
        outcome.set(id, 'waiting');
        continue;
      }
      candidates.push(actor);
    }
    if (!candidates.length) return outcome;
    // Their dependency lists: `known` (read after the writes that completed dependencies) or read now.
    const withDeps = candidates.filter((a) => a.hasDependencies);
    const unknown = withDeps.filter((a) => !known?.has(a.taskId)).map((a) => a.taskId);
    const lists = [...withDeps.flatMap((a) => known?.get(a.taskId) ?? []), ...(unknown.length ? await this.core.tasks.getLinks(unknown) : [])];
    const states = withDeps.length ? await this.dependencyStates(lists) : new Map();
    const projects = await this.projectsOf(candidates);
    const eligible: TaskActor[] = [];
    for (const actor of candidates) {
      const state = states.get(actor.taskId) ?? { met: true, broken: null };
      if (state.broken) {
        await this.hooks.cancelTask(actor.taskId, state.broken);
        outcome.set(actor.taskId, 'cancelled');
      } else if (!state.met || !acceptsWork(projects.get(actor.projectId)?.state)) {
        outcome.set(actor.taskId, 'waiting');
      } else {
        eligible.push(actor);
      }
    }
    eligible.sort((a, b) => b.priority - a.priority);
    const items: BatchItem[] = eligible.map((a) => ({
      taskId: a.taskId,
      event: { type: 'DEPENDENCIES_MET', at: now },
      options: { budget: this.reserve(a) },
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
        changed.add(actor.projectId);
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
      this.hooks.wake();
    }
    for (const projectId of exhausted) await this.hooks.pauseForBudget(projectId);
    // A project paused just above is read again (its state changed after the write).
    for (const projectId of changed) await this.budget.afterChange(projectId, false, exhausted.has(projectId) ? undefined : budgets.get(projectId));
    return outcome;
  }

  /**
   * Agents' results, many at once: one write for all the completions and failures, then
   * leases, costs, budget, raised events and the dependents. Returns, per result, the
   * error that refused it (to dead-letter) or null. One result per task in a batch (the
   * orchestrator's Batcher keys them by task id); a result applied already (a redelivery)
   * is acknowledged and changes nothing.
   */
  async completeMany(batch: readonly ResultItem[]): Promise<(Error | null)[]> {
    const errors: (Error | null)[] = batch.map(() => null);
    const actors = await this.core.registry.getMany(batch.map((b) => b.result.taskId));
    const emitting = new Set(this.core.mapper.pipeline.emits.flatMap((e) => e.taskTypes));
    const needInput = batch.filter((b) => b.result.status === 'completed' && emitting.has(actors.get(b.result.taskId)?.taskType ?? ''));
    const inputs = new Map((needInput.length ? await this.core.tasks.getTasks(needInput.map((b) => b.result.taskId)) : []).map((r) => [r.taskId, r.input]));
    const at = this.core.clock.now();
    const items: BatchItem[] = [];
    const indexes: number[] = [];
    const raisedBy = new Map<number, OutboxEvent[]>();
    batch.forEach(({ projectId, result }, index) => {
      const actor = actors.get(result.taskId);
      if (!actor) return void (errors[index] = new TaskNotFoundError(result.taskId));
      if (actor.projectId !== projectId) {
        return void (errors[index] = new ValidationError(`task ${result.taskId} is not a task of project ${projectId}`));
      }
      if (actor.hasApplied(result)) {
        this.core.logger.info({ taskId: actor.taskId, fencingToken: result.fencingToken }, 'result already applied (a duplicate delivery)');
        return;
      }
      indexes.push(index);
      if (result.status === 'failed') {
        items.push({
          taskId: actor.taskId,
          event: { type: 'FAIL', at, error: result.error ?? 'failed' },
          options: { fencingToken: result.fencingToken, budget: this.release(actor, result.actualCost ?? 0) },
        });
        return;
      }
      const output = result.output ?? {};
      const raise = emitting.has(actor.taskType)
        ? this.core.mapper
            .eventsForCompletion({ taskId: actor.taskId, projectId, taskType: actor.taskType, input: inputs.get(actor.taskId) ?? {}, output })
            .map((e) => ({ eventId: `${actor.taskId}:${e.type}`, eventType: e.type, projectId, payload: e.payload, taskId: actor.taskId, at: new Date(at) }))
        : [];
      if (raise.length) raisedBy.set(index, raise);
      items.push({
        taskId: actor.taskId,
        event: { type: 'COMPLETE', at, actualCost: result.actualCost ?? null },
        options: { fencingToken: result.fencingToken, output, budget: this.release(actor, result.actualCost ?? 0), ...(raise.length ? { raise } : {}) },
      });
    });
    const outcomes = await this.core.registry.sendMany(items);
    const settled: string[] = [];
    const costs = new Map<string, { taskType: string; agent: string; sum: number; n: number }>();
    /** What each project's reaction follows up, and its budget as the write left it. */
    const follow = new Map<string, ResultsFollowUp>();
    const refused: number[] = [];
    for (const [i, r] of outcomes.entries()) {
      const index = indexes[i]!;
      if (!r.ok) {
        errors[index] = r.error;
        if (r.error instanceof IllegalTransitionError) refused.push(index);
        continue;
      }
      const { result } = batch[index]!;
      const actor = actors.get(result.taskId)!;
      settled.push(actor.taskId);
      let f = follow.get(actor.projectId);
      if (!f) follow.set(actor.projectId, (f = { done: [], completed: [], failed: [], raised: [], budget: undefined }));
      f.done.push(r.transition);
      if (r.project) f.budget = r.project;
      if (result.status === 'failed') f.failed.push(actor.taskId);
      else f.completed.push(actor.taskId);
      f.raised.push(...(raisedBy.get(index) ?? []));
      if (result.actualCost !== undefined) {
        const key = `${actor.taskType}|${actor.assignedTo}`;
        const c = costs.get(key) ?? { taskType: actor.taskType, agent: actor.assignedTo, sum: 0, n: 0 };
        c.sum += result.actualCost;
        c.n++;
        costs.set(key, c);
      }
    }
    // A result the fresh row refuses may still be one applied before (by another process,
    // whose copy this one did not hold): that is a duplicate, acknowledged, not an error.
    if (refused.length) {
      const fresh = await this.core.registry.getMany(refused.map((index) => batch[index]!.result.taskId));
      for (const index of refused) {
        const { result } = batch[index]!;
        if (fresh.get(result.taskId)?.hasApplied(result)) {
          this.core.logger.info({ taskId: result.taskId, fencingToken: result.fencingToken }, 'result already applied (a duplicate delivery)');
          errors[index] = null;
        }
      }
    }
    // The writes are durable. What follows them: the slots and leases at once, the cost
    // means (stored behind), then each project's reaction on its own — statuses, budget,
    // retries, raised events, dependents — so that one project's failing follow-up fails
    // neither another project's nor the results themselves (the sweeps finish it).
    for (const c of costs.values()) this.budget.observe(c.taskType, c.agent, c.sum / c.n, c.n);
    await this.hooks.settledMany(settled);
    const reacted = new Map<string, Promise<void>>();
    for (const [projectId, f] of follow) reacted.set(projectId, this.hooks.react(projectId, 'results', () => this.afterResults(projectId, f)));
    batch.forEach((b, index) => {
      const r = reacted.get(b.projectId);
      if (r && !errors[index]) b.reacted = r;
    });
    return errors;
  }

  /** The reaction to one project's results: statuses, budget, retries, raised events, dependents. */
  private async afterResults(projectId: string, f: ResultsFollowUp): Promise<void> {
    await Promise.all([
      publishTransitions(this.core, f.done),
      this.budget.afterChange(projectId, true, f.budget),
      (async () => {
        for (const taskId of f.failed) await this.hooks.afterFailure(taskId);
        // Raised events first: a redo may take over a task's dependents before they are pushed.
        if (f.raised.length) await this.hooks.handleRaised(f.raised);
        await this.pushDependents(f.completed);
      })(),
    ]);
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

  private async projectsOf(actors: readonly TaskActor[]): Promise<Map<string, ProjectRecord | null>> {
    const projects = new Map<string, ProjectRecord | null>();
    for (const a of actors) {
      if (!projects.has(a.projectId)) projects.set(a.projectId, await this.core.projects.getProject(a.projectId));
    }
    return projects;
  }

  reserve(actor: TaskActor): BudgetEffect {
    return { projectId: actor.projectId, reserve: actor.estimatedCost, enforce: this.core.config.budget.checkEnabled };
  }

  release(actor: TaskActor, spend: number): BudgetEffect {
    return { projectId: actor.projectId, release: actor.estimatedCost, spend, enforce: false };
  }
}
