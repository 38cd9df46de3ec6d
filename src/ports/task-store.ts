import type { Task, TaskStatus } from '../domain/task.js';

/**
 * A task as stored: the original `tasks` columns plus what durability needs.
 * `snapshot` is the persisted XState snapshot of the task machine (JSON), written
 * together with the status columns in the same transaction — or null when those columns
 * rebuild it exactly (the common case: see storedSnapshot in actors/task-snapshot.ts).
 */
export interface TaskRecord extends Task {
  /** Absolute deadline of the current attempt while RUNNING; null otherwise. */
  deadline: Date | null;
  /** Earliest time a retried task may become READY again (backoff); null when none. */
  notBefore: Date | null;
  /** Fencing token of the lease under which the task went RUNNING; null before its first dispatch. */
  fencingToken: number | null;
  /** Per-attempt timeout in milliseconds. */
  timeoutMs: number;
  snapshot: unknown;
  machineVersion: string;
  /** Row version for optimistic concurrency; 1 on creation, +1 per transition. */
  version: number;
  updatedAt: Date;
  /**
   * The W3C traceparent of the ingest that created the task, when it was traced: every
   * dispatch of the task, by whichever process and however late, is a child of it (one
   * trace per event and its tasks). Absent when the task was created untraced.
   */
  traceParent?: string | null;
}

/** A task to insert: everything but the bookkeeping the store fills in. */
export type NewTaskRecord = Omit<TaskRecord, 'version' | 'updatedAt'> & {
  /**
   * Created PENDING and moved on by its machine in the same write: DEPENDENCIES_MET (a
   * task without dependencies, created READY), then possibly DISPATCH (dispatched at
   * once, created RUNNING). The columns and `snapshot` are the last step's; the audit log
   * gets the creation (null → PENDING) and every step; the row starts at version
   * 1 + the number of steps.
   */
  createdSteps?: readonly CreationStep[];
};

/** A task's place in the dependency graph and whether it is done (see TaskStore.getLinks). */
export type TaskLinks = Pick<TaskRecord, 'taskId' | 'status' | 'attempts' | 'maxAttempts' | 'dependencies'>;

/** A transition a new task took before its row was first written (see NewTaskRecord). */
export interface CreationStep {
  from: TaskStatus;
  to: TaskStatus;
  event: string;
  detail: Record<string, unknown> | null;
}

/** The columns a transition may change; absent keys stay as they are (see Commit's TransitionWrite). */
export interface TaskPatch {
  status: TaskStatus;
  attempts?: number;
  deadline?: Date | null;
  notBefore?: Date | null;
  fencingToken?: number | null;
  lastError?: string | null;
  startedAt?: Date | null;
  completedAt?: Date | null;
  output?: Record<string, unknown> | null;
  actualCost?: number | null;
}

/**
 * A pipeline event raised by a task transition, kept in the outbox until it is handled: the
 * transition writes it (Commit.applyTransitions, `raise`), ingesting the event removes it
 * (Commit.ingestEvent), and a sweep finds what is left (TaskStore.listOutbox).
 */
export interface OutboxEvent {
  eventId: string;
  eventType: string;
  projectId: string;
  payload: Record<string, unknown>;
  /** The task whose transition raised it. */
  taskId: string;
  at: Date;
  /** In memory only (not stored with the event): the raising task's traceparent, which the event's trace links to. */
  traceParent?: string | null;
}

export interface TransitionRecord {
  id: number;
  taskId: string;
  projectId: string;
  fromStatus: TaskStatus | null;
  toStatus: TaskStatus;
  event: string;
  detail: Record<string, unknown> | null;
  at: Date;
  by: string;
}

export interface Page {
  /** Return tasks whose id sorts after this one (keyset pagination). */
  afterTaskId?: string;
  limit: number;
}

/** An attempt of a task: the task and the fencing token it went RUNNING under. */
export interface DispatchedAttempt {
  taskId: string;
  fencingToken: number;
}

/**
 * The task aggregate: the reads of tasks, their audit log and their outboxes, and the
 * writes that touch nothing else (creating tasks, removing an outbox event, confirming
 * dispatches). Transitions, which may change the project's budget too, are written through
 * the Commit port. Tables: tasks, task_transitions, outbox, dispatch_outbox.
 */
export interface TaskStore {
  /**
   * Inserts tasks in one round trip, with an audit row each (from null). All or none:
   * an id that already exists fails the whole batch with DuplicateTaskError.
   */
  createTasks(tasks: readonly NewTaskRecord[], by: string): Promise<void>;
  getTask(taskId: string): Promise<TaskRecord | null>;
  getTasks(taskIds: readonly string[]): Promise<TaskRecord[]>;
  /**
   * What dependency checks need of tasks (status, attempts, dependencies), for those that
   * exist among `taskIds`, in the order asked: a narrow read of the same rows as getTasks.
   */
  getLinks(taskIds: readonly string[]): Promise<TaskLinks[]>;
  /** Non-final tasks (see isFinalStatus), ordered by task id, a page at a time; only of `statuses` when given. */
  loadNonFinal(page: Page & { statuses?: readonly TaskStatus[] }): Promise<TaskRecord[]>;
  /** Tasks of a project, optionally of some statuses, ordered by creation. */
  listByProject(projectId: string, statuses?: readonly TaskStatus[]): Promise<TaskRecord[]>;
  /** READY tasks in queue order (priority desc, then time they became READY), a page at a time. */
  listReady(page: { offset: number; limit: number }): Promise<{ taskId: string; priority: number }[]>;
  /**
   * READY tasks that became READY before `before`, of projects whose READY tasks may be
   * dispatched (active or completed, or paused for their budget), the longest READY first:
   * what the dispatcher's reconcile puts back in the queue (putting a queued task again
   * keeps its place).
   */
  listStrayReady(before: Date, limit: number): Promise<{ taskId: string; priority: number }[]>;
  /** Tasks that depend on any of the given tasks, once each, ordered by task id. */
  listDependentsOf(taskIds: readonly string[]): Promise<TaskRecord[]>;
  /** RUNNING tasks whose deadline is at or before `now`. */
  listExpired(now: Date, limit: number): Promise<TaskRecord[]>;
  /** The audit log of one task, oldest first. */
  listTransitions(taskId: string): Promise<TransitionRecord[]>;
  /**
   * The highest fencing token held by a task that can still run (0 when none). A final
   * task never takes a lease again, so a token below its own cannot be refused for it.
   */
  maxFencingToken(): Promise<number>;
  countByStatus(projectId?: string): Promise<Partial<Record<TaskStatus, number>>>;
  /** Tasks by status of each of these projects (a project without tasks is left out), in one read. */
  countByProjects(projectIds: readonly string[]): Promise<Record<string, Partial<Record<TaskStatus, number>>>>;
  /**
   * A page of a project's tasks in creation order (creation time, then id): at most
   * `limit`, only of `statuses` when given, created after the task `after` when given
   * (keyset: the previous page's last id).
   */
  listProjectPage(projectId: string, page: { statuses?: readonly TaskStatus[]; after?: string; limit: number }): Promise<TaskRecord[]>;
  /**
   * For the budget forecast, aggregated in the store: the estimates of the project's
   * tasks not yet reserved (PENDING, WAITING_APPROVAL) and the task types it has.
   */
  summarizeProject(projectId: string): Promise<{ unreservedEstimate: number; taskTypes: string[] }>;
  /** PENDING tasks whose back-off is over (not_before <= now), for promotion after a retry. */
  listDueRetries(now: Date, limit: number): Promise<TaskRecord[]>;
  /** Outbox events not yet handled (raised before `before`, when given), oldest first: what a reaction left undone. */
  listOutbox(limit: number, before?: Date): Promise<OutboxEvent[]>;
  /** Removes an outbox event that cannot be handled (it is dead-lettered); true when it was there. */
  removeOutbox(eventId: string): Promise<boolean>;
  /**
   * PENDING tasks not changed since `before`, back-off over, of projects that accept work,
   * whose dependencies are all final (COMPLETED, CANCELLED or out of attempts): each one
   * is to be promoted or, a dependency broken, cancelled — what a reaction left undone.
   */
  listPromotable(before: Date, limit: number): Promise<string[]>;
  /**
   * The dispatch outbox. Every write into RUNNING (a DISPATCH transition, a task created
   * RUNNING) records, in the same statement, that the attempt's dispatch is not yet
   * confirmed published; this removes the records of attempts whose dispatch the bus
   * confirmed, in one statement. A record of another attempt of the task (another fencing
   * token) stays. Confirming an attempt that has no record is not an error.
   */
  confirmDispatches(attempts: readonly DispatchedAttempt[]): Promise<void>;
  /**
   * RUNNING attempts whose dispatch is unconfirmed since before `before` (their record was
   * written then and not confirmed since), ordered by task id, a page at a time: what the
   * dispatcher takes over when their owner is gone. The same call drops the records,
   * written before `before`, of attempts that ended unconfirmed (the task left RUNNING or
   * runs under another token).
   */
  listUnconfirmedDispatches(page: Page & { before: Date }): Promise<TaskRecord[]>;
}
