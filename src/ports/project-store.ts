import type { ApprovalStatus, ProjectState } from '../domain/project.js';

export { PROJECT_STATES, type ApprovalStatus, type ProjectState } from '../domain/project.js';

export interface ProjectRecord {
  projectId: string;
  title: string;
  state: ProjectState;
  /** null: no limit. */
  budgetLimit: number | null;
  spent: number;
  reserved: number;
  pausedReason: string | null;
  /** The highest budget warning level already published for this project (0 = none). */
  warningLevel: number;
  /** The project's own checkpoints; null means the pipeline's. */
  checkpoints: string[] | null;
  version: number;
  createdAt: Date;
  updatedAt: Date;
}

export interface ApprovalRecord {
  approvalId: string;
  projectId: string;
  checkpoint: string;
  status: ApprovalStatus;
  /** The checkpoint event (its id), kept so a rejection can build the revision from it. */
  eventId: string;
  /** The checkpoint event's payload. */
  summary: Record<string, unknown>;
  /** The follow-up tasks created in WAITING_APPROVAL. */
  taskIds: string[];
  comment: string | null;
  decidedBy: string | null;
  requestedAt: Date;
  expiresAt: Date | null;
  decidedAt: Date | null;
}

export type NewApproval = Omit<ApprovalRecord, 'status' | 'comment' | 'decidedBy' | 'decidedAt'>;

export interface NewProject {
  projectId: string;
  title: string;
  budgetLimit: number | null;
  checkpoints: string[] | null;
}

export interface ApprovalDecision {
  approvalId: string;
  status: Exclude<ApprovalStatus, 'pending'>;
  comment: string | null;
  by: string;
  at: Date;
}

/**
 * The project aggregate: projects (state, budget limit, warning level) and their approvals,
 * and which events were handled. Projects and approvals are created, events marked handled
 * and budget amounts changed only through the Commit port (an event's ingest, a task
 * transition's budget effect), in SQL under the project row's lock, so several
 * orchestrator processes can never overspend together.
 * Tables: projects, approvals (processed_events is read here, written by the Commit port).
 */
export interface ProjectStore {
  /** Whether the event was ingested (Commit.ingestEvent marks it in the same transaction). */
  isEventProcessed(eventId: string): Promise<boolean>;
  getProject(projectId: string): Promise<ProjectRecord | null>;
  listProjects(states?: readonly ProjectState[]): Promise<ProjectRecord[]>;
  /**
   * Moves a project to `to` when its state is one of `from`; returns the updated row,
   * or null when it was not in one of those states (nothing changes then).
   * `reason` is kept as paused_reason when pausing and cleared otherwise.
   */
  setProjectState(
    projectId: string,
    to: ProjectState,
    from: readonly ProjectState[],
    reason: string | null,
    at: Date,
  ): Promise<ProjectRecord | null>;
  /** Sets the limit (null: none) and resets the warning level below the new ratio. */
  setBudgetLimit(projectId: string, limit: number | null, at: Date): Promise<ProjectRecord>;
  /**
   * Raises the project's published warning level to `level` if it is lower; true when
   * this call raised it (one warning per crossing, across processes).
   */
  raiseWarningLevel(projectId: string, level: number): Promise<boolean>;
  getApproval(approvalId: string): Promise<ApprovalRecord | null>;
  listApprovals(projectId: string, status?: ApprovalStatus): Promise<ApprovalRecord[]>;
  /**
   * Decides a pending approval (compare-and-set on status = 'pending'). Exactly one of
   * concurrent decisions wins; the others, and decisions on unknown approvals, throw
   * ApprovalError.
   */
  decideApproval(decision: ApprovalDecision): Promise<ApprovalRecord>;
  /** Pending approvals whose expiry is at or before `now`. */
  listExpiredApprovals(now: Date, limit: number): Promise<ApprovalRecord[]>;
  /**
   * Keeps a pending approval waiting until `expiresAt` (the "remind" timeout policy), if
   * its expiry is still `from` (compare-and-set: of two sweeps, one extends). True when extended.
   */
  extendApproval(approvalId: string, from: Date, expiresAt: Date): Promise<boolean>;
}
