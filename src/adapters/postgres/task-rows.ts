import type { TaskStatus } from '../../domain/task.js';
import type { TransitionWrite } from '../../ports/commit.js';
import type { NewTaskRecord, OutboxEvent, TaskRecord, TransitionRecord } from '../../ports/task-store.js';

/**
 * Row shapes of `tasks` and `task_transitions` and their mapping to the port's records.
 * The SqlClient already turns TIMESTAMP into Date and BIGINT / DECIMAL into number, so
 * mapping is renaming plus defaults for nullable JSON.
 */

export const TASK_COLUMNS = `task_id, project_id, task_type, assigned_to, status, priority, input, output,
  dependencies, estimated_cost, actual_cost, created_at, started_at, completed_at, attempts, max_attempts,
  last_error, deadline, not_before, fencing_token, timeout_ms, snapshot, machine_version, version, updated_at, trace_parent`;

export interface TaskRow {
  task_id: string;
  project_id: string;
  task_type: string;
  assigned_to: string;
  status: TaskStatus;
  priority: number;
  input: Record<string, unknown>;
  output: Record<string, unknown> | null;
  dependencies: string[] | null;
  estimated_cost: number | null;
  actual_cost: number | null;
  created_at: Date;
  started_at: Date | null;
  completed_at: Date | null;
  attempts: number;
  max_attempts: number;
  last_error: string | null;
  deadline: Date | null;
  not_before: Date | null;
  fencing_token: number | null;
  timeout_ms: number;
  snapshot: unknown;
  machine_version: string;
  version: number;
  updated_at: Date;
  /** Migration 008; absent from rows read by statements that do not select it. */
  trace_parent?: string | null;
}

export function taskFromRow(row: TaskRow): TaskRecord {
  const record: TaskRecord = {
    taskId: row.task_id,
    projectId: row.project_id,
    taskType: row.task_type,
    assignedTo: row.assigned_to,
    status: row.status,
    priority: row.priority,
    input: row.input,
    output: row.output,
    dependencies: row.dependencies ?? [],
    estimatedCost: row.estimated_cost,
    actualCost: row.actual_cost,
    createdAt: row.created_at,
    startedAt: row.started_at,
    completedAt: row.completed_at,
    attempts: row.attempts,
    maxAttempts: row.max_attempts,
    lastError: row.last_error,
    deadline: row.deadline,
    notBefore: row.not_before,
    fencingToken: row.fencing_token,
    timeoutMs: row.timeout_ms,
    snapshot: row.snapshot,
    machineVersion: row.machine_version,
    version: row.version,
    updatedAt: row.updated_at,
  };
  // Only when set: an untraced task's record has no such key (as before the column).
  if (row.trace_parent) record.traceParent = row.trace_parent;
  return record;
}

/**
 * The JSON element `jsonb_to_recordset` reads for one new task (see CREATE_TASKS).
 * Dates go as ISO strings, which a TIMESTAMP column takes as UTC.
 */
export function newTaskToJson(t: NewTaskRecord): Record<string, unknown> {
  const json: Record<string, unknown> = {
    task_id: t.taskId,
    project_id: t.projectId,
    task_type: t.taskType,
    assigned_to: t.assignedTo,
    status: t.status,
    priority: t.priority,
    input: t.input,
    output: t.output,
    dependencies: t.dependencies,
    estimated_cost: t.estimatedCost,
    actual_cost: t.actualCost,
    created_at: t.createdAt.toISOString(),
    started_at: t.startedAt?.toISOString() ?? null,
    completed_at: t.completedAt?.toISOString() ?? null,
    attempts: t.attempts,
    max_attempts: t.maxAttempts,
    last_error: t.lastError,
    deadline: t.deadline?.toISOString() ?? null,
    not_before: t.notBefore?.toISOString() ?? null,
    fencing_token: t.fencingToken,
    timeout_ms: t.timeoutMs,
    machine_version: t.machineVersion,
    created_steps: t.createdSteps?.length ? t.createdSteps : null,
  };
  // A stored snapshot only (none: the columns are the state, see storedSnapshot), wrapped:
  // jsonb_to_recordset cannot tell a JSON null from a missing key.
  if (t.snapshot !== null && t.snapshot !== undefined) json.snapshot = { v: t.snapshot };
  // Only when traced (a missing key reads as null): an untraced task's JSON is as before.
  if (t.traceParent) json.trace_parent = t.traceParent;
  return json;
}

/**
 * The JSON element APPLY_TRANSITIONS reads for one write of a batch, `idx` its index in
 * the call. The patch keeps its camelCase keys (its Dates become ISO strings); the
 * snapshot is wrapped like newTaskToJson's; the budget effect is flattened. A key whose
 * value would be null is left out (jsonb_to_recordset reads a missing key as NULL): most
 * writes carry no token check, detail, budget effect, raised event or stored snapshot,
 * and the statement parses every byte of the array.
 */
export function transitionToJson(w: TransitionWrite, idx: number): Record<string, unknown> {
  const json: Record<string, unknown> = {
    idx,
    task_id: w.taskId,
    expected_version: w.expectedVersion,
    from_status: w.from,
    to_status: w.to,
    event: w.event,
    patch: w.patch,
    machine_version: w.machineVersion,
    by_instance: w.by,
    at: w.at.toISOString(),
  };
  if (w.fencingToken !== undefined) json.fencing_token = w.fencingToken;
  if (w.detail) json.detail = w.detail;
  if (w.snapshot !== null && w.snapshot !== undefined) json.snapshot = { v: w.snapshot };
  const b = w.budget;
  if (b) {
    json.budget_project = b.projectId;
    if (b.reserve !== undefined) json.reserve = b.reserve;
    if (b.release !== undefined) json.release = b.release;
    if (b.spend !== undefined) json.spend = b.spend;
    json.enforce = b.enforce;
  }
  if (w.raise?.length) json.raise = w.raise.map(outboxToJson);
  return json;
}

export interface TransitionRow {
  id: number;
  task_id: string;
  project_id: string;
  from_status: TaskStatus | null;
  to_status: TaskStatus;
  event: string;
  detail: Record<string, unknown> | null;
  at: Date;
  by_instance: string;
}

export function transitionFromRow(row: TransitionRow): TransitionRecord {
  return {
    id: row.id,
    taskId: row.task_id,
    projectId: row.project_id,
    fromStatus: row.from_status,
    toStatus: row.to_status,
    event: row.event,
    detail: row.detail,
    at: row.at,
    by: row.by_instance,
  };
}

export interface OutboxRow {
  event_id: string;
  event_type: string;
  project_id: string;
  task_id: string;
  payload: Record<string, unknown>;
  at: Date;
}

/** The JSON element the transition statement reads for one raised event. */
export function outboxToJson(e: OutboxEvent): Record<string, unknown> {
  return {
    event_id: e.eventId,
    event_type: e.eventType,
    project_id: e.projectId,
    task_id: e.taskId,
    payload: e.payload,
    at: e.at.toISOString(),
  };
}

export function outboxFromRow(row: OutboxRow): OutboxEvent {
  return {
    eventId: row.event_id,
    eventType: row.event_type,
    projectId: row.project_id,
    payload: row.payload,
    taskId: row.task_id,
    at: row.at,
  };
}
