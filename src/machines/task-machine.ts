import { assign, setup, type SnapshotFrom } from 'xstate';
import type { TaskStatus } from '../domain/task.js';

/**
 * The seven-state task machine. Pure: no I/O, no clock reads. Every time comes in the
 * event (`at`, `deadline`, `notBefore`), so the same snapshot and event always give the
 * same next snapshot, and persistence happens outside (see actors/task-actor.ts).
 *
 * Deadlines are data in the context (and the database), never `after:` timers, which
 * are lost when a persisted actor is restored; the scheduler sweeps them.
 */
export interface TaskContext {
  taskId: string;
  projectId: string;
  taskType: string;
  attempts: number;
  maxAttempts: number;
  fencingToken: number | null;
  /** Epoch ms; deadline of the running attempt. */
  deadline: number | null;
  /** Epoch ms; a retried task does not become READY before this. */
  notBefore: number | null;
  startedAt: number | null;
  completedAt: number | null;
  actualCost: number | null;
  lastError: string | null;
  /** Why the task was cancelled or rejected. */
  reason: string | null;
}

export interface TaskMachineInput {
  taskId: string;
  projectId: string;
  taskType: string;
  maxAttempts: number;
}

export type TaskEvent =
  | { type: 'DEPENDENCIES_MET'; at: number }
  | { type: 'REQUIRE_APPROVAL'; at: number }
  | { type: 'APPROVE'; at: number; dependenciesMet: boolean }
  | { type: 'REJECT'; at: number; reason: string }
  | { type: 'DISPATCH'; at: number; fencingToken: number; deadline: number }
  | { type: 'HEARTBEAT'; at: number; deadline: number }
  | { type: 'COMPLETE'; at: number; actualCost: number | null }
  | { type: 'FAIL'; at: number; error: string }
  | { type: 'TIME_OUT'; at: number }
  | { type: 'RETRY'; at: number; notBefore: number }
  | { type: 'CANCEL'; at: number; reason: string };

export type TaskEventType = TaskEvent['type'];

export const TASK_EVENT_TYPES: readonly TaskEventType[] = [
  'DEPENDENCIES_MET',
  'REQUIRE_APPROVAL',
  'APPROVE',
  'REJECT',
  'DISPATCH',
  'HEARTBEAT',
  'COMPLETE',
  'FAIL',
  'TIME_OUT',
  'RETRY',
  'CANCEL',
];

/** Bump when the context shape or the state graph changes incompatibly. */
export const TASK_MACHINE_VERSION = '1';

const cancel = {
  target: 'CANCELLED',
  actions: 'recordCancel',
} as const;

export const taskMachine = setup({
  types: {
    context: {} as TaskContext,
    events: {} as TaskEvent,
    input: {} as TaskMachineInput,
  },
  guards: {
    dependenciesMet: ({ event }) => event.type === 'APPROVE' && event.dependenciesMet,
    attemptsRemain: ({ context }) => context.attempts < context.maxAttempts,
  },
  actions: {
    recordCancel: assign({
      reason: ({ event }) => (event.type === 'CANCEL' || event.type === 'REJECT' ? event.reason : null),
      deadline: null,
      completedAt: ({ event }) => event.at,
    }),
    recordDispatch: assign(({ context, event }) =>
      event.type === 'DISPATCH'
        ? {
            attempts: context.attempts + 1,
            fencingToken: event.fencingToken,
            deadline: event.deadline,
            startedAt: event.at,
            notBefore: null,
            lastError: null,
          }
        : {},
    ),
    extendDeadline: assign({
      deadline: ({ context, event }) => (event.type === 'HEARTBEAT' ? event.deadline : context.deadline),
    }),
    recordCompletion: assign({
      completedAt: ({ event }) => event.at,
      actualCost: ({ event }) => (event.type === 'COMPLETE' ? event.actualCost : null),
      deadline: null,
    }),
    recordFailure: assign({
      lastError: ({ event }) => (event.type === 'FAIL' ? event.error : 'timed out'),
      deadline: null,
    }),
    recordRetry: assign({
      notBefore: ({ event }) => (event.type === 'RETRY' ? event.notBefore : null),
    }),
  },
}).createMachine({
  id: 'task',
  version: TASK_MACHINE_VERSION,
  context: ({ input }) => ({
    taskId: input.taskId,
    projectId: input.projectId,
    taskType: input.taskType,
    attempts: 0,
    maxAttempts: input.maxAttempts,
    fencingToken: null,
    deadline: null,
    notBefore: null,
    startedAt: null,
    completedAt: null,
    actualCost: null,
    lastError: null,
    reason: null,
  }),
  initial: 'PENDING',
  states: {
    PENDING: {
      on: {
        DEPENDENCIES_MET: 'READY',
        REQUIRE_APPROVAL: 'WAITING_APPROVAL',
        CANCEL: cancel,
      },
    },
    WAITING_APPROVAL: {
      on: {
        APPROVE: [{ guard: 'dependenciesMet', target: 'READY' }, { target: 'PENDING' }],
        REJECT: cancel,
        CANCEL: cancel,
      },
    },
    READY: {
      on: {
        DISPATCH: { target: 'RUNNING', actions: 'recordDispatch' },
        CANCEL: cancel,
      },
    },
    RUNNING: {
      on: {
        HEARTBEAT: { actions: 'extendDeadline' },
        COMPLETE: { target: 'COMPLETED', actions: 'recordCompletion' },
        FAIL: { target: 'FAILED', actions: 'recordFailure' },
        TIME_OUT: { target: 'FAILED', actions: 'recordFailure' },
        CANCEL: cancel,
      },
    },
    FAILED: {
      on: {
        RETRY: { guard: 'attemptsRemain', target: 'PENDING', actions: 'recordRetry' },
        CANCEL: { guard: 'attemptsRemain', ...cancel },
      },
    },
    COMPLETED: { type: 'final' },
    CANCELLED: { type: 'final' },
  },
});

export type TaskMachine = typeof taskMachine;
export type TaskSnapshot = SnapshotFrom<TaskMachine>;

export function statusOf(snapshot: TaskSnapshot): TaskStatus {
  return snapshot.value as TaskStatus;
}

/** COMPLETED and CANCELLED, and FAILED with no attempts left, accept no further event. */
export function isTerminal(snapshot: TaskSnapshot): boolean {
  const status = statusOf(snapshot);
  return (
    status === 'COMPLETED' ||
    status === 'CANCELLED' ||
    (status === 'FAILED' && snapshot.context.attempts >= snapshot.context.maxAttempts)
  );
}
