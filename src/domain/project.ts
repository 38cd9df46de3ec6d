/**
 * A project's lifecycle state and an approval's status: plain domain values, shared by
 * the project machine, the ports (ProjectStore, the Commit port's budget effects) and the wire
 * messages. They live here, not in a port, so that neither the machines nor one port
 * has to import another port for them.
 */
/**
 * `failed`: a task of the project failed for good (its attempts used up) and its dependents
 * were cancelled, so the project cannot finish as planned. Like a paused project it starts
 * nothing new; the `retry` control action makes it active again with fresh copies of what
 * failed, or it is cancelled.
 */
export type ProjectState = 'active' | 'paused' | 'failed' | 'completed' | 'cancelled';
export const PROJECT_STATES: readonly ProjectState[] = ['active', 'paused', 'failed', 'completed', 'cancelled'];

export type ApprovalStatus = 'pending' | 'approved' | 'rejected' | 'expired';

/** The pause reason of a project its budget stopped (resumed when the limit is raised). */
export const BUDGET_EXHAUSTED = 'budget_exhausted';

/**
 * Whether a project's tasks may become READY: while it is active, and once it has
 * completed — its remaining tasks (an extra task, a retry under way) finish on their own.
 * Paused, failed and cancelled projects start nothing new.
 */
export function acceptsWork(state: string | undefined): boolean {
  return state === 'active' || state === 'completed';
}
