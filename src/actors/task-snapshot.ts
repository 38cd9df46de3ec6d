import type { Snapshot } from 'xstate';
import type { TaskSteps } from '../machines/task-steps.js';
import type { TaskStatus } from '../domain/task.js';
import type { TaskPatch, TaskRecord } from '../ports/task-store.js';
import {
  TASK_MACHINE_VERSION,
  taskMachine,
  type TaskContext,
  type TaskEvent,
  type TaskMachineInput,
  type TaskSnapshot,
} from '../machines/task-machine.js';

/** Helpers between the pure task machine and the stored task row. */

export function toDate(ms: number | null): Date | null {
  return ms === null ? null : new Date(ms);
}

function toMs(date: Date | null): number | null {
  return date === null ? null : date.getTime();
}

/**
 * The first snapshot of a new task: PENDING, or WAITING_APPROVAL (a checkpoint's
 * follow-up tasks) reached by the machine's own REQUIRE_APPROVAL transition.
 */
export function initialTaskSnapshot(
  steps: TaskSteps,
  input: TaskMachineInput,
  options: { awaitingApproval: boolean; at: number },
): TaskSnapshot {
  const initial = steps.initial(input);
  if (!options.awaitingApproval) return initial;
  return steps.step(initial, { type: 'REQUIRE_APPROVAL', at: options.at });
}

/**
 * The persisted form of a task snapshot, exactly what `taskMachine.getPersistedSnapshot`
 * returns (a unit test compares them in every state), built directly: the task machine has
 * no children, no history states and a context of plain values, and xstate's general
 * version (which copies the snapshot minus its methods through an object rest) was the
 * orchestrator's most expensive function per transition. Anything else goes to xstate.
 */
export function persistSnapshot(snapshot: TaskSnapshot): Snapshot<unknown> {
  for (const _ in snapshot.children) return taskMachine.getPersistedSnapshot(snapshot);
  for (const _ in snapshot.historyValue) return taskMachine.getPersistedSnapshot(snapshot);
  return {
    status: snapshot.status,
    output: snapshot.output,
    error: snapshot.error,
    value: snapshot.value,
    historyValue: {},
    context: snapshot.context,
    children: {},
  } as Snapshot<unknown>;
}

/**
 * What a task row stores in its `snapshot` column: null when the row's status columns
 * rebuild the snapshot exactly (`snapshotForRecord`), which is every state the task
 * machine reaches with a plain context — so a transition writes no snapshot JSON, only
 * its columns (a third less WAL and PostgreSQL time per transition, measured). The full
 * persisted snapshot otherwise: a context value no column holds (the reason of a
 * cancellation or a rejection), a cost the DECIMAL(10,4) column would round, or anything
 * but a plain active/done snapshot. test/unit/task-steps.test.ts checks the rebuild in
 * every state.
 */
export function storedSnapshot(snapshot: TaskSnapshot): Snapshot<unknown> | null {
  const c = snapshot.context;
  const plain =
    (snapshot.status === 'active' || snapshot.status === 'done') &&
    typeof snapshot.value === 'string' &&
    snapshot.output === undefined &&
    snapshot.error === undefined &&
    c.reason === null &&
    (c.actualCost === null || Math.round(c.actualCost * 10_000) / 10_000 === c.actualCost);
  if (plain) {
    for (const _ in snapshot.children) return persistSnapshot(snapshot);
    for (const _ in snapshot.historyValue) return persistSnapshot(snapshot);
    return null;
  }
  return persistSnapshot(snapshot);
}

/** The row columns a snapshot determines; `output` is added for COMPLETE. */
export function patchFromSnapshot(snapshot: TaskSnapshot): TaskPatch {
  const c = snapshot.context;
  return {
    status: snapshot.value as TaskStatus,
    attempts: c.attempts,
    deadline: toDate(c.deadline),
    notBefore: toDate(c.notBefore),
    fencingToken: c.fencingToken,
    lastError: c.lastError,
    startedAt: toDate(c.startedAt),
    completedAt: toDate(c.completedAt),
    actualCost: c.actualCost,
  };
}

/** The machine context implied by a row's columns (used when a snapshot cannot be used). */
export function contextFromRecord(record: TaskRecord): TaskContext {
  return {
    taskId: record.taskId,
    projectId: record.projectId,
    taskType: record.taskType,
    attempts: record.attempts,
    maxAttempts: record.maxAttempts,
    fencingToken: record.fencingToken,
    deadline: toMs(record.deadline),
    notBefore: toMs(record.notBefore),
    startedAt: toMs(record.startedAt),
    completedAt: toMs(record.completedAt),
    actualCost: record.actualCost,
    lastError: record.lastError,
    reason: null,
  };
}

/** Where a restored snapshot came from: the stored one, the columns (none stored), or the columns in place of a stored one it could not use. */
export type SnapshotSource = 'snapshot' | 'columns' | 'stale';

/**
 * The snapshot to restore a task actor from. No stored snapshot (null, see
 * storedSnapshot): the row's status columns are the state, rebuilt from them. A snapshot
 * written by this machine version is used as it is; one written by another version (or
 * unreadable) is not trusted: the state is rebuilt from the status columns, which every
 * version writes the same way, and the caller is told (`stale`) so it can log it. The
 * next transition writes the current version.
 */
export function snapshotForRecord(record: TaskRecord): { persisted: Snapshot<unknown>; source: SnapshotSource } {
  if (record.snapshot !== null && record.snapshot !== undefined) {
    if (record.machineVersion === TASK_MACHINE_VERSION && isPersistedTaskSnapshot(record.snapshot, record.status)) {
      return { persisted: record.snapshot as unknown as Snapshot<unknown>, source: 'snapshot' };
    }
  }
  const snapshot = taskMachine.resolveState({ value: record.status, context: contextFromRecord(record) });
  const stale = record.snapshot !== null && record.snapshot !== undefined;
  return { persisted: taskMachine.getPersistedSnapshot(snapshot), source: stale ? 'stale' : 'columns' };
}

function isPersistedTaskSnapshot(value: unknown, status: TaskStatus): boolean {
  if (typeof value !== 'object' || value === null) return false;
  const v = value as { value?: unknown; status?: unknown; context?: Partial<Record<keyof TaskContext, unknown>> };
  const c = v.context;
  return (
    v.value === status &&
    (v.status === 'active' || v.status === 'done') &&
    typeof c === 'object' &&
    c !== null &&
    typeof c.taskId === 'string' &&
    typeof c.attempts === 'number' &&
    typeof c.maxAttempts === 'number'
  );
}

/** Details of an event worth keeping in the audit log. */
export function auditDetail(event: TaskEvent): Record<string, unknown> | null {
  const { type: _type, at: _at, ...rest } = event;
  return Object.keys(rest).length ? rest : null;
}
