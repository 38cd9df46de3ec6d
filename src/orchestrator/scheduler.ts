import { createActor, fromPromise, waitFor, type Actor, type InspectionEvent, type Observer } from 'xstate';
import { VersionConflictError, isOrchestratorError } from '../errors.js';
import type { TaskActor, TaskTransition } from '../actors/task-actor.js';
import { BUDGET_EXHAUSTED, acceptsWork, publishTransitions } from './core.js';
import { schedulerMachine, type SchedulerMachine } from '../machines/scheduler-machine.js';
import type { Lease } from '../ports/lock-manager.js';
import type { ProjectRecord } from '../ports/project-store.js';
import type { TaskRecord } from '../ports/task-store.js';
import type { Core } from './core.js';
import { LEASE_GRACE_MS, Slots } from './slots.js';
import { DirectDispatch } from './direct-dispatch.js';
import type { WatchedQueue } from './watched-queue.js';
import type { TaskFlow } from './task-flow.js';

/** RUNNING tasks dispatched this recently are dispatched again at start (within the bus's duplicate window). */
export const REDISPATCH_WINDOW_MS = 110_000;
/** Tasks popped, checked, leased and written together in one dispatch batch. */
export const DISPATCH_BATCH = 500;
const SWEEP_BATCH = 200;

/**
 * Whether a project's READY tasks may be dispatched: when it accepts work (active, or
 * completed with tasks left), and when it is
 * paused only because its budget is exhausted — a READY task already holds its
 * reservation, so it runs; what does not fit stays PENDING.
 */
function dispatchable(project: ProjectRecord): boolean {
  return acceptsWork(project.state) || (project.state === 'paused' && project.pausedReason === BUDGET_EXHAUSTED);
}

export interface SchedulerSweeps {
  /** Expired approval requests (run on every tick). */
  approvals(): Promise<void>;
}

/**
 * The scheduler: runs every SCHEDULER_INTERVAL and at once when woken. Each tick sweeps
 * timeouts and due retries, then, while fewer than MAX_CONCURRENT_TASKS run, pops the
 * highest-priority READY tasks, checks their dependencies and project, takes each one's
 * lease (the fencing token goes into the RUNNING transition) and dispatches it to its agent.
 */
export class TaskScheduler {
  private readonly slots = new Slots();
  /** Dispatch at creation (see DirectDispatch). */
  readonly direct: DirectDispatch;
  /** The pass in flight; passes never overlap (the loop's and `tick()` calls). */
  private inflight: Promise<unknown> = Promise.resolve();
  private readonly actor: Actor<SchedulerMachine>;

  constructor(
    private readonly core: Core,
    private readonly queue: WatchedQueue,
    private readonly flow: TaskFlow,
    private readonly sweeps: SchedulerSweeps,
    inspect?: Observer<InspectionEvent> | ((event: InspectionEvent) => void),
  ) {
    const logic = schedulerMachine.provide({
      actors: {
        tick: fromPromise(() => this.tick()),
        drain: fromPromise(() => this.inflight.then(() => undefined)),
      },
    });
    this.actor = createActor(logic, {
      id: 'scheduler',
      systemId: 'scheduler',
      input: { intervalMs: core.config.scheduler.intervalMs },
      clock: core.clock,
      ...(inspect ? { inspect } : {}),
    });
    this.actor.subscribe({
      next: (s) => {
        if (s.context.lastError && s.context.failures > this.failuresLogged) {
          this.failuresLogged = s.context.failures;
          core.logger.error({ error: s.context.lastError }, 'scheduler pass failed');
        }
      },
      error: (err) => core.logger.error({ err }, 'scheduler actor error'),
    });
    this.actor.start();
    this.direct = new DirectDispatch(core, queue, this.slots, {
      accepting: () => this.started && !this.stopping,
      dispatch: (task, fencingToken) => this.dispatch(task, task.input, task.attempts, task.deadline!.getTime(), fencingToken),
      wake: () => this.wake(),
    });
  }

  private failuresLogged = 0;
  /** Dispatch batches handed to the bus and not yet confirmed by it. */
  private readonly sending = new Set<Promise<void>>();
  private lastSweep = Number.NEGATIVE_INFINITY;
  private stopping = false;
  private started = false;

  get runningCount(): number {
    return this.slots.runningCount;
  }

  /** The scheduler actor (for inspection). */
  get ref(): Actor<SchedulerMachine> {
    return this.actor;
  }

  start(): void {
    this.stopping = false;
    this.started = true;
    this.actor.send({ type: 'START' });
  }

  /** Stops the loop; resolves once a pass in flight has finished. */
  async stop(): Promise<void> {
    this.stopping = true;
    this.started = false;
    this.actor.send({ type: 'STOP' });
    await waitFor(this.actor, (s) => s.matches('stopped'), { timeout: Infinity });
    await Promise.all([...this.sending]);
  }

  /** Asks for a pass as soon as possible (coalesced with one in flight). */
  wake(): void {
    this.actor.send({ type: 'WAKE' });
  }

  /** `TaskScheduler.checkDependencies`: every dependency of the task is COMPLETED. */
  async checkDependencies(taskId: string): Promise<boolean> {
    return (await this.flow.dependencyState(taskId)).met;
  }

  /** Runs one pass now (after one in flight); returns how many tasks it dispatched. */
  tick(): Promise<number> {
    const run = this.inflight.then(() => this.runTick());
    this.inflight = run.catch(() => undefined);
    return run;
  }

  /**
   * At start: dispatches again the RUNNING tasks whose attempt began within the bus's
   * duplicate window, same attempt and fencing token. If a crash came between the RUNNING
   * write and the dispatch, the agent now gets it; if not, the bus drops the copy.
   */
  async redispatchRecent(windowMs = REDISPATCH_WINDOW_MS): Promise<number> {
    const since = this.core.clock.now() - windowMs;
    const recent: string[] = [];
    for (const actor of this.core.registry.liveActors()) {
      const { startedAt } = actor.getSnapshot().context;
      if (actor.status === 'RUNNING' && startedAt !== null && startedAt >= since) recent.push(actor.taskId);
    }
    let sent = 0;
    for (const t of await this.core.tasks.getTasks(recent)) {
      if (t.status !== 'RUNNING' || t.fencingToken === null || !t.deadline) continue;
      try {
        await this.core.bus.dispatchTask(t.assignedTo, {
          taskId: t.taskId,
          projectId: t.projectId,
          taskType: t.taskType,
          input: t.input,
          attempt: t.attempts,
          deadline: t.deadline.toISOString(),
          fencingToken: t.fencingToken,
        });
        sent++;
      } catch (err) {
        this.core.logger.warn({ err, taskId: t.taskId }, 'could not dispatch again; the attempt will time out');
      }
    }
    return sent;
  }

  /** Tasks left RUNNING: release their leases (one round trip) and free their slots. */
  async settledMany(taskIds: readonly string[]): Promise<void> {
    const leases = this.slots.free(taskIds);
    if (!leases.length) return;
    await this.core.locks.releaseMany(leases).catch((err) => this.core.logger.warn({ err }, 'could not release leases'));
    this.wake();
  }

  /** A heartbeat extended the task's deadline: extend its lease as well. */
  async extendLease(taskId: string, ttlMs: number): Promise<void> {
    const lease = this.slots.lease(taskId);
    if (lease) await this.core.locks.extend(lease, ttlMs + LEASE_GRACE_MS);
  }

  /** Publishes a dispatch (RUNNING is durable: a lost dispatch times out and is retried). */
  private dispatch(
    task: Pick<TaskRecord, 'taskId' | 'projectId' | 'taskType' | 'assignedTo'>,
    input: Record<string, unknown>,
    attempt: number,
    deadline: number,
    fencingToken: number,
  ): Promise<void> {
    return this.core.bus
      .dispatchTask(task.assignedTo, {
        taskId: task.taskId,
        projectId: task.projectId,
        taskType: task.taskType,
        input,
        attempt,
        deadline: new Date(deadline).toISOString(),
        fencingToken,
      })
      .catch((err) => this.core.logger.error({ err, taskId: task.taskId }, 'dispatch failed; the attempt will time out and retry'));
  }

  private async runTick(): Promise<number> {
    // The sweeps run once per interval, not on every wake: under load a pass runs for every
    // batch of results, and the dispatching must not pay for three sweeping queries each time.
    const now = this.core.clock.now();
    if (now - this.lastSweep >= this.core.config.scheduler.intervalMs) {
      this.lastSweep = now;
      await this.reconcile();
      for (const task of await this.core.tasks.listExpired(new Date(now), SWEEP_BATCH)) {
        await this.guard(task.taskId, () => this.flow.timeOut(task.taskId));
      }
      const due = await this.core.tasks.listDueRetries(new Date(now), SWEEP_BATCH);
      if (due.length) await this.guard('retries', () => this.flow.batch.promoteMany(due.map((t) => t.taskId)));
      await this.sweeps.approvals();
    }
    return this.dispatchReady();
  }

  /** Pops and dispatches while there is room. */
  private async dispatchReady(): Promise<number> {
    const max = this.core.config.scheduler.maxConcurrentTasks;
    const projects = new Map<string, ProjectRecord>();
    // Tasks whose agent is at its AGENT_CONCURRENCY limit go back in the queue after the
    // pass (behind the tasks of their priority that are already waiting).
    const deferred: { taskId: string; priority: number }[] = [];
    let dispatched = 0;
    while (!this.stopping) {
      const room = Math.min(max - this.slots.taken, DISPATCH_BATCH);
      if (room <= 0) break;
      const mark = this.queue.mark();
      const ids = await this.queue.getMany(room);
      if (ids.length < room) this.queue.drained(mark); // emptied (what is deferred is put back after)
      if (ids.length === 0) break;
      let progress = 0;
      try {
        progress = await this.dispatchBatch(ids, projects, deferred);
      } catch (err) {
        // The popped tasks stay READY in the store; put them back for the next pass.
        this.core.logger.error({ err }, 'dispatch batch failed');
        const actors = await this.core.registry.getMany(ids).catch(() => new Map<string, TaskActor>());
        await this.core.queue.putMany([...actors.values()].filter((a) => a.status === 'READY').map((a) => ({ taskId: a.taskId, priority: a.priority })));
        break;
      }
      dispatched += progress;
      if (progress === 0 && deferred.length > 0) break;
    }
    if (deferred.length) await this.core.queue.putMany(deferred);
    return dispatched;
  }

  /**
   * Dispatches popped tasks, a batch at a time: their dependencies and projects checked in
   * a few reads, their leases taken in one round trip, every RUNNING transition (fencing
   * token, deadline) written in one, then the dispatches published together.
   */
  private async dispatchBatch(
    ids: readonly string[],
    projects: Map<string, ProjectRecord>,
    deferred: { taskId: string; priority: number }[],
  ): Promise<number> {
    const actors = await this.core.registry.getMany(ids);
    const ready: TaskActor[] = [];
    for (const id of ids) {
      const actor = actors.get(id);
      if (actor && actor.status === 'READY') ready.push(actor); // else a stale queue entry
    }
    if (!ready.length) return 0;
    // The projects not read yet in this pass and the dependency lists of the tasks with
    // dependencies (checked again below), together. The inputs come back with the RUNNING writes.
    const unread = [...new Set(ready.map((a) => a.projectId))].filter((p) => !projects.has(p));
    const waiting = ready.filter((a) => a.hasDependencies).map((a) => a.taskId);
    const [fresh, rows] = await Promise.all([
      Promise.all(unread.map((p) => this.core.projects.getProject(p))),
      waiting.length ? this.core.tasks.getLinks(waiting) : Promise.resolve([]),
    ]);
    // Only a dispatchable project is cached within a pass: one seen paused is read again,
    // so a task popped after a resume (which re-queues READY tasks) is not dropped.
    const paused = new Set<string>();
    unread.forEach((projectId, i) => {
      const project = fresh[i];
      if (project && dispatchable(project)) projects.set(projectId, project);
      else paused.add(projectId);
    });
    const records = new Map(rows.map((r) => [r.taskId, r]));
    const pending = new Map<string, number>();
    const candidates: TaskActor[] = [];
    for (const actor of ready) {
      // A paused project's tasks stay READY in the store; resuming puts them back in the queue.
      if (paused.has(actor.projectId) || (actor.hasDependencies && !records.has(actor.taskId))) continue;
      const agent = actor.assignedTo;
      const limit = this.core.config.scheduler.agentLimits[agent];
      if (limit !== undefined && this.slots.busy(agent) + (pending.get(agent) ?? 0) >= limit) {
        deferred.push({ taskId: actor.taskId, priority: actor.priority });
        continue;
      }
      pending.set(agent, (pending.get(agent) ?? 0) + 1);
      candidates.push(actor);
    }
    if (!candidates.length) return 0;
    const withDeps = candidates.flatMap((a) => records.get(a.taskId) ?? []).filter((r) => r.dependencies.length > 0);
    const states = withDeps.length ? await this.flow.batch.dependencyStates(withDeps) : new Map<string, { met: boolean }>();
    const runnable = candidates.filter((a) => {
      if (states.get(a.taskId)?.met === false) {
        this.core.logger.warn({ taskId: a.taskId }, 'READY task with unmet dependencies: left out of the queue');
        return false;
      }
      return true;
    });
    const ttl = Math.max(...runnable.map((a) => a.timeoutMs), 0) + LEASE_GRACE_MS;
    const leases = await this.core.locks.acquireMany(runnable.map((a) => `task:${a.taskId}`), ttl);
    const now = this.core.clock.now();
    const held = runnable.flatMap((a, i) => (leases[i] ? [{ actor: a, lease: leases[i]! }] : []));
    const outcomes = await this.core.registry.sendMany(
      held.map(({ actor, lease }) => ({
        taskId: actor.taskId,
        event: { type: 'DISPATCH' as const, at: now, fencingToken: lease.fencingToken, deadline: now + actor.timeoutMs },
      })),
    );
    const refused: Lease[] = [];
    const done: TaskTransition[] = [];
    const dispatches: { actor: TaskActor; lease: Lease; attempt: number; input: Record<string, unknown> | undefined }[] = [];
    for (const [i, outcome] of outcomes.entries()) {
      const { actor, lease } = held[i]!;
      if (!outcome.ok) {
        refused.push(lease);
        if (!(outcome.error instanceof VersionConflictError)) this.core.logger.warn({ err: outcome.error, taskId: actor.taskId }, 'dispatch refused');
        continue;
      }
      this.slots.occupy(actor.taskId, actor.assignedTo, lease);
      done.push(outcome.transition);
      dispatches.push({ actor, lease, attempt: outcome.transition.attempt, input: outcome.input });
    }
    // The store returns the input with every write into RUNNING (TaskStore contract).
    const publishes = dispatches.map(({ actor, lease, attempt, input }) => {
      if (input) return this.dispatch(actor, input, attempt, now + actor.timeoutMs, lease.fencingToken);
      this.core.logger.error({ taskId: actor.taskId }, 'the store returned no input with the RUNNING write; the attempt will time out and retry');
      return Promise.resolve();
    });
    publishes.push(publishTransitions(this.core, done));
    // The pass goes on without waiting for the bus to confirm the dispatches (RUNNING is
    // durable; a lost one times out and is retried, and each failure is logged): the next
    // batch's reads and writes overlap with them. stop() waits for them.
    const sent = Promise.all(publishes).then(() => undefined);
    this.sending.add(sent);
    void sent.finally(() => this.sending.delete(sent));
    if (refused.length) await this.core.locks.releaseMany(refused).catch(() => undefined);
    return done.length;
  }

  /** Frees slots of tasks that left RUNNING elsewhere (a result handled by another process). */
  private async reconcile(): Promise<void> {
    const ids = this.slots.runningIds();
    if (ids.length === 0) return;
    const records = await this.core.tasks.getTasks(ids);
    const byId = new Map(records.map((r) => [r.taskId, r]));
    for (const taskId of ids) {
      const lease = this.slots.lease(taskId);
      if (!lease) continue;
      const r = byId.get(taskId);
      if (!r || r.status !== 'RUNNING' || r.fencingToken !== lease.fencingToken) await this.settledMany([taskId]);
    }
  }

  /** Runs one task's step; a failure is logged and does not stop the pass. */
  private async guard<T>(taskId: string, fn: () => Promise<T>): Promise<T | 'failed'> {
    try {
      return await fn();
    } catch (err) {
      const level = err instanceof VersionConflictError || (isOrchestratorError(err) && err.retryable) ? 'warn' : 'error';
      this.core.logger[level]({ err, taskId }, 'scheduler step failed');
      return 'failed';
    }
  }
}
