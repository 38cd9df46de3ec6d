import { ApprovalError, ProjectNotFoundError } from '../../errors.js';
import type { ApprovalDecision, ApprovalRecord, ApprovalStatus, ProjectRecord, ProjectState, ProjectStore } from '../../ports/project-store.js';
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
  version = version + 1,
  updated_at = $3::timestamp
WHERE project_id = $1::text
RETURNING ${PROJECT_COLUMNS}`;

/**
 * The project aggregate on PostgreSQL (or PGlite: the same SQL): projects and approvals.
 * Writes only its own tables (projects, approvals), one statement each; what an event's
 * ingest or a transition's budget effect writes goes through PostgresCommit.
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

  async setProjectState(
    projectId: string,
    to: ProjectState,
    from: readonly ProjectState[],
    reason: string | null,
    at: Date,
  ): Promise<ProjectRecord | null> {
    const { rows } = await this.sql.query<ProjectRow>(
      `UPDATE projects SET state = $2::text, paused_reason = CASE WHEN $2::text = 'paused' THEN $3::text END,
         version = version + 1, updated_at = $5::timestamp
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
