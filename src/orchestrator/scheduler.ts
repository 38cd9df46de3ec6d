import { createActor, fromPromise, waitFor, type Actor, type InspectionEvent, type Observer } from 'xstate';
import { VersionConflictError, isOrchestratorError } from '../errors.js';
import type { TaskActor, TaskTransition } from '../actors/task-actor.js';
import { BUDGET_EXHAUSTED, acceptsWork, publishTransitions } from './core.js';
import { schedulerMachine, type SchedulerMachine } from '../machines/scheduler-machine.js';
import type { Lease } from '../ports/lock-manager.js';
import type { ProjectRecord } from '../ports/project-store.js';
import type { TaskRecord } from '../ports/task-store.js';
import type { Core } from './core.js';
import type { TaskFlow } from './task-flow.js';

/** RUNNING tasks dispatched this recently are dispatched again at start (within the bus's duplicate window). */
export const REDISPATCH_WINDOW_MS = 110_000;
/** Extra lease time past a task's deadline, so the lease outlives the attempt it guards. */
export const LEASE_GRACE_MS = 30_000;
/** Tasks popped, checked, leased and written together in one dispatch batch. */
export const DISPATCH_BATCH = 500;
const SWEEP_BATCH = 200;

/** A task about to be created READY, as `claimDirect` judges it. */
export interface DirectCandidate {
  taskId: string;
  assignedTo: string;
  priority: number;
  timeoutMs: number;
}

/** A task claimed for dispatch at creation: its slot and lease. */
export interface DirectClaim {
  taskId: string;
  agent: string;
  lease: Lease;
}

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
  private readonly running = new Map<string, Lease>();
  /** RUNNING tasks per agent (for AGENT_CONCURRENCY). */
  private readonly perAgent = new Map<string, number>();
  private readonly agentOf = new Map<string, string>();
  /** Leases of tasks claimed for dispatch at creation (claimDirect), not yet written RUNNING (null: being taken). */
  private readonly claims = new Map<string, Lease | null>();
  /** The pass in flight; passes never overlap (the loop's and `tick()` calls). */
  private inflight: Promise<unknown> = Promise.resolve();
  private readonly actor: Actor<SchedulerMachine>;

  constructor(
    private readonly core: Core,
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
  }

  private failuresLogged = 0;
  private lastSweep = Number.NEGATIVE_INFINITY;
  private stopping = false;
  private started = false;

  get runningCount(): number {
    return this.running.size;
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
    const leases: Lease[] = [];
    for (const taskId of taskIds) {
      const lease = this.running.get(taskId);
      if (!lease) continue;
      leases.push(lease);
      this.running.delete(taskId);
      const agent = this.agentOf.get(taskId);
      this.agentOf.delete(taskId);
      if (agent !== undefined) this.perAgent.set(agent, (this.perAgent.get(agent) ?? 1) - 1);
    }
    if (!leases.length) return;
    await this.core.locks.releaseMany(leases).catch((err) => this.core.logger.warn({ err }, 'could not release leases'));
    this.wake();
  }

  /** A heartbeat extended the task's deadline: extend its lease as well. */
  async extendLease(taskId: string, ttlMs: number): Promise<void> {
    const lease = this.running.get(taskId);
    if (lease) await this.core.locks.extend(lease, ttlMs + LEASE_GRACE_MS);
  }

  /**
   * Dispatch at creation: of tasks about to be written READY (`candidates`), claims those
   * that may start at once — the scheduler runs, nothing waits in the queue (a waiting
   * task would come first), there is room within MAX_CONCURRENT_TASKS and each agent's
   * limit — highest priority first, and takes their leases. The caller writes the claimed
   * tasks RUNNING (with the leases' fencing tokens) in the same write that creates them,
   * then calls `confirmDirect` with what it wrote, or `abandonDirect`.
   */
  async claimDirect(candidates: readonly DirectCandidate[]): Promise<DirectClaim[]> {
    if (!this.started || this.stopping || candidates.length === 0) return [];
    const max = this.core.config.scheduler.maxConcurrentTasks;
    const picked: DirectCandidate[] = [];
    const taken = new Map<string, number>();
    for (const c of [...candidates].sort((a, b) => b.priority - a.priority)) {
      if (this.running.size + this.claims.size + picked.length >= max) break;
      const limit = this.core.config.scheduler.agentLimits[c.assignedTo];
      const busy = (this.perAgent.get(c.assignedTo) ?? 0) + (taken.get(c.assignedTo) ?? 0);
      if (limit !== undefined && busy >= limit) continue;
      taken.set(c.assignedTo, (taken.get(c.assignedTo) ?? 0) + 1);
      picked.push(c);
    }
    if (!picked.length) return [];
    // The slots are held while the queue is checked and the leases taken.
    for (const c of picked) this.perAgent.set(c.assignedTo, (this.perAgent.get(c.assignedTo) ?? 0) + 1);
    for (const c of picked) this.claims.set(c.taskId, null);
    const ttl = Math.max(...picked.map((c) => c.timeoutMs)) + LEASE_GRACE_MS;
    let claims: DirectClaim[] = [];
    try {
      const [waiting, leases] = await Promise.all([
        this.core.queue.size(),
        this.core.locks.acquireMany(picked.map((c) => `task:${c.taskId}`), ttl),
      ]);
      claims = picked.flatMap((c, i) => (leases[i] ? [{ taskId: c.taskId, agent: c.assignedTo, lease: leases[i]! }] : []));
      const missed = picked.filter((_, i) => !leases[i]);
      this.unclaim(missed.map((c) => ({ taskId: c.taskId, agent: c.assignedTo })));
      if (waiting > 0) {
        await this.abandonDirect(claims);
        return [];
      }
      for (const c of claims) this.claims.set(c.taskId, c.lease);
      return claims;
    } catch (err) {
      this.unclaim(picked.map((c) => ({ taskId: c.taskId, agent: c.assignedTo })));
      if (claims.length) await this.core.locks.releaseMany(claims.map((c) => c.lease)).catch(() => undefined);
      this.core.logger.warn({ err }, 'dispatch at creation unavailable; the tasks go through the queue');
      return [];
    }
  }

  /**
   * The claimed tasks are durable RUNNING: they take their slots and are dispatched
   * (`tasks`: the rows written, with their inputs).
   */
  async confirmDirect(tasks: readonly TaskRecord[]): Promise<void> {
    const publishes: Promise<void>[] = [];
    for (const t of tasks) {
      const lease = this.claims.get(t.taskId);
      if (!lease) continue;
      this.claims.delete(t.taskId);
      this.running.set(t.taskId, lease);
      this.agentOf.set(t.taskId, t.assignedTo);
      publishes.push(this.dispatch(t, t.input, t.attempts, t.deadline!.getTime(), lease.fencingToken));
    }
    await Promise.all(publishes);
  }

  /** The claimed tasks were not written RUNNING: their slots and leases are given back. */
  async abandonDirect(claims: readonly DirectClaim[]): Promise<void> {
    const held = claims.filter((c) => this.claims.has(c.taskId));
    if (!held.length) return;
    this.unclaim(held);
    await this.core.locks.releaseMany(held.map((c) => c.lease)).catch((err) => this.core.logger.warn({ err }, 'could not release leases'));
    this.wake();
  }

  private unclaim(claims: readonly { taskId: string; agent: string }[]): void {
    for (const c of claims) {
      if (!this.claims.delete(c.taskId)) continue;
      this.perAgent.set(c.agent, (this.perAgent.get(c.agent) ?? 1) - 1);
    }
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
      const room = Math.min(max - this.running.size - this.claims.size, DISPATCH_BATCH);
      if (room <= 0) break;
      const ids = await this.core.queue.getMany(room);
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
    // The projects not read yet in this pass and the task rows (inputs, dependencies), together.
    const unread = [...new Set(ready.map((a) => a.projectId))].filter((p) => !projects.has(p));
    const [fresh, rows] = await Promise.all([
      Promise.all(unread.map((p) => this.core.projects.getProject(p))),
      this.core.tasks.getTasks(ready.map((a) => a.taskId)),
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
      if (paused.has(actor.projectId) || !records.has(actor.taskId)) continue;
      const agent = actor.assignedTo;
      const limit = this.core.config.scheduler.agentLimits[agent];
      if (limit !== undefined && (this.perAgent.get(agent) ?? 0) + (pending.get(agent) ?? 0) >= limit) {
        deferred.push({ taskId: actor.taskId, priority: actor.priority });
        continue;
      }
      pending.set(agent, (pending.get(agent) ?? 0) + 1);
      candidates.push(actor);
    }
    if (!candidates.length) return 0;
    const withDeps = candidates.map((a) => records.get(a.taskId)!).filter((r) => r.dependencies.length > 0);
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
    const publishes: Promise<void>[] = [];
    const done: TaskTransition[] = [];
    for (const [i, outcome] of outcomes.entries()) {
      const { actor, lease } = held[i]!;
      if (!outcome.ok) {
        refused.push(lease);
        if (!(outcome.error instanceof VersionConflictError)) this.core.logger.warn({ err: outcome.error, taskId: actor.taskId }, 'dispatch refused');
        continue;
      }
      this.running.set(actor.taskId, lease);
      this.agentOf.set(actor.taskId, actor.assignedTo);
      this.perAgent.set(actor.assignedTo, (this.perAgent.get(actor.assignedTo) ?? 0) + 1);
      done.push(outcome.transition);
      const record = records.get(actor.taskId)!;
      publishes.push(this.dispatch(actor, record.input, outcome.transition.attempt, now + actor.timeoutMs, lease.fencingToken));
    }
    publishes.push(publishTransitions(this.core, done));
    if (refused.length) await this.core.locks.releaseMany(refused).catch(() => undefined);
    await Promise.all(publishes);
    return publishes.length;
  }

  /** Frees slots of tasks that left RUNNING elsewhere (a result handled by another process). */
  private async reconcile(): Promise<void> {
    if (this.running.size === 0) return;
    const records = await this.core.tasks.getTasks([...this.running.keys()]);
    const byId = new Map(records.map((r) => [r.taskId, r]));
    for (const [taskId, lease] of this.running) {
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
