import type { DeadLetterView } from '../domain/messages.js';
import type { ProjectState } from '../domain/project.js';
import type { TaskStatus } from '../domain/task.js';
import type { Outbound } from './event-bus.js';

/**
 * The review console's view of the orchestrator: what its pages show (read from the
 * stores, the authoritative rows) and the actions a person takes there, through the same
 * code paths as the NATS control and decision subjects. The HTTP routes (src/http/console.ts)
 * serve this port; src/console/ implements it. Times are ISO 8601 strings, money numbers.
 */

/** What an output names as something to look at (the data contract's `artifacts`, or an `image`/`video` field). */
export interface ArtifactView {
  /** As the agent gave it. */
  uri: string;
  /** `image/png`, `video/mp4`, `text/plain`…; guessed from the URI when the agent named none. */
  mediaType: string;
  shotIndex?: number;
  title?: string;
  /** Where a browser loads it (an http(s) or data: URL, `/artifacts/…`); null when it cannot (an `s3://` URI: shown as text with a copy button). */
  href: string | null;
  /** The task whose output names it. */
  taskId: string;
}

export interface BudgetView {
  limit: number | null;
  spent: number;
  reserved: number;
  /** spent + reserved + the estimate of what is still to run. */
  forecast: number;
  /** The forecast does not fit the limit. */
  exceedsBudget: boolean;
}

export interface PendingReviewRef {
  approvalId: string;
  checkpoint: string;
  requestedAt: string;
  expiresAt: string | null;
}

export interface ProjectCard {
  projectId: string;
  title: string;
  state: ProjectState;
  /** Why it is paused or failed. */
  reason: string | null;
  /** Tasks by state. */
  tasks: Partial<Record<TaskStatus, number>>;
  budget: BudgetView;
  pendingReviews: PendingReviewRef[];
  createdAt: string;
  updatedAt: string;
}

/** How a task came to be: the pipeline's work, a revision after a rejection, or a repair (a failed QA). */
export type TaskOrigin = 'work' | 'revision' | 'repair';

export interface GraphNode {
  taskId: string;
  taskType: string;
  status: TaskStatus;
  origin: TaskOrigin;
  shotIndex?: number;
  attempts: number;
  /** The layout's centre of the node, and its size. */
  x: number;
  y: number;
  width: number;
  height: number;
}

export interface GraphEdge {
  /** The dependency, or the task that raised the event. */
  from: string;
  /** The task that waits for it, or that its raised event created. */
  to: string;
  /** `dependency`: `to` waits for `from`; `event`: `from`'s raised event (a checkpoint's approval, a rejection, a failed QA) created `to`. */
  kind: 'dependency' | 'event';
  /** The edge's route, from `from` to `to`. */
  points: { x: number; y: number }[];
}

/** The project's tasks laid out left to right (dependencies first). */
export interface TaskGraph {
  width: number;
  height: number;
  nodes: GraphNode[];
  edges: GraphEdge[];
  /** How many tasks were left out: a graph lays out the first 400 by creation; absent when none was. */
  truncated?: number;
}

/** A stage of the timeline: the tasks of one type, from the first start to the last end. */
export interface StageSpan {
  taskType: string;
  tasks: number;
  /** null: none has started. */
  startedAt: string | null;
  /** null: not all of them have ended. */
  endedAt: string | null;
  /** The tasks by state. */
  statuses: Partial<Record<TaskStatus, number>>;
}

/** The budget at a moment: what was spent, reserved and forecast then. */
export interface BudgetPoint {
  at: string;
  spent: number;
  reserved: number;
  forecast: number;
}

export interface CheckpointEntry {
  approvalId: string;
  checkpoint: string;
  status: 'pending' | 'approved' | 'rejected' | 'expired';
  requestedAt: string;
  expiresAt: string | null;
  decidedAt: string | null;
  by: string | null;
  comment: string | null;
}

export interface ProjectPage {
  project: ProjectCard;
  graph: TaskGraph;
  timeline: StageSpan[];
  budgetHistory: BudgetPoint[];
  checkpoints: CheckpointEntry[];
  /** The control actions its state allows now. */
  actions: { pause: boolean; resume: boolean; cancel: boolean; retry: boolean; setBudget: boolean };
}

/** What a review shows of the checkpoint it judges. */
export type ReviewContent =
  | { kind: 'script'; script: string }
  /** One row per shot; `columns`: the keys the shots carry, in a stable order. */
  | { kind: 'shots'; shots: Record<string, unknown>[]; columns: string[] }
  /** A preview or final video, with the shots' latest keyframes (a preview rejection names shots among them). */
  | { kind: 'video'; video: ArtifactView | null; keyframes: ArtifactView[] }
  /** Another checkpoint: its payload. */
  | { kind: 'payload'; payload: Record<string, unknown> };

export interface Review {
  approvalId: string;
  projectId: string;
  projectTitle: string;
  checkpoint: string;
  status: CheckpointEntry['status'];
  requestedAt: string;
  expiresAt: string | null;
  /** What happens when it expires (`reject`, `approve`, `remind`). */
  expiryPolicy: string | null;
  content: ReviewContent;
  /** How many shots a rejection may name (indexes 0 to shots - 1); null: it names none. */
  shots: number | null;
  budget: BudgetView;
  /** What approving starts: the tasks waiting on this approval, and their estimated cost. */
  approving: { tasks: number; estimatedCost: number };
}

export interface TransitionView {
  at: string;
  from: TaskStatus | null;
  to: TaskStatus;
  event: string;
  by: string;
  /** The fencing token of the lease the transition was made under, when it names one. */
  fencingToken: number | null;
  detail: Record<string, unknown> | null;
}

export interface TaskPage {
  taskId: string;
  projectId: string;
  taskType: string;
  agent: string;
  status: TaskStatus;
  origin: TaskOrigin;
  priority: number;
  dependencies: string[];
  input: Record<string, unknown>;
  output: Record<string, unknown> | null;
  attempts: number;
  maxAttempts: number;
  lastError: string | null;
  estimatedCost: number | null;
  actualCost: number | null;
  fencingToken: number | null;
  createdAt: string;
  startedAt: string | null;
  completedAt: string | null;
  artifacts: ArtifactView[];
  transitions: TransitionView[];
}

/** A task given up on (attempts used up, or a raised event that could not be handled): as the `dead_letters` query answers it. */
export type DeadTaskView = DeadLetterView;

/** An inbound message the bus refused (not JSON, a schema violation, a stale fencing token…). */
export interface RejectedMessageView {
  /** Its place in the dead-letter stream (or the order it was refused in). */
  seq: number;
  at: string;
  subject: string;
  reason: string;
  /** The message as it came. */
  data: string;
}

export interface DeadLettersPage {
  tasks: DeadTaskView[];
  messages: RejectedMessageView[];
}

/** The answer to an action: as the control subject's replies (`{ ok, result }` or `{ ok, error: { code, message } }`). */
export type ActionReply = { ok: true; result: unknown } | { ok: false; error: { code: string; message: string } };

/**
 * What the console streams to browsers (Server-Sent Events): what the orchestrator
 * publishes once the change behind it is durable (transitions, budget changes, project
 * states, approval requests and expiries, dead letters).
 */
export type ConsoleEvent = Outbound;

export interface ConsoleBackend {
  /** The projects, the latest first (at most `limit`, default 100). */
  projects(limit?: number): Promise<ProjectCard[]>;
  /** ProjectNotFoundError for an unknown id. */
  project(projectId: string): Promise<ProjectPage>;
  /** The pending reviews across projects, the oldest first (the implementation may bound how many). */
  inbox(): Promise<Review[]>;
  /** One review, pending or decided; ApprovalError (ERR_APPROVAL) for an unknown id. */
  review(approvalId: string): Promise<Review>;
  /** TaskNotFoundError for an unknown id. */
  task(taskId: string): Promise<TaskPage>;
  deadLetters(): Promise<DeadLettersPage>;
  /** A control request (the control subject's body: `{ action: 'pause' | 'resume' | 'cancel' | 'retry' | 'set_budget', … }`), checked as the subject checks it. */
  control(projectId: string, request: unknown): Promise<ActionReply>;
  /** A decision (the decision subject's body: `{ approvalId, decision, comment?, by, shots? }`), checked as the subject checks it. */
  decide(projectId: string, decision: unknown): Promise<ActionReply>;
  /** Hears every ConsoleEvent until closed; `ready` once the events reach it (the feed's subscription is in place). */
  subscribe(listener: (event: ConsoleEvent) => void): { ready: Promise<void>; close(): void };
}
