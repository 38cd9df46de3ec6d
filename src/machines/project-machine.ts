import { assign, setup, type SnapshotFrom } from 'xstate';
import type { ProjectState } from '../ports/project-store.js';

/**
 * The project machine: active ⇄ paused, then completed or cancelled. Pure; the project
 * actor persists each accepted transition (a compare-and-set on the state column) before
 * acknowledging it. Budget figures are not in the machine: they change only in SQL.
 */
export interface ProjectContext {
  projectId: string;
  reason: string | null;
}

export type ProjectEvent =
  | { type: 'PAUSE'; reason: string }
  | { type: 'RESUME' }
  | { type: 'COMPLETE' }
  | { type: 'CANCEL'; reason: string };

export const PROJECT_EVENT_TYPES: readonly ProjectEvent['type'][] = ['PAUSE', 'RESUME', 'COMPLETE', 'CANCEL'];
export const PROJECT_MACHINE_VERSION = '1';

export const projectMachine = setup({
  types: {
    context: {} as ProjectContext,
    events: {} as ProjectEvent,
    input: {} as { projectId: string },
  },
  actions: {
    keepReason: assign({
      reason: ({ event }) => (event.type === 'PAUSE' || event.type === 'CANCEL' ? event.reason : null),
    }),
  },
}).createMachine({
  id: 'project',
  version: PROJECT_MACHINE_VERSION,
  context: ({ input }) => ({ projectId: input.projectId, reason: null }),
  initial: 'active',
  states: {
    active: {
      on: {
        PAUSE: { target: 'paused', actions: 'keepReason' },
        COMPLETE: { target: 'completed', actions: 'keepReason' },
        CANCEL: { target: 'cancelled', actions: 'keepReason' },
      },
    },
    paused: {
      on: {
        // Pausing again only updates the reason (for example budget_exhausted after a manual pause).
        PAUSE: { target: 'paused', actions: 'keepReason' },
        RESUME: { target: 'active', actions: 'keepReason' },
        CANCEL: { target: 'cancelled', actions: 'keepReason' },
      },
    },
    completed: { type: 'final' },
    cancelled: { type: 'final' },
  },
});

export type ProjectMachine = typeof projectMachine;
export type ProjectSnapshot = SnapshotFrom<ProjectMachine>;

export function projectStateOf(snapshot: ProjectSnapshot): ProjectState {
  return snapshot.value as ProjectState;
}
