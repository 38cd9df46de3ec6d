import type { ApprovalDecision, ApprovalRecord, ProjectRecord, ProjectStepWrite, StoredProject } from '../ports/project-store.js';
import {
  BUDGET_EXHAUSTED,
  PROJECT_MACHINE_VERSION,
  budgetLevelStateOf,
  decisionKey,
  isOpen,
  projectMachine,
  projectStateOf,
  resolveProjectSnapshot,
  storedStatus,
  warningLevelOf,
  type ApprovalEntry,
  type BudgetFigures,
  type ProjectEvent,
  type ProjectPolicy,
  type ProjectSnapshot,
} from '../machines/project-machine.js';
import type { BudgetLevel } from '../domain/messages.js';

/** Helpers between the pure project machine and the stored project row. */

export function figuresOf(row: Pick<ProjectRecord, 'budgetLimit' | 'spent' | 'reserved'>): BudgetFigures {
  return { limit: row.budgetLimit, spent: row.spent, reserved: row.reserved };
}

/** An approval row as the machine's entry (a pending row is `requested`). */
export function entryOf(approval: ApprovalRecord): ApprovalEntry {
  return {
    checkpoint: approval.checkpoint,
    status: approval.status === 'pending' ? 'requested' : approval.status,
    expiresAt: approval.expiresAt ? approval.expiresAt.getTime() : null,
    reminders: 0,
    decidedBy: approval.decidedBy,
    comment: approval.comment,
    decidedAt: approval.decidedAt ? approval.decidedAt.getTime() : null,
  };
}

/** The request an approval row is, as an event (for a request the machine has not taken yet). */
export function requestOf(approval: Pick<ApprovalRecord, 'approvalId' | 'checkpoint' | 'expiresAt'>): ProjectEvent {
  return {
    type: 'REQUEST_APPROVAL',
    approvalId: approval.approvalId,
    checkpoint: approval.checkpoint,
    expiresAt: approval.expiresAt ? approval.expiresAt.getTime() : null,
  };
}

/** The level a row without a usable snapshot is at: its published warning level, or a pause for the budget. */
function levelOfColumns(row: ProjectRecord): BudgetLevel {
  if (row.state === 'paused' && row.pausedReason === BUDGET_EXHAUSTED) return 'exhausted';
  return row.warningLevel >= 100 ? 'exhausted' : row.warningLevel > 0 ? 'warning' : 'ok';
}

/**
 * Whether a stored snapshot can be used: written by this machine version and agreeing with
 * the state columns written with it. Anything else (an old row, a plain state write that
 * cleared it, another version) is resolved from the columns.
 */
export function usableSnapshot(stored: StoredProject): { value: { lifecycle: string; budget: string }; context: { reason: string | null; approvals: Record<string, ApprovalEntry> } } | null {
  if (stored.machineVersion !== PROJECT_MACHINE_VERSION || typeof stored.snapshot !== 'object' || stored.snapshot === null) return null;
  const s = stored.snapshot as { value?: { lifecycle?: unknown; budget?: unknown }; context?: { reason?: unknown; approvals?: unknown } };
  const row = stored.project;
  if (s.value?.lifecycle !== row.state || !['ok', 'warning', 'exhausted'].includes(String(s.value.budget))) return null;
  if (typeof s.context !== 'object' || s.context === null || typeof s.context.approvals !== 'object' || s.context.approvals === null) return null;
  if ((row.state === 'paused' || row.state === 'failed') && s.context.reason !== row.pausedReason) return null;
  return s as never;
}

/**
 * The snapshot of a stored row. A usable stored snapshot is taken as it is, its figures
 * and policy replaced (the SQL's amounts, this process's configuration); `approvals` (the
 * rows, when given) correct it where a decision was written outside the machine. Without
 * one, it is resolved from the columns and the approval rows (`approvals` required then).
 */
export function snapshotOfStored(stored: StoredProject, policy: ProjectPolicy, approvals?: readonly ApprovalRecord[]): ProjectSnapshot {
  const row = stored.project;
  const usable = usableSnapshot(stored);
  if (!usable) {
    return resolveProjectSnapshot({
      projectId: row.projectId,
      state: row.state,
      reason: row.pausedReason,
      level: levelOfColumns(row),
      budget: figuresOf(row),
      policy,
      approvals: Object.fromEntries((approvals ?? []).map((a) => [a.approvalId, entryOf(a)])),
    });
  }
  const entries = { ...usable.context.approvals };
  for (const a of approvals ?? []) {
    const known = entries[a.approvalId];
    // A request the snapshot does not know yet is left to its REQUEST_APPROVAL step (which announces it).
    if (!known) continue;
    const expiresAt = a.expiresAt ? a.expiresAt.getTime() : null;
    if (storedStatus(known.status) !== a.status || (isOpen(known) && known.expiresAt !== expiresAt)) entries[a.approvalId] = entryOf(a);
  }
  return resolveProjectSnapshot({
    projectId: row.projectId,
    state: row.state,
    reason: usable.context.reason,
    level: usable.value.budget as BudgetLevel,
    budget: figuresOf(row),
    policy,
    approvals: entries,
  });
}

/** Whether a stored row needs its approval rows to be resolved (no usable snapshot). */
export function needsApprovals(stored: StoredProject): boolean {
  return usableSnapshot(stored) === null;
}

/**
 * What a step writes, or null when it changes nothing that is stored and asks for no
 * reaction: the snapshot and its columns, the new limit of a SET_LIMIT, and the approval
 * rows whose request it decided or extended.
 */
export function planStep(
  row: ProjectRecord,
  before: ProjectSnapshot,
  after: ProjectSnapshot,
  events: readonly ProjectEvent[],
  reacts: boolean,
  at: Date,
): ProjectStepWrite | null {
  const limitEvent = [...events].reverse().find((e) => e.type === 'SET_LIMIT');
  if (!reacts && !limitEvent && decisionKey(before) === decisionKey(after)) return null;
  const decisions: ApprovalDecision[] = [];
  const extensions: { approvalId: string; from: Date | null; expiresAt: Date }[] = [];
  for (const [approvalId, entry] of Object.entries(after.context.approvals)) {
    const was = before.context.approvals[approvalId];
    if (!was) continue;
    if (isOpen(was) && !isOpen(entry)) {
      decisions.push({
        approvalId,
        status: storedStatus(entry.status) as ApprovalDecision['status'],
        comment: entry.comment,
        by: entry.decidedBy ?? 'unknown',
        at: new Date(entry.decidedAt ?? at.getTime()),
      });
    } else if (isOpen(entry) && entry.expiresAt !== was.expiresAt && entry.expiresAt !== null) {
      extensions.push({ approvalId, from: was.expiresAt === null ? null : new Date(was.expiresAt), expiresAt: new Date(entry.expiresAt) });
    }
  }
  const state = projectStateOf(after);
  const { policy } = after.context;
  return {
    projectId: row.projectId,
    expectedVersion: row.version,
    state,
    pausedReason: state === 'paused' || state === 'failed' ? after.context.reason : null,
    warningLevel: warningLevelOf(budgetLevelStateOf(after), policy.warningThreshold),
    snapshot: projectMachine.getPersistedSnapshot(after),
    machineVersion: PROJECT_MACHINE_VERSION,
    ...(limitEvent?.type === 'SET_LIMIT' ? { budgetLimit: { limit: limitEvent.figures.limit } } : {}),
    ...(decisions.length ? { decisions } : {}),
    ...(extensions.length ? { extensions } : {}),
    at,
  };
}
