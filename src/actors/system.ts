import {
  createActor,
  fromPromise,
  toObserver,
  type Actor,
  type ActorRefFrom,
  type AnyActorRef,
  type InspectionEvent,
  type Observer,
  type Snapshot,
} from 'xstate';
import type { Logger } from 'pino';
import { ValidationError } from '../errors.js';
import type { Clock } from '../ports/clock.js';
import { orchestratorMachine, projectActorId, SCHEDULER_ID, taskActorId, type OrchestratorMachine } from '../machines/orchestrator-machine.js';
import type { ProjectMachine } from '../machines/project-machine.js';
import type { RestorableLogic } from '../machines/restorable.js';
import { schedulerMachine, type SchedulerMachine } from '../machines/scheduler-machine.js';
import { taskMachine, type TaskMachine, type TaskMachineInput } from '../machines/task-machine.js';
import { CommittedInspection } from '../inspect/committed-steps.js';

/** What the scheduler actor runs: the loop's pass and the wait for the pass in flight. */
export interface SchedulerLoop {
  /** One pass; resolves to how many tasks it dispatched. */
  tick(): Promise<number>;
  /** Resolves when the pass in flight (if any) has finished. */
  drain(): Promise<void>;
}

export interface ActorSystemOptions {
  clock: Clock;
  logger: Logger;
  /** Opt-in inspection (a Stately inspector): every actor of the system, and the task actors' committed steps. */
  inspect?: Observer<InspectionEvent> | ((event: InspectionEvent) => void);
}

export type ProjectActorRef = ActorRefFrom<RestorableLogic<ProjectMachine>>;
export type SchedulerActorRef = ActorRefFrom<SchedulerMachine>;
export type TaskActorRef = ActorRefFrom<TaskMachine>;

/** A task actor to activate: its task, and the persisted snapshot its row holds. */
export interface TaskActivation {
  taskId: string;
  projectId: string;
  snapshot: Snapshot<unknown>;
  input: TaskMachineInput;
}

/**
 * The orchestrator's one actor system: a root (machines/orchestrator-machine.ts) whose
 * children are the scheduler (`systemId` `scheduler`) and the project actors
 * (`project:<id>`), with task actors under their project. One per Orchestrator, started
 * when built; every actor is looked up by its systemId (`system.get`).
 *
 * Task actors are passivated (virtual): a task's state is the snapshot its row holds and
 * its behaviour the pure task machine (actors/task-actor.ts), so no XState actor runs for
 * it. One is activated on demand (`activateTask`): a live XState actor, restored from the
 * task's snapshot, a child of its project's actor (of the root when the project has no
 * live actor), taking every step the task commits until it is released. The inspector
 * still sees every task machine's steps: `inspection` is fed from committed transitions.
 *
 * Supervision: a child's error is recorded by the root (it never takes the root, or the
 * process, down), logged here and handed to the `onChildError` listeners — the project
 * actors drop a failed one, loaded again from its row when next needed.
 */
export class ActorSystem {
  readonly root: Actor<OrchestratorMachine>;
  /** The task actors' inspection from committed steps; undefined when inspection is off. */
  readonly inspection: CommittedInspection | undefined;
  private loop: SchedulerLoop | undefined;
  private readonly activated = new Map<string, { ref: TaskActorRef; parent: AnyActorRef; projectId: string }>();
  private readonly childErrorListeners = new Set<(child: string, error: string) => void>();
  private childErrorsSeen = 0;

  constructor(private readonly options: ActorSystemOptions) {
    const { clock, logger, inspect } = options;
    const logic = orchestratorMachine.provide({
      actors: {
        scheduler: schedulerMachine.provide({
          actors: {
            tick: fromPromise(() => this.schedulerLoop().tick()),
            drain: fromPromise(() => this.schedulerLoop().drain()),
          },
        }),
      },
    });
    this.root = createActor(logic, { id: 'orchestrator', systemId: 'orchestrator', clock, ...(inspect ? { inspect } : {}) });
    this.root.subscribe({
      next: (snapshot) => {
        const { childErrors, lastChildError } = snapshot.context;
        if (childErrors <= this.childErrorsSeen || !lastChildError) return;
        this.childErrorsSeen = childErrors;
        // The error as an object (pino's err serializer: type, message, stack, code, cause), never a bare string.
        logger.error({ child: lastChildError.child, err: lastChildError.cause ?? new Error(lastChildError.error) }, 'actor failed: recorded by the root, which goes on');
        for (const listener of this.childErrorListeners) listener(lastChildError.child, lastChildError.error);
      },
      error: (err) => logger.error({ err }, 'root actor error'),
    });
    this.root.start();
    this.inspection = inspect
      ? new CommittedInspection(toObserver(inspect), {
          rootId: this.root.sessionId,
          parentOf: (projectId) => this.liveProject(projectId) ?? this.root,
          onError: (err) => logger.debug({ err }, 'inspection observer failed'),
        })
      : undefined;
  }

  /** The system the root made: `get(systemId)` finds any of its actors. */
  get system(): Actor<OrchestratorMachine>['system'] {
    return this.root.system;
  }

  /**
   * Spawns the scheduler actor as the root's child, running `loop` (once per system). It
   * starts stopped; START runs the loop.
   */
  spawnScheduler(loop: SchedulerLoop, intervalMs: number): SchedulerActorRef {
    if (this.loop) throw new ValidationError('the actor system has a scheduler already');
    this.loop = loop;
    this.root.send({ type: 'SPAWN_SCHEDULER', intervalMs });
    const scheduler = this.scheduler;
    if (!scheduler) throw new ValidationError('the scheduler actor could not start', [this.root.getSnapshot().context.lastChildError?.error ?? '']);
    return scheduler;
  }

  get scheduler(): SchedulerActorRef | undefined {
    return this.system.get(SCHEDULER_ID) as SchedulerActorRef | undefined;
  }

  /**
   * Spawns a project's actor as the root's child, from its persisted snapshot (one per
   * project: the live one when it has one). A snapshot the project machine cannot restore
   * is refused with a ValidationError (the failed child is removed; the root goes on).
   */
  spawnProject(projectId: string, snapshot?: Snapshot<unknown>): ProjectActorRef {
    const id = projectActorId(projectId);
    this.root.send({ type: 'SPAWN_PROJECT', projectId, ...(snapshot ? { snapshot } : {}) });
    // A child that failed as it started has been removed by the root already.
    const ref = this.root.getSnapshot().children[id] as ProjectActorRef | undefined;
    if (!ref) {
      const failure = this.root.getSnapshot().context.lastChildError;
      throw new ValidationError(`project ${projectId}: its actor could not start`, failure?.child === id ? [failure.error] : []);
    }
    return ref;
  }

  /** Stops a project's actor (its activated task actors first), and removes it from the root. */
  stopProject(projectId: string): void {
    for (const [taskId, entry] of this.activated) if (entry.projectId === projectId) this.releaseTask(taskId);
    this.root.send({ type: 'STOP_PROJECT', projectId });
  }

  /** The project's actor while it runs (a final or stopped one is no longer in the system). */
  liveProject(projectId: string): ProjectActorRef | undefined {
    return this.system.get(projectActorId(projectId)) as ProjectActorRef | undefined;
  }

  /**
   * Activates a task actor: a live XState actor (`systemId` `task:<id>`) restored from the
   * task's snapshot, a child of its project's actor (supervised: its error goes to the
   * project, not further), or of the root when the project has no live actor. Returns the
   * live one when the task has it already.
   */
  activateTask(task: TaskActivation): TaskActorRef {
    const held = this.activated.get(task.taskId);
    if (held) return held.ref;
    const systemId = taskActorId(task.taskId);
    if (this.system.get(systemId)) {
      // A task actor its finished project could not release (see releaseTask): it is stale.
      throw new ValidationError(`task ${task.taskId}: an actor of it is still registered under a finished project`);
    }
    const parent: AnyActorRef = this.liveProject(task.projectId) ?? this.root;
    const ref = createActor(taskMachine, { parent, id: task.taskId, systemId, snapshot: task.snapshot, input: task.input });
    ref.subscribe({ error: (err) => this.options.logger.error({ err, taskId: task.taskId }, 'task actor error') });
    ref.start();
    const started = ref.getSnapshot() as { status: string; error?: unknown };
    if (started.status === 'error') {
      // Its parent recorded the error (supervision); the caller is told why.
      throw new ValidationError(`task ${task.taskId}: its actor could not start from its snapshot`, [String(started.error)]);
    }
    // A final task's actor is done at once (and out of the system): nothing to release.
    if (started.status === 'active') this.activated.set(task.taskId, { ref, parent, projectId: task.projectId });
    return ref;
  }

  /** The task's live actor, while activated. */
  activeTask(taskId: string): TaskActorRef | undefined {
    return this.activated.get(taskId)?.ref;
  }

  /**
   * Releases an activated task actor: its parent stops it. A project actor that reached a
   * final state takes no more events, so a task actor still under it ends with its task
   * (every task of a completed or cancelled project runs to a final state).
   */
  releaseTask(taskId: string): void {
    const entry = this.activated.get(taskId);
    if (!entry) return;
    this.activated.delete(taskId);
    if (entry.ref.getSnapshot().status !== 'active') return;
    if (entry.parent === this.root) this.root.send({ type: 'RELEASE_TASK', ref: entry.ref });
    else if (entry.parent.getSnapshot().status === 'active') entry.parent.send({ type: 'RELEASE_TASK', ref: entry.ref });
  }

  /** Called with a failed child's id and error, after the root has recorded it. Returns the unsubscribe. */
  onChildError(listener: (child: string, error: string) => void): () => void {
    this.childErrorListeners.add(listener);
    return () => this.childErrorListeners.delete(listener);
  }

  private schedulerLoop(): SchedulerLoop {
    if (!this.loop) throw new ValidationError('the scheduler actor runs without a loop');
    return this.loop;
  }
}
