import { ApprovalError, ProjectNotFoundError } from '../../errors.js';
import type {
  ApprovalDecision,
  ApprovalRecord,
  ApprovalStatus,
  CostObservation,
  DeadLetter,
  EventIngest,
  ProjectRecord,
  ProjectState,
  ProjectStore,
} from '../../ports/project-store.js';
import { toSqlTime, type SqlClient } from './sql-client.js';
import { PostgresTaskStore } from './task-store.js';

interface ProjectRow {
  project_id: string;
  title: string;
  state: ProjectState;
  budget_limit: number | null;
  spent: number;
  reserved: number;
  paused_reason: string | null;
  warning_level: number;
  checkpoints: string[] | null;
  version: number;
  created_at: Date;
  updated_at: Date;
}

interface ApprovalRow {
  approval_id: string;
  project_id: string;
  checkpoint: string;
  status: ApprovalStatus;
  event_id: string;
  summary: Record<string, unknown> | null;
  task_ids: string[];
  comment: string | null;
  decided_by: string | null;
  requested_at: Date;
  expires_at: Date | null;
  decided_at: Date | null;
}

const PROJECT_COLUMNS = `project_id, title, state, budget_limit, spent, reserved, paused_reason, warning_level,
  checkpoints, version, created_at, updated_at`;

function projectFromRow(r: ProjectRow): ProjectRecord {
  return {
    projectId: r.project_id,
    title: r.title,
    state: r.state,
    budgetLimit: r.budget_limit,
    spent: r.spent,
    reserved: r.reserved,
    pausedReason: r.paused_reason,
    warningLevel: r.warning_level,
    checkpoints: r.checkpoints,
    version: r.version,
    createdAt: r.created_at,
    updatedAt: r.updated_at,
  };
}

function approvalFromRow(r: ApprovalRow): ApprovalRecord {
  return {
    approvalId: r.approval_id,
    projectId: r.project_id,
    checkpoint: r.checkpoint,
    status: r.status,
    eventId: r.event_id,
    summary: r.summary ?? {},
    taskIds: r.task_ids,
    comment: r.comment,
    decidedBy: r.decided_by,
    requestedAt: r.requested_at,
    expiresAt: r.expires_at,
    decidedAt: r.decided_at,
  };
}

/**
 * Projects, approvals, idempotency, dead letters and cost observations on PostgreSQL
 * (or PGlite: the same SQL). Every write is one statement or one transaction.
 */
export class PostgresProjectStore implements ProjectStore {
  constructor(private readonly sql: SqlClient) {}

  async ingestEvent(ingest: EventIngest): Promise<boolean> {
    return this.sql.transaction(async (tx) => {
      const marked = await tx.query(
        `INSERT INTO processed_events (event_id, project_id, event_type, processed_at)
         VALUES ($1, $2, $3, $4::timestamp) ON CONFLICT (event_id) DO NOTHING RETURNING event_id`,
        [ingest.eventId, ingest.projectId, ingest.eventType, toSqlTime(ingest.at)],
      );
      if (marked.rowCount === 0) return false;
      if (ingest.project) {
        const p = ingest.project;
        await tx.query(
          `INSERT INTO projects (project_id, title, state, budget_limit, checkpoints, created_at, updated_at)
           VALUES ($1, $2, 'active', $3, $4::jsonb, $5::timestamp, $5::timestamp)
           ON CONFLICT (project_id) DO NOTHING`,
          [p.projectId, p.title, p.budgetLimit, p.checkpoints ? JSON.stringify(p.checkpoints) : null, toSqlTime(ingest.at)],
        );
      }
      if (ingest.tasks.length) await new PostgresTaskStore(tx).createTasks(ingest.tasks, ingest.by);
      if (ingest.approval) {
        const a = ingest.approval;
        await tx.query(
          `INSERT INTO approvals (approval_id, project_id, checkpoint, status, event_id, summary, task_ids, requested_at, expires_at)
           VALUES ($1, $2, $3, 'pending', $4, $5::jsonb, $6::jsonb, $7::timestamp, $8::timestamp)`,
          [a.approvalId, a.projectId, a.checkpoint, a.eventId, JSON.stringify(a.summary), JSON.stringify(a.taskIds), toSqlTime(a.requestedAt), toSqlTime(a.expiresAt)],
        );
      }
      for (const s of ingest.supersede ?? []) {
        await tx.query(
          `UPDATE tasks SET dependencies = (
             SELECT COALESCE(jsonb_agg(CASE WHEN d = $2 THEN $3 ELSE d END), '[]'::jsonb)
             FROM jsonb_array_elements_text(dependencies) AS d)
           WHERE project_id = $1 AND status IN ('PENDING', 'WAITING_APPROVAL')
             AND dependencies @> jsonb_build_array($2::text) AND task_id <> $3`,
          [ingest.projectId, s.oldTaskId, s.newTaskId],
        );
      }
      await tx.query('DELETE FROM outbox WHERE event_id = $1', [ingest.eventId]);
      return true;
    });
  }

  async isEventProcessed(eventId: string): Promise<boolean> {
    const { rowCount } = await this.sql.query('SELECT 1 FROM processed_events WHERE event_id = $1', [eventId]);
    return rowCount > 0;
  }

  async getProject(projectId: string): Promise<ProjectRecord | null> {
    const { rows } = await this.sql.query<ProjectRow>(`SELECT ${PROJECT_COLUMNS} FROM projects WHERE project_id = $1`, [projectId]);
    return rows[0] ? projectFromRow(rows[0]) : null;
  }

  async listProjects(states?: readonly ProjectState[]): Promise<ProjectRecord[]> {
    const { rows } = await this.sql.query<ProjectRow>(
      `SELECT ${PROJECT_COLUMNS} FROM projects WHERE $1::text[] IS NULL OR state = ANY($1::text[]) ORDER BY created_at, project_id`,
      [states ? [...states] : null],
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
      `UPDATE projects SET state = $2::text, paused_reason = CASE WHEN $2::text = 'paused' THEN $3::text ELSE NULL END,
         version = version + 1, updated_at = $5::timestamp
       WHERE project_id = $1 AND state = ANY($4::text[])
       RETURNING ${PROJECT_COLUMNS}`,
      [projectId, to, reason, [...from], toSqlTime(at)],
    );
    if (rows[0]) return projectFromRow(rows[0]);
    if (!(await this.getProject(projectId))) throw new ProjectNotFoundError(projectId);
    return null;
  }

  async setBudgetLimit(projectId: string, limit: number | null, at: Date): Promise<ProjectRecord> {
    const { rows } = await this.sql.query<ProjectRow>(
      `UPDATE projects SET budget_limit = $2, warning_level = 0, version = version + 1, updated_at = $3::timestamp
       WHERE project_id = $1 RETURNING ${PROJECT_COLUMNS}`,
      [projectId, limit, toSqlTime(at)],
    );
    if (!rows[0]) throw new ProjectNotFoundError(projectId);
    return projectFromRow(rows[0]);
  }

  async raiseWarningLevel(projectId: string, level: number): Promise<boolean> {
    const { rowCount } = await this.sql.query(
      'UPDATE projects SET warning_level = $2 WHERE project_id = $1 AND warning_level < $2',
      [projectId, level],
    );
    return rowCount > 0;
  }

  async getApproval(approvalId: string): Promise<ApprovalRecord | null> {
    const { rows } = await this.sql.query<ApprovalRow>('SELECT * FROM approvals WHERE approval_id = $1', [approvalId]);
    return rows[0] ? approvalFromRow(rows[0]) : null;
  }

  async listApprovals(projectId: string, status?: ApprovalStatus): Promise<ApprovalRecord[]> {
    const { rows } = await this.sql.query<ApprovalRow>(
      'SELECT * FROM approvals WHERE project_id = $1 AND ($2::text IS NULL OR status = $2) ORDER BY requested_at, approval_id',
      [projectId, status ?? null],
    );
    return rows.map(approvalFromRow);
  }

  async decideApproval(d: ApprovalDecision): Promise<ApprovalRecord> {
    const { rows } = await this.sql.query<ApprovalRow>(
      `UPDATE approvals SET status = $2, comment = $3, decided_by = $4, decided_at = $5::timestamp
       WHERE approval_id = $1 AND status = 'pending' RETURNING *`,
      [d.approvalId, d.status, d.comment, d.by, toSqlTime(d.at)],
    );
    if (rows[0]) return approvalFromRow(rows[0]);
    const existing = await this.getApproval(d.approvalId);
    if (!existing) throw new ApprovalError(`approval ${d.approvalId} does not exist`);
    throw new ApprovalError(`approval ${d.approvalId} was already ${existing.status}${existing.decidedBy ? ` by ${existing.decidedBy}` : ''}`);
  }

  async listExpiredApprovals(now: Date, limit: number): Promise<ApprovalRecord[]> {
    const { rows } = await this.sql.query<ApprovalRow>(
      `SELECT * FROM approvals WHERE status = 'pending' AND expires_at <= $1::timestamp ORDER BY expires_at, approval_id LIMIT $2`,
      [toSqlTime(now), limit],
    );
    return rows.map(approvalFromRow);
  }

  async extendApproval(approvalId: string, expiresAt: Date): Promise<boolean> {
    const { rowCount } = await this.sql.query(
      `UPDATE approvals SET expires_at = $2::timestamp WHERE approval_id = $1 AND status = 'pending' AND expires_at < $2::timestamp`,
      [approvalId, toSqlTime(expiresAt)],
    );
    return rowCount > 0;
  }

  async recordDeadLetter(l: DeadLetter): Promise<void> {
    await this.sql.query(
      `INSERT INTO dead_letters (task_id, project_id, reason, last_error, attempts, at) VALUES ($1, $2, $3, $4, $5, $6::timestamp)`,
      [l.taskId, l.projectId, l.reason, l.lastError, l.attempts, toSqlTime(l.at)],
    );
  }

  async listDeadLetters(projectId?: string): Promise<DeadLetter[]> {
    const { rows } = await this.sql.query<{ task_id: string; project_id: string; reason: string; last_error: string | null; attempts: number; at: Date }>(
      'SELECT task_id, project_id, reason, last_error, attempts, at FROM dead_letters WHERE $1::text IS NULL OR project_id = $1 ORDER BY id',
      [projectId ?? null],
    );
    return rows.map((r) => ({ taskId: r.task_id, projectId: r.project_id, reason: r.reason, lastError: r.last_error, attempts: r.attempts, at: r.at }));
  }

  async observeCost(taskType: string, agent: string, cost: number, alpha: number, at: Date): Promise<void> {
    await this.sql.query(
      `INSERT INTO cost_observations (task_type, agent, ewma, samples, updated_at) VALUES ($1, $2, $3, 1, $5::timestamp)
       ON CONFLICT (task_type, agent) DO UPDATE SET
         ewma = cost_observations.ewma + $4::numeric * ($3::numeric - cost_observations.ewma),
         samples = cost_observations.samples + 1, updated_at = $5::timestamp`,
      [taskType, agent, cost, alpha, toSqlTime(at)],
    );
  }

  async listCostObservations(): Promise<CostObservation[]> {
    const { rows } = await this.sql.query<{ task_type: string; agent: string; ewma: number; samples: number }>(
      'SELECT task_type, agent, ewma, samples FROM cost_observations ORDER BY task_type, agent',
    );
    return rows.map((r) => ({ taskType: r.task_type, agent: r.agent, ewma: r.ewma, samples: r.samples }));
  }
}
