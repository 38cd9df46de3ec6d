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
  /** Why the project is paused, or failed (naming the task that failed for good); null in the other states. */
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

/** A pending request named, without its summary or tasks (see ProjectStore.listPendingApprovals). */
export type PendingApprovalRef = Pick<ApprovalRecord, 'approvalId' | 'projectId' | 'checkpoint' | 'requestedAt' | 'expiresAt'>;

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

/** A project row with the project machine's snapshot stored in it. */
export interface StoredProject {
  project: ProjectRecord;
  /** The persisted snapshot; null: none stored (a row written before the machine, or by a plain state write). */
  snapshot: unknown;
  /** The machine version that wrote `snapshot`. */
  machineVersion: string | null;
}

/**
 * One step of the project machine, written all or nothing: the snapshot and the columns it
 * determines, with a compare-and-set on the row's version, and the approval rows the step
 * changed (each a compare-and-set of its own on a pending row).
 */
export interface ProjectStepWrite {
  projectId: string;
  /** The row version the step was decided on. */
  expectedVersion: number;
  state: ProjectState;
  /** Kept when paused or failed; the store writes null otherwise. */
  pausedReason: string | null;
  /** The budget level as the `warning_level` column (a percentage of the limit; 0 = none). */
  warningLevel: number;
  snapshot: unknown;
  machineVersion: string;
  /** A new budget limit (null: none). */
  budgetLimit?: { limit: number | null };
  /** Pending requests decided by the step. */
  decisions?: readonly ApprovalDecision[];
  /** Pending requests that wait longer (a reminder): their expiry moves from `from` to `expiresAt`. */
  extensions?: readonly { approvalId: string; from: Date | null; expiresAt: Date }[];
  at: Date;
}

export interface ProjectStepCommit {
  project: ProjectRecord;
  /** The approval rows as the step left them (decided or extended). */
  approvals: ApprovalRecord[];
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
   * A page of projects, newest first (creation time, then id): at most `limit`, only of
   * `states` when given, created before the project `after` when given (keyset: the
   * previous page's last id; an unknown one gives an empty page).
   */
  listProjectsPage(page: { states?: readonly ProjectState[]; after?: string; limit: number }): Promise<ProjectRecord[]>;
  /** The pending requests of these projects, narrow (no summary, no task ids), oldest first. */
  listPendingApprovals(projectIds: readonly string[]): Promise<PendingApprovalRef[]>;
  /**
   * Moves a project to `to` when its state is one of `from`; returns the updated row,
   * or null when it was not in one of those states (nothing changes then).
   * `reason` is kept as paused_reason when pausing and cleared otherwise. A plain write,
   * outside the project machine: the stored snapshot is cleared (it is resolved from the
   * columns again when next read); the orchestrator itself uses commitProjectStep.
   */
  setProjectState(
    projectId: string,
    to: ProjectState,
    from: readonly ProjectState[],
    reason: string | null,
    at: Date,
  ): Promise<ProjectRecord | null>;
  /** The project row and the project machine's snapshot stored in it. */
  getProjectSnapshot(projectId: string): Promise<StoredProject | null>;
  /**
   * Commits one step of the project machine (see ProjectStepWrite) in one transaction.
   * Null, writing nothing, when the row's version is not `expectedVersion` (another
   * process took a step first: decide again on the row read fresh). A decision or an
   * extension whose request is no longer pending writes nothing and throws ApprovalError;
   * an unknown project throws ProjectNotFoundError.
   */
  commitProjectStep(step: ProjectStepWrite): Promise<ProjectStepCommit | null>;
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
