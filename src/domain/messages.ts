import { z } from 'zod';
import { JsonObject, Money, ProjectId, TaskId, TaskStatus } from './task.js';
import { PipelineEvent } from './pipeline.js';
import { jsonProblem, StorableText } from './storable.js';
import { outputArtifactsIssues } from './artifacts.js';
import { PROJECT_STATES, type ProjectState } from './project.js';

/**
 * The bodies of the wire contract (NATS subjects under the prefix, default `lap`).
 * Inbound bodies are validated; extra fields are allowed and ignored. Every string of an
 * inbound body, and every JSON object in it, must be one PostgreSQL can store (storable.ts:
 * no NUL, no unpaired surrogate, JSON at most 64 levels deep): a body that breaks this is a
 * schema violation, dead-lettered on its first delivery.
 */

/** `lap.tasks.<agent>`: one per dispatch. */
export const TaskDispatch = z.object({
  taskId: TaskId,
  projectId: ProjectId,
  taskType: z.string(),
  input: JsonObject,
  attempt: z.number().int().positive(),
  deadline: z.string(),
  fencingToken: z.number().int().nonnegative(),
});
export type TaskDispatch = z.infer<typeof TaskDispatch>;

/** Dispatches one message may carry (see TaskDispatchBatch). */
export const MAX_DISPATCHES_PER_MESSAGE = 1_000;

/**
 * `lap.tasks.<agent>`, the batch form: `{ "dispatches": [TaskDispatch, …] }`, sent only to
 * the agents a deployment names in DISPATCH_BATCH (createAgentWorker takes both forms; an
 * agent of its own reads this form only once it is named there). Each dispatch is handled
 * as if it had come alone; the agent acknowledges the message once every one of them has
 * its result stored, so a worker that dies redelivers the whole message (results of its
 * tasks that were already stored come again and are found applied).
 */
export const TaskDispatchBatch = z.object({ dispatches: z.array(z.unknown()).min(1).max(MAX_DISPATCHES_PER_MESSAGE) });
export type TaskDispatchBatch = z.infer<typeof TaskDispatchBatch>;

/** `lap.results.<projectId>` (inbound). */
export const TaskResult = z
  .object({
    taskId: TaskId,
    status: z.enum(['completed', 'failed']),
    fencingToken: z.number().int().nonnegative(),
    output: JsonObject.optional(),
    actualCost: Money.optional(),
    error: StorableText.max(10_000).optional(),
  })
  .refine((r) => r.status !== 'failed' || r.error !== undefined, { message: 'a failed result needs error', path: ['error'] })
  .superRefine((r, ctx) => {
    // The output's `artifacts`, when it names some (artifacts.ts). Artifacts PostgreSQL
    // cannot store are reported once, by JsonObject.
    if (r.output?.artifacts === undefined || jsonProblem(r.output.artifacts)) return;
    for (const issue of outputArtifactsIssues(r.output)) ctx.addIssue({ code: 'custom', path: ['output', ...issue.path], message: issue.message });
  });
export type TaskResult = z.infer<typeof TaskResult>;

/** Results one message may carry (see TaskResultBatch). */
export const MAX_RESULTS_PER_MESSAGE = 1_000;

/**
 * `lap.results.<projectId>` (inbound), the batch form: `{ "results": [TaskResult, …] }`
 * (no `taskId` of its own), results of tasks of that project. Each result is handled as if it had come alone; the
 * message is acknowledged once every one of them is durable or dead-lettered.
 */
export const TaskResultBatch = z.object({ results: z.array(TaskResult).min(1).max(MAX_RESULTS_PER_MESSAGE) });
export type TaskResultBatch = z.infer<typeof TaskResultBatch>;

/** `lap.heartbeats.<projectId>` (inbound): extends the running attempt's deadline. */
export const Heartbeat = z.object({ taskId: TaskId, fencingToken: z.number().int().nonnegative() });
export type Heartbeat = z.infer<typeof Heartbeat>;

/**
 * `lap.approvals.requested.<projectId>` (outbound): small whatever the checkpoint's size —
 * counts, a bounded summary and where to look, never every task id.
 */
export interface ApprovalRequested {
  approvalId: string;
  projectId: string;
  checkpoint: string;
  /**
   * The checkpoint event's payload, bounded (at most 16 KiB as JSON): strings cut with their
   * length, arrays as `{ count, first }` (their length and first elements), deep objects shortened.
   */
  summary: Record<string, unknown>;
  counts: {
    /** The follow-up tasks waiting for the decision. */
    tasks: number;
    /** Where a rejection may name shots (a preview): how many there are, indexes 0 to shots - 1. */
    shots?: number;
  };
  /** Where to see the project (its tasks, budget and pending requests). */
  details: string;
  expiresAt: string | null;
  /** Set on a reminder (the "remind" timeout policy). */
  reminder?: boolean;
}

/** A pending request as the project's status (`{"action":"status"}`, `orchestrator status`) shows it. */
export type PendingApproval = Omit<ApprovalRequested, 'details' | 'reminder'> & { requestedAt: string };

/** `lap.approvals.decided.<projectId>` (inbound). */
export const ApprovalDecided = z.object({
  approvalId: StorableText.min(1).max(50),
  decision: z.enum(['approved', 'rejected']),
  comment: StorableText.max(10_000).optional(),
  by: StorableText.min(1).max(100),
  /**
   * Rejection at PREVIEW_VIDEO_READY: the shots (indexes, below the request's `counts.shots`,
   * each once) to edit; absent, every shot is redone. Refused (dead-lettered, nothing
   * changes) on an approval, at another checkpoint, or naming a shot the preview has not.
   */
  shots: z.array(z.number().int().nonnegative()).optional(),
});
export type ApprovalDecided = z.infer<typeof ApprovalDecided>;

/** `lap.approvals.expired.<projectId>` (outbound). */
export interface ApprovalExpired {
  approvalId: string;
  projectId: string;
  checkpoint: string;
  policy: 'reject' | 'approve' | 'remind';
  at: string;
}

/** `lap.status.<projectId>.<taskId>` (outbound): every transition, once durable. */
export interface TaskStatusMessage {
  taskId: string;
  projectId: string;
  taskType: string;
  from: TaskStatus | null;
  to: TaskStatus;
  at: string;
  attempt: number;
}

export type BudgetLevel = 'ok' | 'warning' | 'exhausted';

/** `lap.budget.<projectId>` (outbound) and the reply to `status`. */
export interface BudgetStatus {
  projectId: string;
  limit: number | null;
  spent: number;
  reserved: number;
  /** limit - spent - reserved; null without a limit. */
  remaining: number | null;
  /** (spent + reserved) / limit; null without a limit. */
  ratio: number | null;
  level: BudgetLevel;
  forecast: {
    /** Estimated cost of the known tasks not yet paid or reserved, and of the stages still to come. */
    remainingCost: number;
    /** spent + reserved + remainingCost. */
    total: number;
    /** The forecast does not fit in the remaining budget. */
    exceedsBudget: boolean;
  };
}

export type ProjectStateName = ProjectState;

/** `lap.projects.<projectId>` (outbound). */
export interface ProjectStatusMessage {
  projectId: string;
  state: ProjectStateName;
  reason: string | null;
}

/** `lap.dlq` (outbound): a rejected inbound message, with why. */
export interface DeadLetterMessage {
  subject: string;
  reason: string;
  data: string;
}

/** `lap.control.<projectId>` (request-reply). */
export const ControlRequest = z.discriminatedUnion('action', [
  z.object({ action: z.literal('pause'), reason: StorableText.max(500).optional() }),
  z.object({ action: z.literal('resume') }),
  z.object({ action: z.literal('cancel'), reason: StorableText.max(500).optional() }),
  z.object({ action: z.literal('set_budget'), limit: Money.nullable() }),
  /** A failed project: its failed tasks and their cancelled dependents planned again, the project active. */
  z.object({ action: z.literal('retry') }),
  z.object({ action: z.literal('status') }),
]);
export type ControlRequest = z.infer<typeof ControlRequest>;

export { PipelineEvent };

/**
 * `lap.query.<kind>` (request-reply): the read side for operators (the CLI's `projects`,
 * `tasks`, `dlq`). The kind is the subject's last token; the body its schema's. Each answer
 * is one page: at most `limit` items, newest first for projects and dead letters, in
 * creation order for tasks, with `next` (the cursor to pass as `after` for the next page,
 * or null on the last one).
 */
export const QUERY_LIMITS = {
  projects: { default: 50, max: 500 },
  tasks: { default: 500, max: 1_000 },
  dead_letters: { default: 50, max: 500 },
} as const;

const limit = (kind: keyof typeof QUERY_LIMITS) => z.number().int().min(1).max(QUERY_LIMITS[kind].max).default(QUERY_LIMITS[kind].default);

export const ProjectsQuery = z.object({
  /** Only projects in these states (absent: all). */
  states: z.array(z.enum(PROJECT_STATES as [ProjectState, ...ProjectState[]])).max(5).optional(),
  limit: limit('projects'),
  /** The previous page's `next`: the projects created before this one. */
  after: ProjectId.optional(),
});

export const TasksQuery = z.object({
  projectId: ProjectId,
  /** Only tasks in these states (absent: all). */
  statuses: z.array(TaskStatus).max(7).optional(),
  limit: limit('tasks'),
  /** The previous page's `next`: the tasks created after this one. */
  after: TaskId.optional(),
});

export const DeadLettersQuery = z.object({
  /** Only this project's (absent: every project's). */
  projectId: ProjectId.optional(),
  limit: limit('dead_letters'),
  /** The previous page's `next`: the dead letters recorded before this one. */
  after: z.number().int().positive().optional(),
});

export const QUERY_KINDS = ['projects', 'tasks', 'dead_letters'] as const;
export type QueryKind = (typeof QUERY_KINDS)[number];

export const QueryRequest = z.discriminatedUnion('query', [
  ProjectsQuery.extend({ query: z.literal('projects') }),
  TasksQuery.extend({ query: z.literal('tasks') }),
  DeadLettersQuery.extend({ query: z.literal('dead_letters') }),
]);
export type QueryRequest = z.infer<typeof QueryRequest>;
export type QueryRequestInput = z.input<typeof QueryRequest>;

/** One project in the `projects` answer. */
export interface ProjectSummary {
  projectId: string;
  title: string;
  state: ProjectState;
  reason: string | null;
  budget: { limit: number | null; spent: number; reserved: number };
  /** Tasks by state (states without tasks left out). */
  tasks: Partial<Record<TaskStatus, number>>;
  /** The open approval requests (the checkpoints a person is asked to judge). */
  pendingApprovals: { approvalId: string; checkpoint: string; requestedAt: string }[];
  createdAt: string;
  updatedAt: string;
}

/** One task in the `tasks` answer: its place in the graph and how it went, not its input. */
export interface TaskView {
  taskId: string;
  taskType: string;
  agent: string;
  status: TaskStatus;
  priority: number;
  /** Its dependencies (at most TASK_VIEW_DEPENDENCIES of them; `dependencyCount` says how many there are). */
  dependencies: string[];
  dependencyCount: number;
  attempts: number;
  maxAttempts: number;
  estimatedCost: number | null;
  actualCost: number | null;
  /** The last error, cut to 500 characters. */
  lastError: string | null;
  /** The URIs (`scheme://…`) among the output's top-level values, at most 10: images, videos, files. */
  artifacts: Record<string, string>;
  /** The shot it works on, when its input names one (`shotIndex`). */
  shotIndex?: number;
  createdAt: string;
  startedAt: string | null;
  completedAt: string | null;
}

/** A task's dependencies listed in a TaskView, at most. */
export const TASK_VIEW_DEPENDENCIES = 100;

/** One dead letter in the `dead_letters` answer. */
export interface DeadLetterView {
  id: number;
  taskId: string;
  projectId: string;
  reason: string;
  lastError: string | null;
  attempts: number;
  at: string;
}

export interface QueryPage<T, C> {
  items: T[];
  /** Pass as `after` for the next page; null: this is the last one. */
  next: C | null;
}
