import {
  BudgetExceededError,
  DuplicateTaskError,
  ProjectNotFoundError,
  StaleFencingTokenError,
  TaskNotFoundError,
  ValidationError,
  VersionConflictError,
} from '../../errors.js';
import type { BudgetEffect, Commit, EventIngest, IngestResult, TransitionOutcome, TransitionWrite } from '../../ports/commit.js';
import type { ProjectRecord } from '../../ports/project-store.js';
import type { NewTaskRecord } from '../../ports/task-store.js';
import { INGEST_ACTIVE, INGEST_INCOMPLETE, RESERVE_FOR_READY, SUPERSEDE } from './ingest-sql.js';
import { invalidInput, pgCode } from './pg-errors.js';
import { projectFromRow, type ProjectRow } from './project-rows.js';
import { toSqlTime, type SqlClient } from './sql-client.js';
import { newTaskToJson, outboxToJson, transitionToJson } from './task-rows.js';
import { CREATE_NEW_TASKS } from './task-sql.js';
import { batchOutcome, budgetRequested, roundMoney, written } from './transition-outcomes.js';
import {
  APPLY_TRANSITION,
  APPLY_TRANSITIONS,
  BUDGET_REFUSED,
  PROJECT_BUDGET,
  type BatchResultRow,
  type ProjectBudgetRow,
  type TransitionResultRow,
} from './transition-sql.js';

const SKIPPED: IngestResult = { written: false, ready: false, skipped: true };

/** `tasks` with the READY variant of each task that has one. */
function withReady(tasks: readonly NewTaskRecord[], ready: readonly NewTaskRecord[]): NewTaskRecord[] {
  const byId = new Map(ready.map((t) => [t.taskId, t]));
  return tasks.map((t) => byId.get(t.taskId) ?? t);
}

/**
 * The Commit port on PostgreSQL (or PGlite: the same SQL): the only adapter that writes
 * several aggregates' tables together. A transition is one statement (task row, audit row,
 * the project's budget, the outbox); an event's ingest one statement on the hot path
 * (INGEST_ACTIVE) or one transaction (processed mark, project, tasks, approval, supersessions).
 */
export class PostgresCommit implements Commit {
  constructor(private readonly sql: SqlClient) {}

  async applyTransition(w: TransitionWrite): Promise<number> {
    return (await this.#applyOne(w)).new_version;
  }

  /** APPLY_TRANSITION; its row when the write was applied, else the refusal thrown. */
  async #applyOne(w: TransitionWrite): Promise<TransitionResultRow & { new_version: number }> {
    let outcome: TransitionResultRow | undefined;
    try {
      const { rows } = await this.sql.query<TransitionResultRow>(
        APPLY_TRANSITION,
        [
          w.taskId,
          w.expectedVersion,
          w.fencingToken ?? null,
          w.to,
          JSON.stringify(w.patch),
          JSON.stringify(w.snapshot ?? null),
          w.machineVersion,
          toSqlTime(w.at),
          w.from,
          w.event,
          w.detail == null ? null : JSON.stringify(w.detail),
          w.by,
          w.budget ? JSON.stringify(w.budget) : null,
          w.raise?.length ? JSON.stringify(w.raise.map(outboxToJson)) : null,
        ],
        { name: 'commit_apply_transition' },
      );
      outcome = rows[0];
    } catch (err) {
      if (pgCode(err) === BUDGET_REFUSED && w.budget) throw await this.#budgetRefusal(w.budget);
      throw invalidInput(err, `cannot apply ${w.event} to task ${w.taskId}`);
    }
    if (outcome?.new_version != null) return outcome as TransitionResultRow & { new_version: number };
    if (!outcome?.found) throw new TaskNotFoundError(w.taskId);

    // Not the stored token: older (a lease since taken over), or newer without setting it (no lease handed it).
    const stale = (stored: number | null): stored is number =>
      w.fencingToken !== undefined && stored !== null && w.fencingToken !== stored && !(w.fencingToken > stored && w.patch.fencingToken === w.fencingToken);
    if (stale(outcome.old_fencing_token)) {
      throw new StaleFencingTokenError(w.taskId, w.fencingToken!, outcome.old_fencing_token);
    }
    if (outcome.old_version !== w.expectedVersion) {
      throw new VersionConflictError(w.taskId, w.expectedVersion, outcome.old_version ?? -1);
    }
    // The row matched when the statement started, but a concurrent writer changed it
    // first (its update won the row lock): report against what it left.
    const now = await this.#versionAndToken(w.taskId);
    if (!now) throw new TaskNotFoundError(w.taskId);
    if (stale(now.token)) throw new StaleFencingTokenError(w.taskId, w.fencingToken!, now.token);
    throw new VersionConflictError(w.taskId, w.expectedVersion, now.version);
  }

  /**
   * The batch in one statement (APPLY_TRANSITIONS), atomic as a statement; each write
   * applies or not on its own, and the outcomes are read from the statement's rows.
   * Enforced budget reservations are judged in the order of the writes on the running
   * amounts of the accepted ones: the same result as applying the writes one at a time
   * in that order (a refused reservation does not stop a smaller one after it). A refused
   * one reports `remaining` as what was left just before it. Input the database refuses
   * (a bad status, a value out of range) fails the whole call with ValidationError and
   * writes nothing.
   */
  async applyTransitions(writes: readonly TransitionWrite[]): Promise<TransitionOutcome[]> {
    if (writes.length === 0) return [];
    const seen = new Set<string>();
    const repeated = new Set<string>();
    for (const w of writes) (seen.has(w.taskId) ? repeated : seen).add(w.taskId);
    if (repeated.size > 0) {
      throw new ValidationError('a batch of transitions names a task more than once', [...repeated].map((id) => `task ${id}`));
    }

    // One write: the single-transition statement (same checks and effects) is about three
    // times cheaper for PostgreSQL to run than the batch statement with one element.
    if (writes.length === 1) return [await this.#single(writes[0]!)];
    let rows: BatchResultRow[];
    try {
      ({ rows } = await this.sql.query<BatchResultRow>(
        APPLY_TRANSITIONS,
        [JSON.stringify(writes.map((w, i) => transitionToJson(w, i)))],
        { name: 'commit_apply_transitions' },
      ));
    } catch (err) {
      throw invalidInput(err, `cannot apply a batch of ${writes.length} transitions`);
    }
    if (rows.length !== writes.length) {
      throw new Error(`applyTransitions: ${rows.length} result rows for ${writes.length} writes`);
    }
    return rows.map((r, i) => batchOutcome(writes[i]!, r));
  }

  async #single(w: TransitionWrite): Promise<TransitionOutcome> {
    try {
      const row = await this.#applyOne(w);
      return written(row.new_version, row);
    } catch (err) {
      const perWrite =
        err instanceof TaskNotFoundError ||
        err instanceof StaleFencingTokenError ||
        err instanceof VersionConflictError ||
        err instanceof BudgetExceededError ||
        err instanceof ProjectNotFoundError;
      if (perWrite) return { ok: false, error: err };
      throw err;
    }
  }

  /** Why a budget effect was refused, as the error to throw. */
  async #budgetRefusal(budget: BudgetEffect): Promise<Error> {
    const { rows } = await this.sql.query<ProjectBudgetRow>(PROJECT_BUDGET, [budget.projectId]);
    const p = rows[0];
    if (!p) return new ProjectNotFoundError(budget.projectId);
    const requested = budgetRequested(budget);
    const remaining =
      p.state !== 'active' && p.state !== 'completed' ? 0 : p.budget_limit === null ? Infinity : Math.max(p.budget_limit - p.spent - p.reserved, 0);
    return new BudgetExceededError(budget.projectId, roundMoney(requested), roundMoney(remaining));
  }

  async #versionAndToken(taskId: string): Promise<{ version: number; token: number | null } | null> {
    const { rows } = await this.sql.query<{ version: number; fencing_token: number | null }>(
      'SELECT version, fencing_token FROM tasks WHERE task_id = $1',
      [taskId],
    );
    return rows[0] ? { version: rows[0].version, token: rows[0].fencing_token } : null;
  }

  async ingestEvent(ingest: EventIngest): Promise<IngestResult> {
    if (ingest.onlyIfActive && !ingest.project && !ingest.approval && !ingest.supersede?.length) {
      return this.#ingestActive(ingest);
    }
    return this.#ingestInTransaction(ingest);
  }

  async #ingestInTransaction(ingest: EventIngest): Promise<IngestResult> {
    return this.#ingestTransaction(ingest).catch((err: unknown) => {
      throw invalidInput(err, 'cannot ingest event');
    });
  }

  async #ingestTransaction(ingest: EventIngest): Promise<IngestResult> {
    return this.sql.transaction(async (tx) => {
      if (ingest.onlyIfActive) {
        // No lock (a share lock here, then the reservation's update lock, could deadlock two
        // ingests): a state change may land just after, as after the caller's own read.
        const { rowCount } = await tx.query(`SELECT 1 FROM projects WHERE project_id = $1::text AND state = 'active'`, [ingest.projectId]);
        if (rowCount === 0) return SKIPPED;
      }
      // First: a concurrent ingest of the same event id waits here on the key until this
      // transaction ends, then finds it (and writes nothing) or takes over after a rollback.
      // The event's own outbox row (a raised event, or its replay) goes in the same
      // statement: cleared whether the event is new or was handled before.
      const marked = await tx.query(
        `WITH cleared AS (DELETE FROM outbox WHERE event_id = $1::text)
         INSERT INTO processed_events (event_id, project_id, event_type, processed_at)
         VALUES ($1::text, $2::text, $3::text, $4::timestamp) ON CONFLICT (event_id) DO NOTHING RETURNING event_id`,
        [ingest.eventId, ingest.projectId, ingest.eventType, toSqlTime(ingest.at)],
      );
      if (marked.rowCount === 0) return { written: false, ready: false, skipped: false };
      if (ingest.project) {
        const p = ingest.project;
        await tx.query(
          `INSERT INTO projects (project_id, title, state, budget_limit, checkpoints, created_at, updated_at)
           VALUES ($1::text, $2::text, 'active', $3::numeric, $4::jsonb, $5::timestamp, $5::timestamp)
           ON CONFLICT (project_id) DO NOTHING`,
          [p.projectId, p.title, p.budgetLimit, p.checkpoints ? JSON.stringify(p.checkpoints) : null, toSqlTime(ingest.at)],
        );
      }
      let ready = false;
      let project: ProjectRecord | undefined;
      if (ingest.ready?.tasks.length && !ingest.supersede?.length) {
        const r = ingest.ready;
        const reserved = await tx.query<ProjectRow>(RESERVE_FOR_READY, [ingest.projectId, r.reserve, r.enforce, toSqlTime(ingest.at)]);
        project = reserved.rows[0] ? projectFromRow(reserved.rows[0]) : undefined;
        ready = project !== undefined;
      }
      const tasks = ready ? withReady(ingest.tasks, ingest.ready!.tasks) : ingest.tasks;
      if (tasks.length) await createTasksIn(tx, tasks, ingest.by);
      if (ingest.approval) {
        const a = ingest.approval;
        await tx.query(
          `INSERT INTO approvals (approval_id, project_id, checkpoint, status, event_id, summary, task_ids, requested_at, expires_at)
           VALUES ($1::text, $2::text, $3::text, 'pending', $4::text, $5::jsonb, $6::jsonb, $7::timestamp, $8::timestamp)`,
          [a.approvalId, a.projectId, a.checkpoint, a.eventId, JSON.stringify(a.summary), JSON.stringify(a.taskIds), toSqlTime(a.requestedAt), toSqlTime(a.expiresAt)],
        );
      }
      if (ingest.supersede?.length) {
        await tx.query(SUPERSEDE, [ingest.projectId, JSON.stringify(ingest.supersede.map((s) => ({ old: s.oldTaskId, new: s.newTaskId })))]);
      }
      return { written: true, ready, skipped: false, ...(project ? { project } : {}) };
    });
  }

  /** `onlyIfActive` without project, approval or supersession: INGEST_ACTIVE, one round trip. */
  async #ingestActive(ingest: EventIngest): Promise<IngestResult> {
    const ready = ingest.ready?.tasks.length ? ingest.ready : undefined;
    const tasks = ready ? withReady(ingest.tasks, ready.tasks) : ingest.tasks;
    const taskIds = new Set(tasks.map((t) => t.taskId));
    if (taskIds.size < tasks.length) throw new DuplicateTaskError(tasks.map((t) => t.taskId).filter((id, i, all) => all.indexOf(id) !== i));
    try {
      const { rows } = await this.sql.query<{ active: boolean; written: boolean } & ProjectRow>(
        INGEST_ACTIVE,
        [ingest.eventId, ingest.projectId, ingest.eventType, toSqlTime(ingest.at), JSON.stringify(tasks.map(newTaskToJson)), ingest.by, ready ? ready.reserve : null, ready?.enforce ?? false],
        { name: 'commit_ingest_active' },
      );
      const row = rows[0]!;
      if (!row.active) return SKIPPED;
      if (!row.written || !ready) return { written: row.written, ready: false, skipped: false };
      return { written: true, ready: true, skipped: false, project: projectFromRow(row) };
    } catch (err) {
      // The reservation did not fit or a task id was taken: the transaction sorts it out
      // (the tasks written PENDING, or DuplicateTaskError).
      if (pgCode(err) === INGEST_INCOMPLETE) return this.#ingestInTransaction(ingest);
      throw invalidInput(err, 'cannot ingest event');
    }
  }
}

/**
 * Creates an event's tasks inside its transaction; an id that exists already fails it
 * (DuplicateTaskError). A taken id is skipped by the insert (CREATE_NEW_TASKS), not raised:
 * the transaction stays usable without a savepoint, and throwing here rolls all of it back.
 */
async function createTasksIn(tx: SqlClient, tasks: readonly NewTaskRecord[], by: string): Promise<void> {
  const seen = new Set<string>();
  const repeated = new Set<string>();
  for (const t of tasks) (seen.has(t.taskId) ? repeated : seen).add(t.taskId);
  if (repeated.size > 0) throw new DuplicateTaskError([...repeated]);
  let skipped: string[];
  try {
    const { rows } = await tx.query<{ skipped: string[] }>(CREATE_NEW_TASKS, [JSON.stringify(tasks.map(newTaskToJson)), by], {
      name: 'commit_create_new_tasks',
    });
    skipped = rows[0]?.skipped ?? [];
  } catch (err) {
    throw invalidInput(err, 'cannot create tasks');
  }
  if (skipped.length > 0) throw new DuplicateTaskError(skipped);
}
