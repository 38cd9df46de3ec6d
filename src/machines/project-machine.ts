import { assign, setup, stopChild, type AnyActorRef, type SnapshotFrom } from 'xstate';
import type { ApprovalStatus, ProjectState } from '../domain/project.js';

/**
 * The project machine: active ⇄ paused, then completed or cancelled. Pure; the project
 * actor persists each accepted transition (a compare-and-set on the state column) before
 * acknowledging it. Budget figures are not in the machine: they change only in SQL.
 */
export interface ProjectContext {
  projectId: string;
  reason: string | null;
  /** The last error a supervised task actor reported (it does not take the project down). */
  lastChildError: string | null;
  /** The budget as last written (the arithmetic itself is done in SQL). */
  budget: { limit: number | null; spent: number; reserved: number };
  /** The latest approval request of each checkpoint: its id and status. */
  approvals: Record<string, { approvalId: string; status: ApprovalStatus }>;
}

export type ProjectEvent =
  | { type: 'PAUSE'; reason: string }
  | { type: 'RESUME' }
  | { type: 'COMPLETE' }
  | { type: 'CANCEL'; reason: string };

export const PROJECT_EVENT_TYPES: readonly ProjectEvent['type'][] = ['PAUSE', 'RESUME', 'COMPLETE', 'CANCEL'];

/**
 * Supervision events, sent by the project actor's wrapper only (never persisted):
 * SYNC adopts a state another orchestrator process wrote; RELEASE_TASK stops a task
 * actor the project supervises (an evicted, non-final task).
 */
export type ProjectInternalEvent =
  | { type: 'SYNC'; state: ProjectState; reason: string | null }
  | { type: 'RELEASE_TASK'; ref: AnyActorRef }
  | { type: 'BUDGET'; limit: number | null; spent: number; reserved: number }
  | { type: 'APPROVAL'; approvalId: string; checkpoint: string; status: ApprovalStatus };

const sync = (state: ProjectState) => ({
  guard: { type: 'syncTo' as const, params: { state } },
  target: state,
  actions: 'adoptReason' as const,
});
export const PROJECT_MACHINE_VERSION = '1';

export const projectMachine = setup({
  types: {
    context: {} as ProjectContext,
    events: {} as ProjectEvent | ProjectInternalEvent,
    input: {} as { projectId: string },
  },
  guards: {
    syncTo: ({ event }, params: { state: ProjectState }) => event.type === 'SYNC' && event.state === params.state,
  },
  actions: {
    keepReason: assign({
      reason: ({ event }) => (event.type === 'PAUSE' || event.type === 'CANCEL' ? event.reason : null),
    }),
    adoptReason: assign({ reason: ({ event }) => (event.type === 'SYNC' ? event.reason : null) }),
    releaseTask: stopChild(({ event }) => (event.type === 'RELEASE_TASK' ? event.ref : '')),
    recordBudget: assign({
      budget: ({ context, event }) =>
        event.type === 'BUDGET' ? { limit: event.limit, spent: event.spent, reserved: event.reserved } : context.budget,
    }),
    recordApproval: assign({
      approvals: ({ context, event }) =>
        event.type === 'APPROVAL'
          ? { ...context.approvals, [event.checkpoint]: { approvalId: event.approvalId, status: event.status } }
          : context.approvals,
    }),
    recordChildError: assign({
      lastChildError: ({ event }) => String((event as unknown as { error?: unknown }).error ?? 'unknown error'),
    }),
  },
}).createMachine({
  id: 'project',
  version: PROJECT_MACHINE_VERSION,
  context: ({ input }) => ({
    projectId: input.projectId,
    reason: null,
    lastChildError: null,
    budget: { limit: null, spent: 0, reserved: 0 },
    approvals: {},
  }),
  initial: 'active',
  on: {
    RELEASE_TASK: { actions: 'releaseTask' },
    BUDGET: { actions: 'recordBudget' },
    APPROVAL: { actions: 'recordApproval' },
    // A task actor's error is recorded, never allowed to take the project actor down.
    'xstate.error.actor.*': { actions: 'recordChildError' },
  },
  states: {
    active: {
      on: {
        SYNC: [sync('paused'), sync('completed'), sync('cancelled')],
        PAUSE: { target: 'paused', actions: 'keepReason' },
        COMPLETE: { target: 'completed', actions: 'keepReason' },
        CANCEL: { target: 'cancelled', actions: 'keepReason' },
      },
    },
    paused: {
      on: {
        // Pausing again only updates the reason (for example budget_exhausted after a manual pause).
        SYNC: [sync('active'), sync('paused'), sync('completed'), sync('cancelled')],
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
