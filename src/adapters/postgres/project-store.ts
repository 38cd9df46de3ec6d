import { ApprovalError, ProjectNotFoundError } from '../../errors.js';
import type {
  ApprovalDecision,
  ApprovalRecord,
  ApprovalStatus,
  PendingApprovalRef,
  ProjectRecord,
  ProjectState,
  ProjectStepCommit,
  ProjectStepWrite,
  ProjectStore,
  StoredProject,
} from '../../ports/project-store.js';
import { invalidInput, requireAmount } from './pg-errors.js';
import { toSqlTime, type SqlClient } from './sql-client.js';
import { APPROVAL_COLUMNS, PROJECT_COLUMNS, approvalFromRow, projectFromRow, type ApprovalRow, type ProjectRow } from './project-rows.js';

const DECISIONS: ReadonlySet<string> = new Set(['approved', 'rejected', 'expired']);

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
  paused_reason = CASE WHEN $3::text IN ('paused', 'failed') THEN $4::text END,
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

/**
 * The project aggregate on PostgreSQL (or PGlite: the same SQL): projects and approvals.
 * Writes only its own tables (projects, approvals), one statement each or, for a step of
 * the project machine, one transaction over both; what an event's ingest or a
 * transition's budget effect writes goes through PostgresCommit.
 */
export class PostgresProjectStore implements ProjectStore {
  constructor(private readonly sql: SqlClient) {}

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

  async listProjectsPage(page: { states?: readonly ProjectState[]; after?: string; limit: number }): Promise<ProjectRecord[]> {
    // Newest first; keyset on (created_at, project_id) from the row of `after`.
    const { rows } = await this.sql.query<ProjectRow>(
      `SELECT ${PROJECT_COLUMNS} FROM projects
       WHERE ($1::jsonb IS NULL OR state IN (SELECT jsonb_array_elements_text($1::jsonb)))
         AND ($2::text IS NULL OR (created_at, project_id) < (SELECT created_at, project_id FROM projects WHERE project_id = $2::text))
       ORDER BY created_at DESC, project_id DESC
       LIMIT $3::integer`,
      [page.states ? JSON.stringify(page.states) : null, page.after ?? null, page.limit],
    );
    return rows.map(projectFromRow);
  }

  async listPendingApprovals(projectIds: readonly string[]): Promise<PendingApprovalRef[]> {
    if (projectIds.length === 0) return [];
    const { rows } = await this.sql.query<{ approval_id: string; project_id: string; checkpoint: string; requested_at: Date; expires_at: Date | null }>(
      `SELECT approval_id, project_id, checkpoint, requested_at, expires_at FROM approvals
       WHERE project_id IN (SELECT jsonb_array_elements_text($1::jsonb)) AND status = 'pending'
       ORDER BY requested_at, approval_id`,
      [JSON.stringify(projectIds)],
    );
    return rows.map((r) => ({ approvalId: r.approval_id, projectId: r.project_id, checkpoint: r.checkpoint, requestedAt: r.requested_at, expiresAt: r.expires_at }));
  }

  async setProjectState(
    projectId: string,
    to: ProjectState,
    from: readonly ProjectState[],
    reason: string | null,
    at: Date,
  ): Promise<ProjectRecord | null> {
    const { rows } = await this.sql.query<ProjectRow>(
      `UPDATE projects SET state = $2::text, paused_reason = CASE WHEN $2::text IN ('paused', 'failed') THEN $3::text END,
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
}
