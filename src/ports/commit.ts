import type { TaskStatus } from '../domain/task.js';
import type { ProjectState } from '../domain/project.js';
import type { NewApproval, NewProject, ProjectRecord } from './project-store.js';
import type { NewTaskRecord, OutboxEvent, TaskPatch } from './task-store.js';

export interface TransitionWrite {
  taskId: string;
  /** The row version the transition was computed from; a mismatch is a conflict. */
  expectedVersion: number;
  from: TaskStatus;
  to: TaskStatus;
  /** The machine event type, for the audit log. */
  event: string;
  /** Event details kept in the audit log (reason, error, cost...). */
  detail?: Record<string, unknown> | null;
  patch: TaskPatch;
  snapshot: unknown;
  machineVersion: string;
  /**
   * The fencing token carried by the writer, when the write comes from a lease holder
   * (dispatch, result, heartbeat). Refused with StaleFencingTokenError when it is lower
   * than the token stored on the task.
   */
  fencingToken?: number;
  /** The orchestrator instance that made the transition. */
  by: string;
  at: Date;
  /** The budget change that goes with this transition, written in the same statement. */
  budget?: BudgetEffect;
  /**
   * Events this transition raises (a completed task's pipeline events), written to the
   * outbox in the same statement, so a crash cannot lose them; handling an event
   * (Commit.ingestEvent) removes its outbox row.
   */
  raise?: readonly OutboxEvent[];
}

/**
 * A change to the project's budget made atomically with a task transition:
 * `reserved += reserve - release`, `spent += spend`. With `enforce`, a reservation that
 * would take spent + reserved over the limit (or a project that is not active) refuses
 * the whole transition with BudgetExceededError, and nothing is written.
 */
export interface BudgetEffect {
  projectId: string;
  reserve?: number;
  release?: number;
  spend?: number;
  enforce: boolean;
}

/**
 * A project's state and amounts as a write that changed them left them (see
 * TransitionOutcome): enough for the budget checks that follow, without reading it again.
 */
export interface ProjectBudget {
  projectId: string;
  state: ProjectState;
  pausedReason: string | null;
  budgetLimit: number | null;
  spent: number;
  reserved: number;
}

/**
 * The outcome of one write of a batch (see `applyTransitions`). Per write: its new row
 * version; when it carried a budget effect, the project as the statement left it (after
 * every write of the call); when it moved the task into RUNNING (a dispatch), the task's
 * input, so that the dispatch reads nothing more. Or why it was refused.
 */
export type TransitionOutcome =
  | { ok: true; version: number; project?: ProjectBudget; input?: Record<string, unknown> }
  | { ok: false; error: Error };

/** Everything one handled event writes, in one transaction. */
export interface EventIngest {
  eventId: string;
  eventType: string;
  projectId: string;
  at: Date;
  by: string;
  /** PROJECT_CREATED: the project row (an existing project id is left as it is). */
  project?: NewProject;
  tasks: readonly NewTaskRecord[];
  approval?: NewApproval;
  /** Redo tasks: waiting dependents of `oldTaskId` depend on `newTaskId` instead. */
  supersede?: readonly { oldTaskId: string; newTaskId: string }[];
  /**
   * Tasks that may start READY (no dependencies, not at a checkpoint): the same tasks as
   * in `tasks`, already moved PENDING → READY by their machine (`createdReady`). They
   * replace their PENDING rows, and `reserve` (their estimates) is added to the project's
   * reserved amount, when the project is active and — with `enforce` — the reservation
   * fits within its limit; otherwise `tasks` is written as it is (all or nothing). Not
   * combined with `supersede` (the reservation's project lock would come before the
   * superseded task rows' locks, the reverse of the transitions' order).
   */
  ready?: { tasks: readonly NewTaskRecord[]; reserve: number; enforce: boolean };
  /**
   * The caller did not read the project first (it had it, active, in memory): write only
   * if the project is active; otherwise write nothing and report `skipped` (the caller then
   * reads the project and ingests the event without this flag). A duplicate event id of an
   * active project is reported as not written.
   */
  onlyIfActive?: boolean;
}

/** What `ingestEvent` did. */
export interface IngestResult {
  /** False: the event id was already processed; nothing was written. */
  written: boolean;
  /** The `ready` tasks were written READY (and reserved). */
  ready: boolean;
  /** With `onlyIfActive`: the project was not active; nothing was written. */
  skipped: boolean;
  /** With `ready` written: the project's row just after the reservation (its amounts for budget checks). */
  project?: ProjectRecord;
}

/**
 * The one way to write several aggregates together: a task's transition with its change to
 * the project's budget and the events it raises, and an event's ingest (its processed mark,
 * the project, the tasks, the approval). Each call is one statement or one transaction, all
 * or nothing. Budget amounts change only here, in SQL, under the project row's lock, so
 * several orchestrator processes can never overspend together. Every other write goes
 * through its own aggregate's port (TaskStore, ProjectStore, DeadLetterStore, CostStatsStore),
 * which writes only that aggregate's tables.
 */
export interface Commit {
  /**
   * Applies one transition if the row version still matches: status columns, snapshot,
   * the audit row, the budget effect and the raised events in one statement — and, for a
   * write into RUNNING (a dispatch), the dispatch's unconfirmed record (see
   * TaskStore.confirmDispatches). Returns the
   * new row version. Throws TaskNotFoundError, VersionConflictError,
   * StaleFencingTokenError, BudgetExceededError or ProjectNotFoundError (a budget effect on
   * an unknown project); nothing is written then.
   */
  applyTransition(write: TransitionWrite): Promise<number>;
  /**
   * Applies many transitions in one round trip (the hot paths batch: promotion, dispatch,
   * results). Each write succeeds or fails on its own, with the same checks and errors as
   * `applyTransition` (TaskNotFoundError, VersionConflictError, StaleFencingTokenError,
   * BudgetExceededError, ProjectNotFoundError), in the outcome at its index; a failed
   * write writes nothing. Budget reservations with `enforce` are granted in the order of
   * the writes while they fit (spent + reserved <= limit, project active), under the
   * project row's lock, so concurrent batches from several processes never overspend
   * together. Writes for the same task in one batch are not allowed (ValidationError for
   * the whole call).
   */
  applyTransitions(writes: readonly TransitionWrite[]): Promise<TransitionOutcome[]>;
  /**
   * Writes an event's effects (project, tasks, approval, supersessions, the READY tasks'
   * reservation) and marks the event processed, all or nothing. Reports `written: false`,
   * writing nothing, when the event id was processed before (a task written RUNNING gets
   * its dispatch's unconfirmed record, as with applyTransition); either way, unless `skipped`,
   * the event's own outbox row (a raised event, or its replay) is removed. A task id that exists already
   * fails it with DuplicateTaskError, writing nothing.
   */
  ingestEvent(ingest: EventIngest): Promise<IngestResult>;
}
