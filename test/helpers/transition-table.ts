import { initialTransition, transition } from 'xstate';
import type { TaskStatus } from '../../src/domain/task.js';
import { taskMachine, type TaskContext, type TaskEvent, type TaskSnapshot } from '../../src/machines/task-machine.js';

/**
 * The allowed-transition table of the task machine, written out by hand (the README
 * table says the same). Tests enumerate every (state, event) pair against it.
 */

export const T0 = 1_700_000_000_000;

/** The starting situations: the seven states, FAILED split by whether attempts remain. */
export type Situation =
  | 'PENDING'
  | 'WAITING_APPROVAL'
  | 'READY'
  | 'RUNNING'
  | 'COMPLETED'
  | 'FAILED'
  | 'FAILED_EXHAUSTED'
  | 'CANCELLED';

export const SITUATIONS: readonly Situation[] = [
  'PENDING',
  'WAITING_APPROVAL',
  'READY',
  'RUNNING',
  'COMPLETED',
  'FAILED',
  'FAILED_EXHAUSTED',
  'CANCELLED',
];

/** One sample of every event type (APPROVE in both variants). */
export const EVENTS: Record<string, TaskEvent> = {
  DEPENDENCIES_MET: { type: 'DEPENDENCIES_MET', at: T0 + 100 },
  REQUIRE_APPROVAL: { type: 'REQUIRE_APPROVAL', at: T0 + 100 },
  'APPROVE(deps met)': { type: 'APPROVE', at: T0 + 100, dependenciesMet: true },
  'APPROVE(deps pending)': { type: 'APPROVE', at: T0 + 100, dependenciesMet: false },
  REJECT: { type: 'REJECT', at: T0 + 100, reason: 'off-brief' },
  DISPATCH: { type: 'DISPATCH', at: T0 + 100, fencingToken: 9, deadline: T0 + 60_100 },
  HEARTBEAT: { type: 'HEARTBEAT', at: T0 + 100, deadline: T0 + 90_000 },
  COMPLETE: { type: 'COMPLETE', at: T0 + 100, actualCost: 0.25 },
  FAIL: { type: 'FAIL', at: T0 + 100, error: 'model overloaded' },
  TIME_OUT: { type: 'TIME_OUT', at: T0 + 100 },
  RETRY: { type: 'RETRY', at: T0 + 100, notBefore: T0 + 2_100 },
  CANCEL: { type: 'CANCEL', at: T0 + 100, reason: 'project cancelled' },
};

export interface Expected {
  to: TaskStatus;
  context: Partial<TaskContext>;
}

const cancelled = (reason: string): Expected => ({
  to: 'CANCELLED',
  context: { reason, completedAt: T0 + 100, deadline: null },
});

/** situation → event key → the expected outcome; a missing entry means refused. */
export const ALLOWED: Record<Situation, Record<string, Expected>> = {
  PENDING: {
    DEPENDENCIES_MET: { to: 'READY', context: {} },
    REQUIRE_APPROVAL: { to: 'WAITING_APPROVAL', context: {} },
    CANCEL: cancelled('project cancelled'),
  },
  WAITING_APPROVAL: {
    'APPROVE(deps met)': { to: 'READY', context: {} },
    'APPROVE(deps pending)': { to: 'PENDING', context: {} },
    REJECT: cancelled('off-brief'),
    CANCEL: cancelled('project cancelled'),
  },
  READY: {
    DISPATCH: {
      to: 'RUNNING',
      context: { attempts: 1, fencingToken: 9, deadline: T0 + 60_100, startedAt: T0 + 100, notBefore: null },
    },
    CANCEL: cancelled('project cancelled'),
  },
  RUNNING: {
    HEARTBEAT: { to: 'RUNNING', context: { deadline: T0 + 90_000, fencingToken: 1 } },
    COMPLETE: { to: 'COMPLETED', context: { completedAt: T0 + 100, actualCost: 0.25, deadline: null } },
    FAIL: { to: 'FAILED', context: { lastError: 'model overloaded', deadline: null } },
    TIME_OUT: { to: 'FAILED', context: { lastError: 'timed out', deadline: null } },
    CANCEL: cancelled('project cancelled'),
  },
  COMPLETED: {},
  FAILED: {
    RETRY: { to: 'PENDING', context: { notBefore: T0 + 2_100, attempts: 1 } },
    CANCEL: cancelled('project cancelled'),
  },
  FAILED_EXHAUSTED: {},
  CANCELLED: {},
};

const input = (maxAttempts: number) => ({ taskId: 'tsk_1', projectId: 'prj_1', taskType: 'GENERATE_KEYFRAME', maxAttempts });

/** The events that lead from a new task to each situation, in order. */
export function pathTo(situation: Situation): { maxAttempts: number; events: TaskEvent[] } {
  const ready: TaskEvent = { type: 'DEPENDENCIES_MET', at: T0 };
  const dispatch: TaskEvent = { type: 'DISPATCH', at: T0, fencingToken: 1, deadline: T0 + 60_000 };
  const fail: TaskEvent = { type: 'FAIL', at: T0, error: 'boom' };
  switch (situation) {
    case 'PENDING':
      return { maxAttempts: 3, events: [] };
    case 'WAITING_APPROVAL':
      return { maxAttempts: 3, events: [{ type: 'REQUIRE_APPROVAL', at: T0 }] };
    case 'READY':
      return { maxAttempts: 3, events: [ready] };
    case 'RUNNING':
      return { maxAttempts: 3, events: [ready, dispatch] };
    case 'COMPLETED':
      return { maxAttempts: 3, events: [ready, dispatch, { type: 'COMPLETE', at: T0, actualCost: 0.1 }] };
    case 'FAILED':
      return { maxAttempts: 3, events: [ready, dispatch, fail] };
    case 'FAILED_EXHAUSTED':
      return { maxAttempts: 1, events: [ready, dispatch, fail] };
    case 'CANCELLED':
      return { maxAttempts: 3, events: [{ type: 'CANCEL', at: T0, reason: 'x' }] };
  }
}

export function snapshotIn(situation: Situation): TaskSnapshot {
  const { maxAttempts, events } = pathTo(situation);
  let [snapshot] = initialTransition(taskMachine, input(maxAttempts));
  for (const event of events) [snapshot] = transition(taskMachine, snapshot, event);
  return snapshot;
}

export function statusOfSituation(situation: Situation): TaskStatus {
  return situation === 'FAILED_EXHAUSTED' ? 'FAILED' : situation;
}
