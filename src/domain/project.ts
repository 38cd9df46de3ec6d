/**
 * A project's lifecycle state and an approval's status: plain domain values, shared by
 * the project machine, the ports (ProjectStore, the Commit port's budget effects) and the wire
 * messages. They live here, not in a port, so that neither the machines nor one port
 * has to import another port for them.
 */
export type ProjectState = 'active' | 'paused' | 'completed' | 'cancelled';
export const PROJECT_STATES: readonly ProjectState[] = ['active', 'paused', 'completed', 'cancelled'];

export type ApprovalStatus = 'pending' | 'approved' | 'rejected' | 'expired';
