import { IllegalTransitionError, TaskNotFoundError, ValidationError } from '../errors.js';
import type { Heartbeat, TaskResult } from '../domain/messages.js';
import type { TaskTransition } from '../actors/task-actor.js';
import type { BatchItem } from '../actors/task-registry.js';
import type { ProjectBudget } from '../ports/commit.js';
import type { OutboxEvent } from '../ports/task-store.js';
import type { BudgetChecker } from '../budget/budget-checker.js';
import { budgetOptions, releaseFor } from '../budget/effects.js';
import type { RaisedEvents } from '../ingest/raised-events.js';
import type { Promotion } from '../promotion/promotion.js';
import type { Retries } from '../retries/retries.js';
import type { TaskScheduler } from '../orchestrator/scheduler.js';
import type { Core } from '../orchestrator/core.js';
import type { Reactions } from '../reactions/reactions.js';
import { publishTransitions, sendAndPublish } from '../reactions/statuses.js';
import { Batcher } from './batcher.js';
import { context, inSpan, linkToTasks, linksTo, tracingOn, type Context } from '../tracing/tracing.js';

/** A result to write, and (set once it is durable) its project's reaction, which never rejects. */
export interface ResultItem {
  projectId: string;
  result: TaskResult;
  reacted?: Promise<void>;
  /** The context it was submitted in (tracing on): its message's `process` span, which the commit's span continues. */
  trace?: Context;
}

/** What the reaction to one project's results follows up. */
interface ResultsFollowUp {
  done: TaskTransition[];
  completed: string[];
  failed: string[];
  raised: OutboxEvent[];
  budget: ProjectBudget | undefined;
  /** A write of these results moved the project's amounts (released a reservation, or spent). */
  settled: boolean;
}

/** A later batch's follow-up folded into a waiting one (its budget is the later write's). */
function mergeFollowUps(waiting: ResultsFollowUp, later: ResultsFollowUp): void {
  waiting.done.push(...later.done);
  waiting.completed.push(...later.completed);
  waiting.failed.push(...later.failed);
  waiting.raised.push(...later.raised);
  if (later.budget) waiting.budget = later.budget;
  waiting.settled ||= later.settled;
}

/**
 * Taking results (and heartbeats) from agents. Results that arrive together are decided
 * together, on the rows (a stale copy is decided again on the fresh row), and committed in
 * one statement: COMPLETE or FAIL with the fencing token checked, the reservation released
 * and the spend charged, raised events into the outbox. A result is acknowledged once
 * that commit is durable. Then, per project, the reaction: statuses, budget, retries,
 * raised events, dependents — a failing reaction fails neither the results nor another
 * project (the sweeps finish what it left).
 */
export class Results {
  private readonly batcher: Batcher<ResultItem>;

  constructor(
    private readonly core: Core,
    private readonly budget: BudgetChecker,
    private readonly scheduler: TaskScheduler,
    private readonly promotion: Promotion,
    private readonly retries: Retries,
    private readonly raised: RaisedEvents,
    private readonly reactions: Reactions,
  ) {
    this.batcher = new Batcher(
      (batch) => this.commit(batch),
      (item) => item.result.taskId,
    );
  }

  /** Resolves once the result's commit is durable (its reaction: `item.reacted`). */
  submit(item: ResultItem): Promise<void> {
    if (tracingOn()) item.trace = context.active();
    return this.batcher.submit(item);
  }

  /**
   * A batch's commit; traced (tracing on) in the span `commit results`, a child of the first
   * traced result's context (its `process` span), linked to the others' (one write for all),
   * and to the traces of the tasks that are not its own (see `linkToTasks`).
   */
  private commit(batch: readonly ResultItem[]): Promise<(Error | null)[]> {
    if (!tracingOn()) return this.completeMany(batch);
    const traced = batch.filter((b) => b.trace !== undefined);
    if (!traced.length) return this.completeMany(batch);
    return inSpan(
      'commit results',
      { parent: traced[0]!.trace!, links: linksTo(traced.slice(1).map((b) => b.trace)), attributes: { 'lap.results.count': batch.length } },
      () => this.completeMany(batch),
    );
  }

  /** Resolves once everything submitted so far is written. */
  drain(): Promise<void> {
    return this.batcher.drain();
  }

  /** A heartbeat (validated by the bus, or by the public API) extends the running attempt's deadline, and its lease. */
  async heartbeat(projectId: string, hb: Heartbeat): Promise<void> {
    const actor = await this.core.registry.get(hb.taskId);
    if (actor.projectId !== projectId) throw new ValidationError(`task ${hb.taskId} is not a task of project ${projectId}`);
    const now = this.core.clock.now();
    try {
      // Decided on the row when the held copy refuses it (see TaskRegistry.sendMany).
      await sendAndPublish(this.core, hb.taskId, { type: 'HEARTBEAT', at: now, deadline: now + actor.timeoutMs }, { fencingToken: hb.fencingToken });
    } catch (err) {
      // A heartbeat that crossed the result (or a timeout) on the way is harmless: ignored.
      // One with an older token is not: refused (and dead-lettered).
      if (err instanceof IllegalTransitionError) return;
      throw err;
    }
    await this.scheduler.dispatcher.extendLease(hb.taskId, actor.timeoutMs);
  }

  /**
   * Agents' results, many at once: one write for all the completions and failures, then
   * leases, costs, budget, raised events and the dependents. Returns, per result, the
   * error that refused it (to dead-letter) or null. One result per task in a batch (the
   * orchestrator's Batcher keys them by task id); a result applied already (a redelivery)
   * is acknowledged and changes nothing.
   */
  private async completeMany(batch: readonly ResultItem[]): Promise<(Error | null)[]> {
    const errors: (Error | null)[] = batch.map(() => null);
    const actors = await this.core.registry.getMany(batch.map((b) => b.result.taskId));
    if (tracingOn()) linkToTasks([...actors.values()].map((a) => a.traceParent));
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
          options: { fencingToken: result.fencingToken, ...budgetOptions(releaseFor(actor, result.actualCost ?? 0)) },
        });
        return;
      }
      const output = result.output ?? {};
      const raise = emitting.has(actor.taskType)
        ? this.core.mapper
            .eventsForCompletion({ taskId: actor.taskId, projectId, taskType: actor.taskType, input: inputs.get(actor.taskId) ?? {}, output })
            .map((e): OutboxEvent => ({
              eventId: `${actor.taskId}:${e.type}`,
              eventType: e.type,
              projectId,
              payload: e.payload,
              taskId: actor.taskId,
              at: new Date(at),
              traceParent: actor.traceParent,
            }))
        : [];
      if (raise.length) raisedBy.set(index, raise);
      items.push({
        taskId: actor.taskId,
        event: { type: 'COMPLETE', at, actualCost: result.actualCost ?? null },
        options: {
          fencingToken: result.fencingToken,
          output,
          ...budgetOptions(releaseFor(actor, result.actualCost ?? 0)),
          ...(raise.length ? { raise } : {}),
        },
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
      if (!f) follow.set(actor.projectId, (f = { done: [], completed: [], failed: [], raised: [], budget: undefined, settled: false }));
      f.done.push(r.transition);
      if (r.project) f.budget = r.project;
      if (items[i]!.options?.budget) f.settled = true;
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
    await this.scheduler.settled(settled);
    const reacted = new Map<string, Promise<void>>();
    // Results batches of a project whose reactions would follow one another (nothing else of
    // the project queued between them) are followed up together: one lookup of dependents,
    // one promotion batch, one budget status, instead of one of each per batch.
    for (const [projectId, f] of follow) {
      reacted.set(projectId, this.reactions.runMerged(projectId, 'results', f, mergeFollowUps, (all) => this.afterResults(projectId, all)));
    }
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
      // Amounts that did not move (tasks of no cost) need no budget follow-up.
      f.settled ? this.budget.afterChange(projectId, true, f.budget) : undefined,
      (async () => {
        for (const taskId of f.failed) await this.retries.afterFailure(taskId);
        // Raised events first: a redo may take over a task's dependents before they are pushed.
        if (f.raised.length) await this.raised.handle(f.raised);
        await this.promotion.pushDependents(f.completed);
      })(),
    ]);
  }
}
