import type { ApprovalRecord } from '../ports/project-store.js';

/** The body of an approval request (and of its reminders) on the approvals.requested subject. */
export function requestBody(approval: Pick<ApprovalRecord, 'approvalId' | 'projectId' | 'checkpoint' | 'summary' | 'taskIds' | 'expiresAt'>, reminder = false) {
  return {
    approvalId: approval.approvalId,
    projectId: approval.projectId,
    checkpoint: approval.checkpoint,
    summary: approval.summary,
    taskIds: approval.taskIds,
    expiresAt: approval.expiresAt ? approval.expiresAt.toISOString() : null,
    ...(reminder ? { reminder: true } : {}),
  };
}
