import { createActor, fromPromise, waitFor, type Actor, type InspectionEvent, type Observer } from 'xstate';
import { TaskNotFoundError, VersionConflictError, isOrchestratorError } from '../errors.js';
import { schedulerMachine, type SchedulerMachine } from '../machines/scheduler-machine.js';
import type { Lease } from '../ports/lock-manager.js';
import type { ProjectRecord } from '../ports/project-store.js';
import type { Core } from './core.js';
import type { TaskFlow } from './task-flow.js';

/** RUNNING tasks dispatched this recently are dispatched again at start (within the bus's duplicate window). */
export const REDISPATCH_WINDOW_MS = 110_000;
/** Extra lease time past a task's deadline, so the lease outlives the attempt it guards. */
export const LEASE_GRACE_MS = 30_000;
const SWEEP_BATCH = 200;

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
  private stopping = false;

  get runningCount(): number {
    return this.running.size;
  }

  /** The scheduler actor (for inspection). */
  get ref(): Actor<SchedulerMachine> {
    return this.actor;
  }

  start(): void {
    this.stopping = false;
    this.actor.send({ type: 'START' });
  }

  /** Stops the loop; resolves once a pass in flight has finished. */
  async stop(): Promise<void> {
    this.stopping = true;
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

  /** A task left RUNNING (result, timeout, cancel): release its lease and free the slot. */
  async settled(taskId: string): Promise<void> {
    const lease = this.running.get(taskId);
    if (!lease) return;
    this.running.delete(taskId);
    const agent = this.agentOf.get(taskId);
    this.agentOf.delete(taskId);
    if (agent !== undefined) this.perAgent.set(agent, (this.perAgent.get(agent) ?? 1) - 1);
    await this.core.locks.release(lease).catch((err) => this.core.logger.warn({ err, taskId }, 'could not release a lease'));
    this.wake();
  }

  /** A heartbeat extended the task's deadline: extend its lease as well. */
  async extendLease(taskId: string, ttlMs: number): Promise<void> {
    const lease = this.running.get(taskId);
    if (lease) await this.core.locks.extend(lease, ttlMs + LEASE_GRACE_MS);
  }

  private async runTick(): Promise<number> {
    await this.reconcile();
    const now = new Date(this.core.clock.now());
    for (const task of await this.core.tasks.listExpired(now, SWEEP_BATCH)) {
      await this.guard(task.taskId, () => this.flow.timeOut(task.taskId));
    }
    for (const task of await this.core.tasks.listDueRetries(now, SWEEP_BATCH)) {
      await this.guard(task.taskId, () => this.flow.promote(task.taskId));
    }
    await this.sweeps.approvals();
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
      const room = max - this.running.size;
      if (room <= 0) break;
      const ids = await this.core.queue.getMany(room);
      if (ids.length === 0) break;
      let progress = 0;
      for (const id of ids) {
        const outcome = await this.guard(id, () => this.dispatchOne(id, projects, deferred));
        if (outcome === 'dispatched') progress++;
      }
      dispatched += progress;
      if (progress === 0 && deferred.length > 0) break;
    }
    if (deferred.length) await this.core.queue.putMany(deferred);
    return dispatched;
  }

  private agentFull(agent: string): boolean {
    const limit = this.core.config.scheduler.agentLimits[agent];
    return limit !== undefined && (this.perAgent.get(agent) ?? 0) >= limit;
  }

  private async dispatchOne(
    taskId: string,
    projects: Map<string, ProjectRecord>,
    deferred: { taskId: string; priority: number }[],
  ): Promise<'dispatched' | 'skipped' | 'deferred'> {
    const actor = await this.core.registry.get(taskId);
    if (actor.status !== 'READY') return 'skipped'; // a stale queue entry
    if (this.agentFull(actor.assignedTo)) {
      deferred.push({ taskId, priority: actor.priority });
      return 'deferred';
    }
    // Only "active" is cached within a pass: a project seen paused is read again for each
    // task, so a task popped after a resume (which re-queues READY tasks) is not dropped.
    let project = projects.get(actor.projectId) ?? (await this.core.projects.getProject(actor.projectId));
    if (project?.state === 'active') projects.set(actor.projectId, project);
    // A paused project's tasks stay READY in the store; resuming puts them back in the queue.
    if (!project || project.state !== 'active') return 'skipped';
    if (!(await this.checkDependencies(taskId))) {
      this.core.logger.warn({ taskId }, 'READY task with unmet dependencies: left out of the queue');
      return 'skipped';
    }
    const lease = await this.core.locks.acquire(`task:${taskId}`, actor.timeoutMs + LEASE_GRACE_MS);
    if (!lease) return 'skipped'; // another orchestrator is dispatching it
    const record = await this.core.tasks.getTask(taskId);
    if (!record) throw new TaskNotFoundError(taskId);
    const now = this.core.clock.now();
    const deadline = now + actor.timeoutMs;
    let attempt: number;
    try {
      const t = await this.flow.send(taskId, { type: 'DISPATCH', at: now, fencingToken: lease.fencingToken, deadline });
      attempt = t.attempt;
    } catch (err) {
      await this.core.locks.release(lease).catch(() => undefined);
      throw err;
    }
    this.running.set(taskId, lease);
    this.agentOf.set(taskId, actor.assignedTo);
    this.perAgent.set(actor.assignedTo, (this.perAgent.get(actor.assignedTo) ?? 0) + 1);
    try {
      await this.core.bus.dispatchTask(actor.assignedTo, {
        taskId,
        projectId: actor.projectId,
        taskType: actor.taskType,
        input: record.input,
        attempt,
        deadline: new Date(deadline).toISOString(),
        fencingToken: lease.fencingToken,
      });
    } catch (err) {
      // RUNNING is durable: the attempt times out and is retried.
      this.core.logger.error({ err, taskId }, 'dispatch failed; the attempt will time out and retry');
    }
    return 'dispatched';
  }

  /** Frees slots of tasks that left RUNNING elsewhere (a result handled by another process). */
  private async reconcile(): Promise<void> {
    if (this.running.size === 0) return;
    const records = await this.core.tasks.getTasks([...this.running.keys()]);
    const byId = new Map(records.map((r) => [r.taskId, r]));
    for (const [taskId, lease] of this.running) {
      const r = byId.get(taskId);
      if (!r || r.status !== 'RUNNING' || r.fencingToken !== lease.fencingToken) await this.settled(taskId);
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
