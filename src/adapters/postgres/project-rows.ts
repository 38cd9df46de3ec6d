/** Rows of the projects and approvals tables, and their records. */
import type { ApprovalRecord, ApprovalStatus, ProjectRecord, ProjectState } from '../../ports/project-store.js';

export interface ProjectRow {
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

export interface ApprovalRow {
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

export const PROJECT_COLUMNS = `project_id, title, state, budget_limit, spent, reserved, paused_reason, warning_level,
  checkpoints, version, created_at, updated_at`;

export const APPROVAL_COLUMNS = `approval_id, project_id, checkpoint, status, event_id, summary, task_ids, comment,
  decided_by, requested_at, expires_at, decided_at`;

export function projectFromRow(r: ProjectRow): ProjectRecord {
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

export function approvalFromRow(r: ApprovalRow): ApprovalRecord {
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
