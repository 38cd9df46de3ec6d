import { randomUUID } from 'node:crypto';
import { z } from 'zod';
import { StorableJsonObject } from './storable.js';

/** The seven task states. Names match the original design's `tasks.status` values. */
export const TaskStatus = z.enum([
  'PENDING',
  'READY',
  'RUNNING',
  'COMPLETED',
  'FAILED',
  'CANCELLED',
  'WAITING_APPROVAL',
]);
export type TaskStatus = z.infer<typeof TaskStatus>;
export const TASK_STATUSES: readonly TaskStatus[] = TaskStatus.options;

/** Highest priority first; the queue orders on this range. */
export const MIN_PRIORITY = 0;
export const MAX_PRIORITY = 1000;

/** Column limits of the original `tasks` table (VARCHAR(50) ids, VARCHAR(100) agent). */
export const ID_MAX = 50;
export const AGENT_MAX = 100;

export const TaskId = z
  .string()
  .min(1)
  .max(ID_MAX)
  .regex(/^[A-Za-z0-9_:-]+$/, 'letters, digits and _ : - only (no dots: ids are NATS subject tokens)');
export const ProjectId = TaskId;
export const AgentName = z
  .string()
  .min(1)
  .max(AGENT_MAX)
  .regex(/^[A-Za-z0-9_-]+$/, 'letters, digits, _ and - only (used in NATS subjects)');
export const TaskTypeName = z
  .string()
  .min(1)
  .max(ID_MAX)
  .regex(/^[A-Z][A-Z0-9_]*$/, 'UPPER_SNAKE_CASE');
export const Priority = z.number().int().min(MIN_PRIORITY).max(MAX_PRIORITY);
/** Money in the project's currency unit; DECIMAL(10,4) in PostgreSQL. */
export const Money = z.number().finite().min(0).max(999_999.9999);
/** The largest budget limit: DECIMAL(12,4) in PostgreSQL (`projects.budget_limit`). */
export const BUDGET_LIMIT_MAX = 99_999_999.9999;
/** A project's budget limit (the PROJECT_CREATED payload's `budget`). */
export const BudgetLimit = z.number().finite().min(0).max(BUDGET_LIMIT_MAX);
/** A JSON object PostgreSQL can store as JSONB (storable.ts: no NUL, no unpaired surrogate, at most 64 levels). */
export const JsonObject = StorableJsonObject;

/**
 * A task, mirroring the original `tasks` table, plus what retries need.
 * Timestamps are `Date`s; money is a number with at most four decimals.
 */
export const Task = z.object({
  taskId: TaskId,
  projectId: ProjectId,
  taskType: TaskTypeName,
  assignedTo: AgentName,
  status: TaskStatus,
  priority: Priority,
  input: JsonObject,
  output: JsonObject.nullable(),
  dependencies: z.array(TaskId),
  estimatedCost: Money.nullable(),
  actualCost: Money.nullable(),
  createdAt: z.date(),
  startedAt: z.date().nullable(),
  completedAt: z.date().nullable(),
  attempts: z.number().int().min(0),
  maxAttempts: z.number().int().min(1).max(100),
  lastError: z.string().nullable(),
});
export type Task = z.infer<typeof Task>;

/** What a caller supplies to create a task; the rest is defaulted from the task-type catalogue. */
export const NewTaskInput = z.object({
  taskId: TaskId.optional(),
  projectId: ProjectId,
  taskType: TaskTypeName,
  assignedTo: AgentName.optional(),
  priority: Priority.optional(),
  input: JsonObject.default({}),
  dependencies: z.array(TaskId).default([]),
  estimatedCost: Money.optional(),
  maxAttempts: z.number().int().min(1).max(100).optional(),
  timeoutMs: z.number().int().positive().optional(),
});
export type NewTaskInput = z.input<typeof NewTaskInput>;

export function newTaskId(): string {
  return `tsk_${randomUUID().replaceAll('-', '')}`;
}

/** COMPLETED and CANCELLED are final; FAILED is final once its attempts are used up. */
export function isFinalStatus(status: TaskStatus, attempts: number, maxAttempts: number): boolean {
  return (
    status === 'COMPLETED' || status === 'CANCELLED' || (status === 'FAILED' && attempts >= maxAttempts)
  );
}
