import { assign, enqueueActions, setup, stopChild, type AnyActorRef, type Snapshot, type SnapshotFrom } from 'xstate';
import { projectMachine } from './project-machine.js';
import { restorable } from './restorable.js';
import { schedulerMachine } from './scheduler-machine.js';

/**
 * The root of the orchestrator's one actor system. Its children are the scheduler
 * (`systemId` `scheduler`) and one project actor per active or paused project
 * (`project:<id>`), spawned and stopped through its events; task actors, when activated,
 * are children of their project's actor (see actors/system.ts). A child's error is
 * recorded here, never allowed to take the root down: the errored child, dead already,
 * leaves the root's children, and its owner (actors/system.ts) is told, so that it can be
 * loaded again from its row. Pure; not persisted: a process builds a new root at start,
 * and each child restores its own state.
 */
export interface OrchestratorContext {
  /** How many children failed since the root started. */
  childErrors: number;
  /** The last child's error: its message, and the error itself (the root is not persisted), for the log. */
  lastChildError: { child: string; error: string; cause: unknown } | null;
}

export type OrchestratorEvent =
  | { type: 'SPAWN_SCHEDULER'; intervalMs: number }
  /** A project actor, from its persisted snapshot (or the project machine's initial state). */
  | { type: 'SPAWN_PROJECT'; projectId: string; snapshot?: Snapshot<unknown> }
  | { type: 'STOP_PROJECT'; projectId: string }
  /** Stops an activated task actor the root supervises (its project had no live actor). */
  | { type: 'RELEASE_TASK'; ref: AnyActorRef };

export const SCHEDULER_ID = 'scheduler';

/** The child id and `systemId` of a project's actor. */
export function projectActorId(projectId: string): string {
  return `project:${projectId}`;
}

/** The `systemId` of an activated task actor. */
export function taskActorId(taskId: string): string {
  return `task:${taskId}`;
}

export const orchestratorMachine = setup({
  types: {
    context: {} as OrchestratorContext,
    events: {} as OrchestratorEvent,
  },
  actors: {
    // The scheduler's passes are placeholders here, provided by actors/system.ts.
    scheduler: schedulerMachine,
    project: restorable(projectMachine),
  },
  actions: {
    spawnScheduler: enqueueActions(({ enqueue, event, system }) => {
      if (event.type !== 'SPAWN_SCHEDULER' || system.get(SCHEDULER_ID)) return;
      enqueue.spawnChild('scheduler', { id: SCHEDULER_ID, systemId: SCHEDULER_ID, input: { intervalMs: event.intervalMs } });
    }),
    spawnProject: enqueueActions(({ enqueue, event, system }) => {
      if (event.type !== 'SPAWN_PROJECT') return;
      const id = projectActorId(event.projectId);
      // One actor per project: a second spawn is a no-op (a duplicate systemId would throw).
      if (system.get(id)) return;
      enqueue.spawnChild('project', {
        id,
        systemId: id,
        input: event.snapshot ? { snapshot: event.snapshot } : { input: { projectId: event.projectId } },
      });
    }),
    stopProject: stopChild(({ event }) => (event.type === 'STOP_PROJECT' ? projectActorId(event.projectId) : '')),
    // Only its own child: stopping another actor would fail the root (and first unregister it).
    releaseTask: enqueueActions(({ enqueue, event, self }) => {
      if (event.type === 'RELEASE_TASK' && event.ref._parent === self) enqueue.stopChild(event.ref);
    }),
    /** A failed child is dead already: it leaves the root's children. */
    removeFailedChild: stopChild(({ event }) => (event as unknown as { actorId?: string }).actorId ?? ''),
    recordChildError: assign(({ context, event }) => {
      const failed = event as unknown as { actorId?: string; error?: unknown };
      return {
        childErrors: context.childErrors + 1,
        lastChildError: { child: failed.actorId ?? 'unknown', error: String(failed.error ?? 'unknown error'), cause: failed.error },
      };
    }),
  },
}).createMachine({
  id: 'orchestrator',
  context: { childErrors: 0, lastChildError: null },
  initial: 'running',
  states: {
    running: {
      on: {
        SPAWN_SCHEDULER: { actions: 'spawnScheduler' },
        SPAWN_PROJECT: { actions: 'spawnProject' },
        STOP_PROJECT: { actions: 'stopProject' },
        RELEASE_TASK: { actions: 'releaseTask' },
        // Supervision: a child's error is recorded; without this handler it would take
        // the root down (and, without an error observer, the process).
        'xstate.error.actor.*': { actions: ['recordChildError', 'removeFailedChild'] },
      },
    },
  },
});

export type OrchestratorMachine = typeof orchestratorMachine;
export type OrchestratorSnapshot = SnapshotFrom<OrchestratorMachine>;
