import type { Logger } from 'pino';
import { IllegalTransitionError, StaleFencingTokenError, ValidationError } from '../errors.js';
import type { TaskStatus } from '../domain/task.js';
import type { BudgetEffect, TransitionWrite } from '../ports/commit.js';
import type { OutboxEvent, TaskRecord, TaskStore } from '../ports/task-store.js';
import { TASK_MACHINE_VERSION, isTerminal, statusOf, type TaskEvent, type TaskMachineInput, type TaskSnapshot } from '../machines/task-machine.js';
import type { TaskSteps } from '../machines/task-steps.js';
import type { ActorSystem, TaskActorRef } from './system.js';
import { auditDetail, patchFromSnapshot, persistSnapshot, snapshotForRecord, storedSnapshot } from './task-snapshot.js';

/** The events an agent's message makes (a result, a heartbeat): their carried token must be the attempt's own. */
const AGENT_WRITES: ReadonlySet<TaskEvent['type']> = new Set(['COMPLETE', 'FAIL', 'HEARTBEAT']);

export interface TaskTransition {
  taskId: string;
  projectId: string;
  taskType: string;
  from: TaskStatus;
  to: TaskStatus;
  event: TaskEvent['type'];
  at: number;
  attempt: number;
  snapshot: TaskSnapshot;
  /** Row version after the write. */
  version: number;
}

export interface TaskActorDeps {
  store: TaskStore;
  /** This orchestrator instance, recorded in the audit log. */
  instanceId: string;
  logger: Logger;
  /** The task machine's pure steps (one shared scope; see machines/task-steps.ts). */
  steps: TaskSteps;
  /** The actor system a task actor is activated in, on demand (see `TaskActor.activate`). */
  system?: ActorSystem;
}

/** The snapshot of a task just built (so the actor need not restore it), and the steps that led to it at creation. */
export interface InitialSnapshot {
  snapshot: TaskSnapshot;
  /** Each step's snapshot before it and its event, in order (a task created READY or RUNNING). */
  history?: readonly { snapshot: TaskSnapshot; event: TaskEvent }[];
}

/** A checked event and the write it makes (see `TaskActor.prepare`). */
export interface PreparedTransition {
  event: TaskEvent;
  write: TransitionWrite;
  attempt: number;
  /** The snapshot the actor takes once the write is durable. */
  next: TaskSnapshot;
}

export interface SendOptions {
  /** The fencing token of the lease the sender acts under (results and heartbeats). */
  fencingToken?: number;
  /** The task's output, stored with a COMPLETE. */
  output?: Record<string, unknown>;
  /** The budget change written in the same transaction. */
  budget?: BudgetEffect;
  /** Pipeline events raised by this transition, written to the outbox in the same transaction. */
  raise?: readonly OutboxEvent[];
}

/**
 * A task as a persisted XState actor. `prepare` computes the next snapshot with the
 * machine's pure transition and the write it makes; the registry writes it to the store
 * (row-version and fencing checked there, see TaskRegistry.sendMany), and only then does
 * `commit` take the step: a transition is acknowledged once durable. A refused event
 * (illegal in this state, stale fencing token, version conflict, store failure) leaves
 * the actor exactly as it was.
 *
 * The actor is passivated (virtual): its state is its snapshot (the same one the store
 * holds) and its behaviour the machine, which is all a pure machine without timers or
 * children needs — no live XState `Actor` object per task, which costs CPU on every step
 * and ~3 KB of heap per task. The inspector still sees its steps: the registry feeds it
 * the committed ones (inspect/committed-steps.ts). Activated on demand (`activate`), a
 * live XState actor runs alongside, a child of its project's actor in the actor system,
 * and takes every committed event too, until the task is final or evicted.
 */
export class TaskActor {
  readonly taskId: string;
  readonly projectId: string;
  readonly taskType: string;
  /** Immutable fields of the task, kept for the scheduler and the budget. */
  readonly assignedTo: string;
  readonly priority: number;
  readonly estimatedCost: number;
  readonly timeoutMs: number;
  /** Whether the task waits on other tasks (a supersession can change which, not whether). */
  readonly hasDependencies: boolean;
  /** The traceparent of the ingest that created the task (null: untraced); its dispatches continue that trace. */
  readonly traceParent: string | null;
  private snapshot: TaskSnapshot;
  /** The live XState actor, while activated. */
  private live: TaskActorRef | undefined;
  private version: number;

  private constructor(
    record: TaskRecord,
    private readonly deps: TaskActorDeps,
    initial?: InitialSnapshot,
  ) {
    this.taskId = record.taskId;
    this.projectId = record.projectId;
    this.taskType = record.taskType;
    this.assignedTo = record.assignedTo;
    this.priority = record.priority;
    this.estimatedCost = record.estimatedCost ?? 0;
    this.timeoutMs = record.timeoutMs;
    this.hasDependencies = record.dependencies.length > 0;
    this.traceParent = record.traceParent ?? null;
    this.version = record.version;
    if (initial) {
      this.snapshot = initial.snapshot;
    } else {
      const restored = snapshotForRecord(record);
      if (restored.source === 'stale') {
        deps.logger.warn(
          { taskId: record.taskId, found: record.machineVersion, expected: TASK_MACHINE_VERSION },
          'task snapshot from another machine version: state rebuilt from the row columns',
        );
      }
      this.snapshot = deps.steps.restore(restored.persisted);
    }
  }

  /** Restores the actor of a stored task (after a restart, or on demand). */
  static fromRecord(record: TaskRecord, deps: TaskActorDeps, initial?: InitialSnapshot): TaskActor {
    return new TaskActor(record, deps, initial);
  }

  getSnapshot(): TaskSnapshot {
    return this.snapshot;
  }

  get status(): TaskStatus {
    return statusOf(this.snapshot);
  }

  get rowVersion(): number {
    return this.version;
  }

  get terminal(): boolean {
    return isTerminal(this.snapshot);
  }

  /**
   * Whether an agent's result was applied already: the same result delivered again (the
   * bus redelivers what was written but not yet acknowledged when a process stopped). The
   * fencing token names the attempt, and a dispatch resets what a result leaves behind:
   * a completion left the task COMPLETED with that cost, a failure left its error.
   */
  hasApplied(result: { status: 'completed' | 'failed'; fencingToken: number; actualCost?: number | undefined; error?: string | undefined }): boolean {
    const { fencingToken, actualCost, lastError } = this.snapshot.context;
    if (fencingToken !== result.fencingToken) return false;
    if (result.status === 'completed') return this.status === 'COMPLETED' && actualCost === (result.actualCost ?? null);
    return this.status !== 'RUNNING' && lastError === result.error;
  }

  /** Whether `event` would be accepted now (without fencing or store checks). */
  can(event: TaskEvent): boolean {
    return this.snapshot.can(event);
  }

  /** The machine's input (what a live actor of this task is declared with). */
  get input(): TaskMachineInput {
    return { taskId: this.taskId, projectId: this.projectId, taskType: this.taskType, maxAttempts: this.snapshot.context.maxAttempts };
  }

  /**
   * Activates the task actor: a live XState actor in the actor system (`systemId`
   * `task:<id>`), a child of its project's actor, restored from the current snapshot; it
   * takes every step committed from now on. Returns the live one when already active.
   */
  activate(): TaskActorRef {
    if (this.live) return this.live;
    if (!this.deps.system) throw new ValidationError(`task ${this.taskId}: no actor system to activate it in`);
    this.live = this.deps.system.activateTask({ taskId: this.taskId, projectId: this.projectId, snapshot: persistSnapshot(this.snapshot), input: this.input });
    return this.live;
  }

  /** Whether a live XState actor runs for the task (see `activate`). */
  get activated(): boolean {
    return this.live !== undefined;
  }

  /** Passivates the task actor again: the live actor, if any, is released (stopped by its parent). */
  stop(): void {
    if (!this.live) return;
    this.live = undefined;
    this.deps.system?.releaseTask(this.taskId);
  }

  /**
   * Checks an event and computes its write, without writing (the batch path: the registry
   * writes many in one round trip, then `commit`s each). Throws StaleFencingTokenError or
   * IllegalTransitionError; nothing changes then.
   *
   * A token carried by an agent's write (a result, a heartbeat: `AGENT_WRITES`) must be the
   * attempt's own: an older one is a stale lease holder's, and a newer one was never
   * handed to this task (a lease's token is in the RUNNING row before any agent sees it),
   * so both are refused. (A dispatch's new token is its event's, checked by the store.)
   */
  prepare(event: TaskEvent, options: SendOptions = {}): PreparedTransition {
    const current = this.snapshot;
    const from = statusOf(current);
    const stored = current.context.fencingToken;
    if (options.fencingToken !== undefined && stored !== null && (options.fencingToken < stored || (AGENT_WRITES.has(event.type) && options.fencingToken !== stored))) {
      throw new StaleFencingTokenError(this.taskId, options.fencingToken, stored);
    }
    // The step leaves the very snapshot when the machine does not take the event (no
    // enabled transition: what can() would compute, without computing it twice).
    const next = this.deps.steps.step(current, event);
    if (next === current) {
      throw new IllegalTransitionError(this.taskId, from, event.type, refusalDetail(current, event));
    }
    const to = statusOf(next);
    const patch = patchFromSnapshot(next);
    if (event.type === 'COMPLETE' && options.output !== undefined) patch.output = options.output;
    const carried = event.type === 'DISPATCH' ? event.fencingToken : options.fencingToken;
    const write: TransitionWrite = {
      taskId: this.taskId,
      expectedVersion: this.version,
      from,
      to,
      event: event.type,
      detail: auditDetail(event),
      patch,
      snapshot: storedSnapshot(next),
      machineVersion: TASK_MACHINE_VERSION,
      ...(carried === undefined ? {} : { fencingToken: carried }),
      by: this.deps.instanceId,
      at: new Date(event.at),
      ...(options.budget ? { budget: options.budget } : {}),
      ...(options.raise?.length ? { raise: options.raise } : {}),
    };
    return { event, write, attempt: next.context.attempts, next };
  }

  /** After the prepared write is durable (at `version`): the live actor takes the same step. */
  commit(prepared: PreparedTransition, version: number): TaskTransition {
    this.version = version;
    this.snapshot = prepared.next;
    this.live?.send(prepared.event);
    return {
      taskId: this.taskId,
      projectId: this.projectId,
      taskType: this.taskType,
      from: prepared.write.from,
      to: prepared.write.to,
      event: prepared.event.type,
      at: prepared.event.at,
      attempt: prepared.attempt,
      snapshot: this.snapshot,
      version,
    };
  }
}

function refusalDetail(snapshot: TaskSnapshot, event: TaskEvent): string | undefined {
  const status = statusOf(snapshot);
  if (status === 'FAILED' && (event.type === 'RETRY' || event.type === 'CANCEL')) {
    return `no attempts left (${snapshot.context.attempts}/${snapshot.context.maxAttempts})`;
  }
  if (snapshot.status === 'done') return 'the task is final';
  return undefined;
}
