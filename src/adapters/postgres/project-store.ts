import { ApprovalError, DuplicateTaskError, ProjectNotFoundError, ValidationError } from '../../errors.js';
import type {
  ApprovalDecision,
  ApprovalRecord,
  ApprovalStatus,
  CostObservation,
  DeadLetter,
  EventIngest,
  IngestResult,
  ProjectRecord,
  ProjectState,
  ProjectStepCommit,
  ProjectStepWrite,
  ProjectStore,
  StoredProject,
} from '../../ports/project-store.js';
import type { NewTaskRecord } from '../../ports/task-store.js';
import { INGEST_ACTIVE, INGEST_INCOMPLETE, RESERVE_FOR_READY } from './ingest-sql.js';
import { invalidInput, pgCode } from './pg-errors.js';
import { newTaskToJson } from './task-rows.js';
import { toSqlTime, type SqlClient } from './sql-client.js';
import { PostgresTaskStore } from './task-store.js';
import { APPROVAL_COLUMNS, PROJECT_COLUMNS, approvalFromRow, projectFromRow, type ApprovalRow, type ProjectRow } from './project-rows.js';

const DECISIONS: ReadonlySet<string> = new Set(['approved', 'rejected', 'expired']);

/**
 * For each pair of $2 (a JSON array of {old, new}), the waiting dependents of `old` in
 * project $1 depend on `new` instead (a new task itself keeps its dependency on the old
 * one): order kept, a dependency listed twice after the swap kept once. The rows are locked
 * in task id order first, the order the transition batches lock theirs in, so the two
 * cannot deadlock.
 */
const SUPERSEDE = `
WITH s AS (
  SELECT * FROM jsonb_to_recordset($2::jsonb) AS x(old text, new text)
), target AS MATERIALIZED (
  SELECT t.task_id FROM tasks t
  WHERE t.project_id = $1::text AND t.status IN ('PENDING', 'WAITING_APPROVAL')
    AND EXISTS (SELECT 1 FROM s WHERE t.dependencies @> jsonb_build_array(s.old) AND t.task_id <> s.new)
  ORDER BY t.task_id
  FOR NO KEY UPDATE
)
UPDATE tasks t SET dependencies = (
  SELECT COALESCE(jsonb_agg(to_jsonb(x.dep) ORDER BY x.pos), '[]'::jsonb)
  FROM (SELECT COALESCE((SELECT s.new FROM s WHERE s.old = e.d AND s.new <> t.task_id LIMIT 1), e.d) AS dep, min(e.pos) AS pos
        FROM jsonb_array_elements_text(t.dependencies) WITH ORDINALITY AS e(d, pos)
        GROUP BY 1) x)
FROM target WHERE t.task_id = target.task_id`;

const SKIPPED: IngestResult = { written: false, ready: false, skipped: true };

/** `tasks` with the READY variant of each task that has one. */
function withReady(tasks: readonly NewTaskRecord[], ready: readonly NewTaskRecord[]): NewTaskRecord[] {
  const byId = new Map(ready.map((t) => [t.taskId, t]));
  return tasks.map((t) => byId.get(t.taskId) ?? t);
}

/**
 * $1 project, $2 new limit (null: none), $3 at. The warning level is a percentage of
 * the limit (see raiseWarningLevel): a level the new ratio (spent + reserved) / limit no
 * longer reaches is reset to the ratio, so crossing it again is published again; levels
 * still reached stay published. A zero limit counts as a ratio of 100%.
 */
const SET_BUDGET_LIMIT = `
UPDATE projects SET
  budget_limit = $2::numeric,
  warning_level = CASE
    WHEN $2::numeric IS NULL THEN 0
    WHEN $2::numeric = 0 THEN LEAST(warning_level, 100)
    ELSE LEAST(warning_level, trunc((spent + reserved) * 100 / $2::numeric, 4)) END,
  snapshot = NULL,
  version = version + 1,
  updated_at = $3::timestamp
WHERE project_id = $1::text
RETURNING ${PROJECT_COLUMNS}`;

/**
 * One step of the project machine (see ProjectStepWrite): $1 project, $2 expected version,
 * $3 state, $4 paused reason, $5 warning level, $6 snapshot, $7 machine version, $8 whether
 * the limit is set, $9 the new limit, $10 at.
 */
const COMMIT_PROJECT_STEP = `
UPDATE projects SET
  state = $3::text,
  paused_reason = CASE WHEN $3::text = 'paused' THEN $4::text END,
  warning_level = $5::numeric,
  snapshot = $6::jsonb,
  machine_version = $7::text,
  budget_limit = CASE WHEN $8::boolean THEN $9::numeric ELSE budget_limit END,
  version = version + 1,
  updated_at = $10::timestamp
WHERE project_id = $1::text AND version = $2::bigint
RETURNING ${PROJECT_COLUMNS}`;

/** A pending request of project $6 decided: $1 approval, $2 status, $3 comment, $4 by, $5 at. */
const DECIDE_IN_STEP = `
UPDATE approvals SET status = $2::text, comment = $3::text, decided_by = $4::text, decided_at = $5::timestamp
WHERE approval_id = $1::text AND project_id = $6::text AND status = 'pending'
RETURNING ${APPROVAL_COLUMNS}`;

/** A pending request of project $4 waits longer: $1 approval, $2 the expiry it had, $3 the new one. */
const EXTEND_IN_STEP = `
UPDATE approvals SET expires_at = $3::timestamp
WHERE approval_id = $1::text AND project_id = $4::text AND status = 'pending' AND expires_at IS NOT DISTINCT FROM $2::timestamp
RETURNING ${APPROVAL_COLUMNS}`;

/** Refuses NaN, infinities and (unless allowed) negative amounts before they reach SQL. */
function requireAmount(what: string, value: number, { min = 0, max = Infinity } = {}): void {
  if (!Number.isFinite(value) || value < min || value > max) {
    throw new ValidationError(`${what} must be a finite number in [${min}, ${max}]`, [`${what}: ${value}`]);
  }
}

/**
 * Projects, approvals, idempotency, dead letters and cost observations on PostgreSQL
 * (or PGlite: the same SQL). Every write is one statement or one transaction.
 */
export class PostgresProjectStore implements ProjectStore {
  constructor(private readonly sql: SqlClient) {}

  async ingestEvent(ingest: EventIngest): Promise<IngestResult> {
    if (ingest.onlyIfActive && !ingest.project && !ingest.approval && !ingest.supersede?.length) {
      return this.#ingestActive(ingest);
    }
    return this.#ingestInTransaction(ingest);
  }

  async #ingestInTransaction(ingest: EventIngest): Promise<IngestResult> {
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
        { name: 'project_store_ingest_active' },
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

  async isEventProcessed(eventId: string): Promise<boolean> {
    const { rowCount } = await this.sql.query('SELECT 1 FROM processed_events WHERE event_id = $1::text', [eventId]);
    return rowCount > 0;
  }

  async getProject(projectId: string): Promise<ProjectRecord | null> {
    const { rows } = await this.sql.query<ProjectRow>(`SELECT ${PROJECT_COLUMNS} FROM projects WHERE project_id = $1::text`, [projectId]);
    return rows[0] ? projectFromRow(rows[0]) : null;
  }

  async listProjects(states?: readonly ProjectState[]): Promise<ProjectRecord[]> {
    const { rows } = await this.sql.query<ProjectRow>(
      `SELECT ${PROJECT_COLUMNS} FROM projects
       WHERE $1::jsonb IS NULL OR state IN (SELECT jsonb_array_elements_text($1::jsonb))
       ORDER BY created_at, project_id`,
      [states ? JSON.stringify(states) : null],
    );
    return rows.map(projectFromRow);
  }

  async setProjectState(
    projectId: string,
    to: ProjectState,
    from: readonly ProjectState[],
    reason: string | null,
    at: Date,
  ): Promise<ProjectRecord | null> {
    const { rows } = await this.sql.query<ProjectRow>(
      `UPDATE projects SET state = $2::text, paused_reason = CASE WHEN $2::text = 'paused' THEN $3::text END,
         snapshot = NULL, version = version + 1, updated_at = $5::timestamp
       WHERE project_id = $1::text AND state IN (SELECT jsonb_array_elements_text($4::jsonb))
       RETURNING ${PROJECT_COLUMNS}`,
      [projectId, to, reason, JSON.stringify(from), toSqlTime(at)],
    ).catch((err: unknown) => {
      throw invalidInput(err, `cannot move project ${projectId} to ${to}`);
    });
    if (rows[0]) return projectFromRow(rows[0]);
    if (!(await this.getProject(projectId))) throw new ProjectNotFoundError(projectId);
    return null;
  }

  async getProjectSnapshot(projectId: string): Promise<StoredProject | null> {
    const { rows } = await this.sql.query<ProjectRow & { snapshot: unknown; machine_version: string | null }>(
      `SELECT ${PROJECT_COLUMNS}, snapshot, machine_version FROM projects WHERE project_id = $1::text`,
      [projectId],
    );
    const row = rows[0];
    return row ? { project: projectFromRow(row), snapshot: row.snapshot ?? null, machineVersion: row.machine_version } : null;
  }

  async commitProjectStep(step: ProjectStepWrite): Promise<ProjectStepCommit | null> {
    if (step.budgetLimit && step.budgetLimit.limit !== null) requireAmount('budget limit', step.budgetLimit.limit);
    requireAmount('warning level', step.warningLevel, { max: 999 });
    for (const d of step.decisions ?? []) {
      if (!DECISIONS.has(d.status)) throw new ApprovalError(`approval ${d.approvalId}: ${String(d.status)} is not a decision`);
    }
    const params = [
      step.projectId,
      step.expectedVersion,
      step.state,
      step.pausedReason,
      step.warningLevel,
      JSON.stringify(step.snapshot),
      step.machineVersion,
      step.budgetLimit !== undefined,
      step.budgetLimit?.limit ?? null,
      toSqlTime(step.at),
    ];
    const fail = (err: unknown): never => {
      throw invalidInput(err, `cannot commit a step of project ${step.projectId}`);
    };
    const approvalsChanged = (step.decisions?.length ?? 0) + (step.extensions?.length ?? 0) > 0;
    if (!approvalsChanged) {
      const { rows } = await this.sql.query<ProjectRow>(COMMIT_PROJECT_STEP, params).catch(fail);
      return rows[0] ? { project: projectFromRow(rows[0]), approvals: [] } : this.#stepRefused(step.projectId);
    }
    // The project row first (its lock, then the approval rows': no writer takes them the other way round).
    const committed = await this.sql.transaction(async (tx) => {
      const { rows } = await tx.query<ProjectRow>(COMMIT_PROJECT_STEP, params).catch(fail);
      if (!rows[0]) return null;
      const approvals: ApprovalRecord[] = [];
      for (const d of step.decisions ?? []) {
        const decided = await tx.query<ApprovalRow>(DECIDE_IN_STEP, [d.approvalId, d.status, d.comment, d.by, toSqlTime(d.at), step.projectId]).catch(fail);
        if (!decided.rows[0]) throw await this.#notPending(tx, d.approvalId);
        approvals.push(approvalFromRow(decided.rows[0]));
      }
      for (const e of step.extensions ?? []) {
        const extended = await tx.query<ApprovalRow>(EXTEND_IN_STEP, [e.approvalId, toSqlTime(e.from), toSqlTime(e.expiresAt), step.projectId]).catch(fail);
        if (!extended.rows[0]) throw await this.#notPending(tx, e.approvalId, 'extended');
        approvals.push(approvalFromRow(extended.rows[0]));
      }
      return { project: projectFromRow(rows[0]), approvals };
    });
    return committed ?? this.#stepRefused(step.projectId);
  }

  /** A step whose compare-and-set found another version: null, or the project does not exist. */
  async #stepRefused(projectId: string): Promise<null> {
    if (!(await this.getProject(projectId))) throw new ProjectNotFoundError(projectId);
    return null;
  }

  /** Why an approval row of a step could not be changed (the step is rolled back). */
  async #notPending(tx: SqlClient, approvalId: string, what = 'decided'): Promise<ApprovalError> {
    const { rows } = await tx.query<ApprovalRow>(`SELECT ${APPROVAL_COLUMNS} FROM approvals WHERE approval_id = $1::text`, [approvalId]);
    const existing = rows[0] ? approvalFromRow(rows[0]) : null;
    if (!existing) return new ApprovalError(`approval ${approvalId} does not exist`);
    if (existing.status === 'pending') return new ApprovalError(`approval ${approvalId} cannot be ${what}: its expiry moved`);
    return new ApprovalError(`approval ${approvalId} was already ${existing.status}${existing.decidedBy ? ` by ${existing.decidedBy}` : ''}`);
  }

  async setBudgetLimit(projectId: string, limit: number | null, at: Date): Promise<ProjectRecord> {
    if (limit !== null) requireAmount('budget limit', limit);
    const { rows } = await this.sql.query<ProjectRow>(SET_BUDGET_LIMIT, [projectId, limit, toSqlTime(at)]).catch((err: unknown) => {
      throw invalidInput(err, `cannot set the budget limit of project ${projectId}`);
    });
    if (!rows[0]) throw new ProjectNotFoundError(projectId);
    return projectFromRow(rows[0]);
  }

  async raiseWarningLevel(projectId: string, level: number): Promise<boolean> {
    requireAmount('warning level', level, { max: 999 });
    // Concurrent raises queue on the row lock and re-check the condition: one wins.
    const { rowCount } = await this.sql.query(
      'UPDATE projects SET warning_level = $2::numeric WHERE project_id = $1::text AND warning_level < $2::numeric',
      [projectId, level],
    );
    return rowCount > 0;
  }

  async getApproval(approvalId: string): Promise<ApprovalRecord | null> {
    const { rows } = await this.sql.query<ApprovalRow>(`SELECT ${APPROVAL_COLUMNS} FROM approvals WHERE approval_id = $1::text`, [approvalId]);
    return rows[0] ? approvalFromRow(rows[0]) : null;
  }

  async listApprovals(projectId: string, status?: ApprovalStatus): Promise<ApprovalRecord[]> {
    const { rows } = await this.sql.query<ApprovalRow>(
      `SELECT ${APPROVAL_COLUMNS} FROM approvals WHERE project_id = $1::text AND ($2::text IS NULL OR status = $2::text)
       ORDER BY requested_at, approval_id`,
      [projectId, status ?? null],
    );
    return rows.map(approvalFromRow);
  }

  async decideApproval(d: ApprovalDecision): Promise<ApprovalRecord> {
    if (!DECISIONS.has(d.status)) throw new ApprovalError(`approval ${d.approvalId}: ${String(d.status)} is not a decision`);
    // Compare-and-set: concurrent deciders queue on the row lock; the later ones find it decided.
    const { rows } = await this.sql.query<ApprovalRow>(
      `UPDATE approvals SET status = $2::text, comment = $3::text, decided_by = $4::text, decided_at = $5::timestamp
       WHERE approval_id = $1::text AND status = 'pending' RETURNING ${APPROVAL_COLUMNS}`,
      [d.approvalId, d.status, d.comment, d.by, toSqlTime(d.at)],
    ).catch((err: unknown) => {
      throw invalidInput(err, `cannot decide approval ${d.approvalId}`);
    });
    if (rows[0]) return approvalFromRow(rows[0]);
    const existing = await this.getApproval(d.approvalId);
    if (!existing) throw new ApprovalError(`approval ${d.approvalId} does not exist`);
    throw new ApprovalError(`approval ${d.approvalId} was already ${existing.status}${existing.decidedBy ? ` by ${existing.decidedBy}` : ''}`);
  }

  async listExpiredApprovals(now: Date, limit: number): Promise<ApprovalRecord[]> {
    const { rows } = await this.sql.query<ApprovalRow>(
      `SELECT ${APPROVAL_COLUMNS} FROM approvals WHERE status = 'pending' AND expires_at <= $1::timestamp
       ORDER BY expires_at, approval_id LIMIT $2::integer`,
      [toSqlTime(now), limit],
    );
    return rows.map(approvalFromRow);
  }

  async extendApproval(approvalId: string, from: Date, expiresAt: Date): Promise<boolean> {
    // Compare-and-set on the expiry the caller saw: of two sweeps, exactly one extends (and
    // reminds); never moves an expiry back.
    const { rowCount } = await this.sql.query(
      `UPDATE approvals SET expires_at = $3::timestamp
       WHERE approval_id = $1::text AND status = 'pending' AND expires_at = $2::timestamp AND expires_at < $3::timestamp`,
      [approvalId, toSqlTime(from), toSqlTime(expiresAt)],
    );
    return rowCount > 0;
  }

  async recordDeadLetter(l: DeadLetter): Promise<void> {
    await this.sql.query(
      `INSERT INTO dead_letters (task_id, project_id, reason, last_error, attempts, at)
       VALUES ($1::text, $2::text, $3::text, $4::text, $5::integer, $6::timestamp)`,
      [l.taskId, l.projectId, l.reason, l.lastError, l.attempts, toSqlTime(l.at)],
    ).catch((err: unknown) => {
      throw invalidInput(err, `cannot record a dead letter for task ${l.taskId}`);
    });
  }

  async listDeadLetters(projectId?: string): Promise<DeadLetter[]> {
    const { rows } = await this.sql.query<{ task_id: string; project_id: string; reason: string; last_error: string | null; attempts: number; at: Date }>(
      'SELECT task_id, project_id, reason, last_error, attempts, at FROM dead_letters WHERE $1::text IS NULL OR project_id = $1::text ORDER BY id',
      [projectId ?? null],
    );
    return rows.map((r) => ({ taskId: r.task_id, projectId: r.project_id, reason: r.reason, lastError: r.last_error, attempts: r.attempts, at: r.at }));
  }

  async observeCost(taskType: string, agent: string, cost: number, alpha: number, at: Date, count = 1): Promise<void> {
    requireAmount('cost', cost);
    requireAmount('alpha', alpha, { max: 1 });
    if (!Number.isInteger(count) || count < 1) throw new ValidationError(`count must be a positive integer, got ${count}`);
    // One upsert: concurrent observations of a pair queue on its row and none is lost.
    // `count` samples of the same value move the mean by 1 - (1 - alpha)^count of the gap.
    await this.sql.query(
      `INSERT INTO cost_observations (task_type, agent, ewma, samples, updated_at)
       VALUES ($1::text, $2::text, $3::numeric, $6::bigint, $5::timestamp)
       ON CONFLICT (task_type, agent) DO UPDATE SET
         ewma = cost_observations.ewma + (1 - power(1 - $4::numeric, $6::integer)) * ($3::numeric - cost_observations.ewma),
         samples = cost_observations.samples + $6::bigint, updated_at = $5::timestamp`,
      [taskType, agent, cost, alpha, toSqlTime(at), count],
    ).catch((err: unknown) => {
      throw invalidInput(err, `cannot record a cost of ${taskType} by ${agent}`);
    });
  }

  async listCostObservations(): Promise<CostObservation[]> {
    const { rows } = await this.sql.query<{ task_type: string; agent: string; ewma: number; samples: number }>(
      'SELECT task_type, agent, ewma, samples FROM cost_observations ORDER BY task_type, agent',
    );
    return rows.map((r) => ({ taskType: r.task_type, agent: r.agent, ewma: r.ewma, samples: r.samples }));
  }
}

/** Creates an event's tasks inside its transaction; an id that exists already fails it (DuplicateTaskError). */
async function createTasksIn(tx: SqlClient, tasks: readonly NewTaskRecord[], by: string): Promise<void> {
  // A taken id is skipped by the insert, not raised: the transaction stays usable, and
  // throwing here rolls all of it back.
  const skipped = await new PostgresTaskStore(tx).createNewTasks(tasks, by);
  if (skipped.length > 0) throw new DuplicateTaskError(skipped);
}
