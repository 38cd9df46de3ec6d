import type { ActorRefLike, AnyActorRef, InspectionEvent, Observer } from 'xstate';
import { ValidationError } from '../errors.js';
import { isTerminal, taskMachine, type TaskEvent, type TaskMachineInput, type TaskSnapshot } from '../machines/task-machine.js';

/** A task as the inspection names it. */
export interface InspectedTask {
  taskId: string;
  projectId: string;
}

/** One committed step of a task machine: the event it took and the snapshot it reached. */
export interface CommittedStep {
  event: TaskEvent;
  snapshot: TaskSnapshot;
}

export interface CommittedInspectionScope {
  /** The session id of the actor system's root (`rootId` of every inspection event). */
  rootId: string;
  /** The actor a task's actor is shown under: its project's actor, or the root. */
  parentOf(projectId: string): AnyActorRef;
  /** A failing observer never fails a commit: its error is handed here. */
  onError(err: unknown): void;
}

/**
 * The task actors' inspection, fed from committed transitions. Task actors are passivated
 * (their state is the snapshot their row holds; no XState actor runs for them), so XState
 * cannot inspect them; the registry hands every step it commits here instead, and this
 * emits what XState would have for a live actor, in the same `InspectionEvent` shapes and
 * to the same observer as the rest of the system: `@xstate.actor` once per task seen (with
 * the task machine's definition and its parent, so the Stately inspector draws it under
 * its project), then `@xstate.event` and `@xstate.snapshot` per committed step — only
 * committed ones, in commit order, so the inspector shows exactly what the audit log holds.
 * A task created here starts with its creation (`xstate.init`, the audit log's CREATED).
 *
 * Built only when inspection is on: the commit path costs one `undefined` check otherwise.
 */
export class CommittedInspection {
  /** The stand-in actor refs of the tasks seen and not final yet. */
  private readonly seen = new Map<string, PassivatedTaskRef>();

  constructor(
    private readonly observer: Observer<InspectionEvent>,
    private readonly scope: CommittedInspectionScope,
  ) {}

  /** How many task actors are being followed (seen and not final). */
  get followed(): number {
    return this.seen.size;
  }

  /**
   * A task created by this process: its creation, then each step it took before its first
   * write (a task created READY or RUNNING), as committed in the same statement.
   */
  created(task: InspectedTask & { input: TaskMachineInput }, initial: TaskSnapshot, steps: readonly CommittedStep[]): void {
    const ref = this.announce(task, initial);
    this.emit({ type: '@xstate.event', rootId: this.scope.rootId, actorRef: ref, sourceRef: ref._parent, event: initEvent(task.input) });
    this.emit({ type: '@xstate.snapshot', rootId: this.scope.rootId, actorRef: ref, event: initEvent(task.input), snapshot: initial });
    for (const step of steps) this.step(task, initial, step);
  }

  /** A committed step; a task not seen before is announced first, in its state before the step. */
  step(task: InspectedTask, before: TaskSnapshot, step: CommittedStep): void {
    const ref = this.seen.get(task.taskId) ?? this.announce(task, before);
    this.emit({ type: '@xstate.event', rootId: this.scope.rootId, actorRef: ref, sourceRef: undefined, event: step.event });
    this.emit({ type: '@xstate.snapshot', rootId: this.scope.rootId, actorRef: ref, event: step.event, snapshot: step.snapshot });
    // A final task takes no more steps: forgotten, so following tasks costs memory only while they live.
    if (isTerminal(step.snapshot)) this.seen.delete(task.taskId);
  }

  private announce(task: InspectedTask, snapshot: TaskSnapshot): PassivatedTaskRef {
    const ref = new PassivatedTaskRef(task.taskId, `${this.scope.rootId}/task:${task.taskId}`, this.scope.parentOf(task.projectId), snapshot);
    this.seen.set(task.taskId, ref);
    this.emit({ type: '@xstate.actor', rootId: this.scope.rootId, actorRef: ref });
    return ref;
  }

  private emit(event: InspectionEvent): void {
    try {
      this.observer.next?.(event);
    } catch (err) {
      this.scope.onError(err);
    }
  }
}

function initEvent(input: TaskMachineInput): { type: 'xstate.init'; input: TaskMachineInput } {
  return { type: 'xstate.init', input };
}

/**
 * A passivated task actor as an inspector sees it: the fields XState's inspection events
 * carry for a live actor (`id`, `sessionId`, the logic and its definition, the parent,
 * the snapshot it was first seen in). It takes no events: a task's events are decided and
 * committed by the registry (`TaskRegistry.sendMany`), never sent to an actor.
 */
export class PassivatedTaskRef implements ActorRefLike {
  readonly logic = taskMachine;
  readonly src = 'task';

  constructor(
    readonly id: string,
    /** Unique in the inspector: the root's session id and the task id. */
    readonly sessionId: string,
    readonly _parent: AnyActorRef,
    private readonly first: TaskSnapshot,
  ) {}

  getSnapshot(): TaskSnapshot {
    return this.first;
  }

  send(event: { type: string }): void {
    throw new ValidationError(`task ${this.id} is passivated: its events are committed through the task registry, not sent to it (${event.type})`);
  }
}
