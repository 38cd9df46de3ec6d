/** Outcomes of transition writes, from the rows APPLY_TRANSITION(S) return. */
import { BudgetExceededError, ProjectNotFoundError, StaleFencingTokenError, TaskNotFoundError, VersionConflictError } from '../../errors.js';
import type { BudgetEffect, ProjectBudget, TransitionOutcome, TransitionWrite } from '../../ports/commit.js';
import type { BatchResultRow, ProjectBudgetColumns } from './transition-sql.js';

export const roundMoney = (x: number): number => (Number.isFinite(x) ? Math.round(x * 10_000) / 10_000 : x);

export const budgetRequested = (b: BudgetEffect): number => (b.reserve ?? 0) - (b.release ?? 0) + (b.spend ?? 0);

/** The project as the statement's budget update left it, when it made one. */
function projectBudget(r: ProjectBudgetColumns): ProjectBudget | undefined {
  if (r.p_id === null || r.p_state === null) return undefined;
  return {
    projectId: r.p_id,
    state: r.p_state,
    pausedReason: r.p_paused_reason,
    budgetLimit: r.p_limit,
    spent: r.p_spent ?? 0,
    reserved: r.p_reserved ?? 0,
  };
}

/** A written write's outcome: its version, its project's budget when it changed it, the task's input when it entered RUNNING. */
export function written(version: number, r: ProjectBudgetColumns & { input: Record<string, unknown> | null }): TransitionOutcome {
  const project = projectBudget(r);
  const outcome: TransitionOutcome = project ? { ok: true, version, project } : { ok: true, version };
  if (r.input !== null) outcome.input = r.input;
  return outcome;
}

/** The outcome of one write of a batch, from its APPLY_TRANSITIONS row (same errors, same precedence as applyTransition). */
export function batchOutcome(w: TransitionWrite, r: BatchResultRow): TransitionOutcome {
  if (r.new_version !== null) return written(r.new_version, r);
  const fail = (error: Error): TransitionOutcome => ({ ok: false, error });
  if (!r.found) return fail(new TaskNotFoundError(w.taskId));
  if (w.fencingToken !== undefined && r.old_token !== null && w.fencingToken !== r.old_token && !(w.fencingToken > r.old_token && w.patch.fencingToken === w.fencingToken)) {
    return fail(new StaleFencingTokenError(w.taskId, w.fencingToken, r.old_token));
  }
  if (!r.task_ok) return fail(new VersionConflictError(w.taskId, w.expectedVersion, r.old_version ?? -1));
  const b = w.budget;
  if (!b) throw new Error(`applyTransitions: write for task ${w.taskId} passed its checks but was not applied`);
  if (!r.project_found) return fail(new ProjectNotFoundError(b.projectId));
  const remaining =
    !r.active ? 0 : r.budget_limit === null ? Infinity : Math.max(r.budget_limit - (r.s_before ?? 0) - (r.r_before ?? 0), 0);
  return fail(new BudgetExceededError(b.projectId, roundMoney(budgetRequested(b)), roundMoney(remaining)));
}
