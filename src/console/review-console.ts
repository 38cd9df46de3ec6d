import { ApprovalError, TaskNotFoundError, isOrchestratorError } from '../errors.js';
import { ErrorCode } from '../errors.js';
import type { BudgetStatus } from '../domain/messages.js';
import type { TaskStatus } from '../domain/task.js';
import type { Pipeline } from '../domain/pipeline.js';
import type { ApprovalRecord, ProjectRecord } from '../ports/project-store.js';
import type { TaskRecord } from '../ports/task-store.js';
import type { Outbound, OutboundFeed } from '../ports/event-bus.js';
import type {
  ActionReply,
  ArtifactView,
  BudgetPoint,
  BudgetView,
  CheckpointEntry,
  ConsoleBackend,
  ConsoleEvent,
  DeadLettersPage,
  ProjectCard,
  ProjectPage,
  RejectedMessageView,
  Review,
  ReviewContent,
  StageSpan,
  TaskPage,
  TransitionView,
} from '../ports/console.js';
import { checkBody, checkControl } from '../adapters/inbound-order.js';
import { checkpointEvent } from '../approvals/request.js';
import type { Orchestrator } from '../orchestrator/orchestrator.js';
import { artifactsOf, defaultResolver, type ArtifactResolver } from './artifacts.js';
import { layoutTaskGraph, taskOrigin } from './graph.js';
import { lineageOf } from './lineage.js';

/** The tasks a project page reads (and lays out): its first ones, by creation. */
export const PROJECT_TASKS_MAX = 2_000;
/** Reviews the inbox shows: the oldest (each is read whole, with what it judges). */
export const INBOX_MAX = 200;
/** Dead letters and rejected messages a page shows: the latest. */
const DEAD_LETTERS_SHOWN = 100;

/** Where the rejected inbound messages are read: the NATS dead-letter stream, or what this process heard. */
export interface RejectedMessages {
  latest(limit: number): Promise<RejectedMessageView[]>;
}

export interface ReviewConsoleOptions {
  orchestrator: Orchestrator;
  /** What the orchestrators publish: streamed to the browsers. */
  feed: OutboundFeed;
  /** The rejected inbound messages; without one, those this console heard on the feed since it started. */
  rejected?: RejectedMessages;
  /** ARTIFACTS_DIR: served under `/artifacts/`. */
  artifactsDir?: string | null;
  /** Maps an artifact to where a browser loads it (a signed URL for an `s3://` one, say); the default serves http(s), data: and ARTIFACTS_DIR files. */
  resolveArtifact?: ArtifactResolver;
}

const FINAL: readonly TaskStatus[] = ['COMPLETED', 'FAILED', 'CANCELLED'];
const iso = (d: Date | null): string | null => (d ? d.toISOString() : null);

/** The rejected messages heard on the feed (the embedded bus keeps none): the latest DEAD_LETTERS_SHOWN. */
class HeardRejections implements RejectedMessages {
  private readonly heard: RejectedMessageView[] = [];
  private seq = 0;

  hear(message: Outbound): void {
    if (message.kind !== 'dlq') return;
    this.heard.push({ seq: ++this.seq, at: new Date().toISOString(), ...message.body });
    if (this.heard.length > DEAD_LETTERS_SHOWN) this.heard.shift();
  }

  async latest(limit: number): Promise<RejectedMessageView[]> {
    return this.heard.slice(-limit).reverse();
  }
}

/**
 * The review console's backend (the ConsoleBackend port): its pages read from the stores
 * — the authoritative rows, whichever instance wrote them — and its actions go through
 * the orchestrator as the NATS control and decision subjects' do, checked by the same
 * schemas, answered with the same typed errors. Browsers hear what the feed carries.
 */
export class ReviewConsole implements ConsoleBackend {
  readonly artifactsDir: string | null;
  private readonly listeners = new Set<(event: ConsoleEvent) => void>();
  private readonly resolve: ArtifactResolver;
  private readonly rejected: RejectedMessages;
  private readonly heard: HeardRejections | null;
  private unsubscribe: (() => Promise<void>) | null = null;
  private syncing: Promise<void> = Promise.resolve();
  private closed = false;

  private constructor(private readonly options: ReviewConsoleOptions) {
    this.artifactsDir = options.artifactsDir ?? null;
    this.resolve = options.resolveArtifact ?? defaultResolver({ artifactsDir: this.artifactsDir });
    this.heard = options.rejected ? null : new HeardRejections();
    this.rejected = options.rejected ?? this.heard!;
  }

  /**
   * A console hearing the feed: from now on without a rejected-messages source (it keeps
   * what it hears, the embedded bus keeps none); else only while a browser listens (a busy
   * orchestrator's every status is not read for nobody).
   */
  static async start(options: ReviewConsoleOptions): Promise<ReviewConsole> {
    const console = new ReviewConsole(options);
    await console.sync();
    return console;
  }

  async close(): Promise<void> {
    this.closed = true;
    this.listeners.clear();
    await this.sync();
  }

  subscribe(listener: (event: ConsoleEvent) => void): { ready: Promise<void>; close(): void } {
    this.listeners.add(listener);
    const ready = this.sync();
    return {
      ready,
      close: () => {
        if (this.listeners.delete(listener)) void this.sync();
      },
    };
  }

  /** Subscribes to the feed, or leaves it, as the listeners want; one change at a time. */
  private sync(): Promise<void> {
    this.syncing = this.syncing.then(async () => {
      const wanted = !this.closed && (!this.options.rejected || this.listeners.size > 0);
      try {
        if (wanted && !this.unsubscribe) this.unsubscribe = await this.options.feed.subscribe((m) => this.hear(m));
        else if (!wanted && this.unsubscribe) {
          const unsubscribe = this.unsubscribe;
          this.unsubscribe = null;
          await unsubscribe();
        }
      } catch (err) {
        this.core.logger.warn({ err }, 'console feed subscription failed');
      }
    });
    return this.syncing;
  }

  private hear(message: Outbound): void {
    this.heard?.hear(message);
    for (const listener of this.listeners) {
      try {
        listener(message);
      } catch (err) {
        this.core.logger.warn({ err }, 'console listener failed');
      }
    }
  }

  private get core() {
    return this.options.orchestrator.core;
  }

  private get pipeline(): Pipeline {
    return this.core.mapper.pipeline;
  }

  // -------------------------------------------------------------------------------------
  // Pages

  async projects(limit = 100): Promise<ProjectCard[]> {
    const rows = await this.core.projects.listProjectsPage({ limit });
    const ids = rows.map((p) => p.projectId);
    const [counts, pending, budgets] = await Promise.all([
      this.core.tasks.countByProjects(ids),
      this.core.projects.listPendingApprovals(ids),
      Promise.all(rows.map((p) => this.options.orchestrator.getBudgetStatus(p.projectId))),
    ]);
    return rows.map((p, i) => ({
      ...this.cardOf(p, budgets[i]!, counts[p.projectId] ?? {}),
      pendingReviews: pending
        .filter((a) => a.projectId === p.projectId)
        .map((a) => ({ approvalId: a.approvalId, checkpoint: a.checkpoint, requestedAt: a.requestedAt.toISOString(), expiresAt: iso(a.expiresAt) })),
    }));
  }

  async project(projectId: string): Promise<ProjectPage> {
    const status = await this.options.orchestrator.getProjectStatus(projectId);
    // The first PROJECT_TASKS_MAX by creation, read as one bounded page (the counts are the store's, of all).
    const tasks = await this.core.tasks.listProjectPage(projectId, { limit: PROJECT_TASKS_MAX });
    const approvals = await this.core.projects.listApprovals(projectId);
    const card: ProjectCard = {
      ...this.cardOf(status.project, status.budget, status.tasks),
      pendingReviews: status.pendingApprovals.map((a) => ({ approvalId: a.approvalId, checkpoint: a.checkpoint, requestedAt: a.requestedAt, expiresAt: a.expiresAt })),
    };
    const state = status.project.state;
    const lineage = lineageOf(tasks, approvals, this.pipeline);
    return {
      project: card,
      graph: layoutTaskGraph(
        tasks.map((t) => {
          const from = lineage.get(t.taskId);
          return {
            taskId: t.taskId,
            taskType: t.taskType,
            status: t.status,
            dependencies: t.dependencies,
            attempts: t.attempts,
            origin: from?.origin ?? taskOrigin(t.taskType, this.pipeline),
            triggers: from?.triggers ?? [],
            ...(typeof t.input.shotIndex === 'number' ? { shotIndex: t.input.shotIndex } : {}),
          };
        }),
      ),
      timeline: timelineOf(tasks),
      budgetHistory: budgetHistoryOf(tasks, status.budget),
      checkpoints: approvals.map(checkpointEntry).sort((a, b) => a.requestedAt.localeCompare(b.requestedAt)),
      actions: {
        pause: state === 'active',
        resume: state === 'paused',
        cancel: state === 'active' || state === 'paused' || state === 'failed',
        retry: state === 'failed',
        setBudget: state !== 'completed' && state !== 'cancelled',
      },
    };
  }

  async inbox(): Promise<Review[]> {
    const open = await this.core.projects.listProjects(['active', 'paused', 'failed']);
    const refs = await this.core.projects.listPendingApprovals(open.map((p) => p.projectId));
    refs.sort((a, b) => a.requestedAt.getTime() - b.requestedAt.getTime() || a.approvalId.localeCompare(b.approvalId));
    const byId = new Map(open.map((p) => [p.projectId, p]));
    const reviews: Review[] = [];
    for (const ref of refs.slice(0, INBOX_MAX)) {
      const approval = await this.core.projects.getApproval(ref.approvalId);
      // Decided meanwhile: not pending any more.
      if (!approval || approval.status !== 'pending') continue;
      reviews.push(await this.reviewOf(approval, byId.get(approval.projectId) ?? null));
    }
    return reviews;
  }

  async review(approvalId: string): Promise<Review> {
    const approval = await this.core.projects.getApproval(approvalId);
    if (!approval) throw new ApprovalError(`approval ${approvalId} does not exist`);
    return this.reviewOf(approval, await this.core.projects.getProject(approval.projectId));
  }

  async task(taskId: string): Promise<TaskPage> {
    const t = await this.core.tasks.getTask(taskId);
    if (!t) throw new TaskNotFoundError(taskId);
    const [transitions, siblings, approvals] = await Promise.all([
      this.core.tasks.listTransitions(taskId),
      this.core.tasks.listProjectPage(t.projectId, { limit: PROJECT_TASKS_MAX }),
      this.core.projects.listApprovals(t.projectId),
    ]);
    const origin = lineageOf(siblings, approvals, this.pipeline).get(taskId)?.origin ?? taskOrigin(t.taskType, this.pipeline);
    return {
      taskId: t.taskId,
      projectId: t.projectId,
      taskType: t.taskType,
      agent: t.assignedTo,
      status: t.status,
      origin,
      priority: t.priority,
      dependencies: t.dependencies,
      input: t.input,
      output: t.output,
      attempts: t.attempts,
      maxAttempts: t.maxAttempts,
      lastError: t.lastError,
      estimatedCost: t.estimatedCost,
      actualCost: t.actualCost,
      fencingToken: t.fencingToken,
      createdAt: t.createdAt.toISOString(),
      startedAt: iso(t.startedAt),
      completedAt: iso(t.completedAt),
      artifacts: await this.artifacts(t),
      transitions: transitions.map<TransitionView>((r) => ({
        at: r.at.toISOString(),
        from: r.fromStatus,
        to: r.toStatus,
        event: r.event,
        by: r.by,
        fencingToken: typeof r.detail?.fencingToken === 'number' ? r.detail.fencingToken : null,
        detail: r.detail,
      })),
    };
  }

  async deadLetters(): Promise<DeadLettersPage> {
    const [tasks, messages] = await Promise.all([
      this.core.deadLetters.listPage({ limit: DEAD_LETTERS_SHOWN }),
      this.rejected.latest(DEAD_LETTERS_SHOWN).catch((err: unknown) => {
        // The dead-letter stream unreadable (NATS down): the page still shows the tasks.
        this.core.logger.warn({ err }, 'cannot read the rejected messages');
        return [] as RejectedMessageView[];
      }),
    ]);
    return {
      tasks: tasks.map((d) => ({ id: d.id, taskId: d.taskId, projectId: d.projectId, reason: d.reason, lastError: d.lastError, attempts: d.attempts, at: d.at.toISOString() })),
      messages,
    };
  }

  // -------------------------------------------------------------------------------------
  // Actions: checked and handled as the control and decision subjects' messages are.

  async control(projectId: string, request: unknown): Promise<ActionReply> {
    const checked = checkControl(request);
    if (!checked.ok) return checked.reply;
    return replyOf(() => this.options.orchestrator.control(projectId, checked.request));
  }

  async decide(projectId: string, decision: unknown): Promise<ActionReply> {
    const checked = checkBody('decision', projectId, decision);
    if (!checked.ok) return { ok: false, error: { code: ErrorCode.Validation, message: checked.reason } };
    if (checked.message.kind !== 'decision') throw new Error('unreachable');
    const body = checked.message.body;
    return replyOf(async () => checkpointEntry(await this.options.orchestrator.decide(projectId, body)));
  }

  // -------------------------------------------------------------------------------------

  private cardOf(p: ProjectRecord, budget: BudgetStatus, tasks: Partial<Record<TaskStatus, number>>): Omit<ProjectCard, 'pendingReviews'> {
    return {
      projectId: p.projectId,
      title: p.title,
      state: p.state,
      reason: p.pausedReason,
      tasks,
      budget: budgetView(budget),
      createdAt: p.createdAt.toISOString(),
      updatedAt: p.updatedAt.toISOString(),
    };
  }

  private async artifacts(t: Pick<TaskRecord, 'taskId' | 'input' | 'output'>): Promise<ArtifactView[]> {
    return artifactsOf(t, this.resolve);
  }

  private async reviewOf(approval: ApprovalRecord, project: ProjectRecord | null): Promise<Review> {
    const [budget, waiting] = await Promise.all([this.options.orchestrator.getBudgetStatus(approval.projectId), this.core.tasks.getTasks(approval.taskIds)]);
    const shots = this.core.mapper.shotCount(checkpointEvent(approval));
    return {
      approvalId: approval.approvalId,
      projectId: approval.projectId,
      projectTitle: project?.title ?? approval.projectId,
      checkpoint: approval.checkpoint,
      status: approval.status,
      requestedAt: approval.requestedAt.toISOString(),
      expiresAt: iso(approval.expiresAt),
      expiryPolicy: approval.expiresAt ? this.core.config.approval.timeoutPolicy : null,
      content: await this.contentOf(approval),
      shots: this.pipeline.rejectionShots?.[approval.checkpoint] ? shots : null,
      budget: budgetView(budget),
      approving: { tasks: waiting.length, estimatedCost: round(waiting.reduce((sum, t) => sum + (t.estimatedCost ?? 0), 0)) },
    };
  }

  /**
   * What the checkpoint's payload holds, by its shape (so a pipeline of one's own gets the
   * same views): a `script` text; a `shots` plan; a `preview` or `video` with the shots'
   * latest keyframes; else the payload itself.
   */
  private async contentOf(approval: ApprovalRecord): Promise<ReviewContent> {
    const payload = approval.summary;
    const video = typeof payload.preview === 'string' ? payload.preview : typeof payload.video === 'string' ? payload.video : null;
    if (video !== null) {
      const [view] = await artifactsOf({ taskId: approval.eventId, input: {}, output: { video } }, this.resolve);
      return { kind: 'video', video: view ?? null, keyframes: await this.keyframes(approval.projectId) };
    }
    if (typeof payload.script === 'string') return { kind: 'script', script: payload.script };
    if (Array.isArray(payload.shots) && payload.shots.every((s) => typeof s === 'object' && s !== null && !Array.isArray(s))) {
      const shots = payload.shots as Record<string, unknown>[];
      const columns: string[] = [];
      for (const shot of shots) for (const key of Object.keys(shot)) if (!columns.includes(key)) columns.push(key);
      return { kind: 'shots', shots, columns };
    }
    return { kind: 'payload', payload };
  }

  /** The latest image of each shot: the last completed task (a keyframe, an edit) whose output shows it. */
  private async keyframes(projectId: string): Promise<ArtifactView[]> {
    const done = await this.core.tasks.listByProject(projectId, ['COMPLETED']);
    done.sort((a, b) => (a.completedAt?.getTime() ?? 0) - (b.completedAt?.getTime() ?? 0));
    const byShot = new Map<number, ArtifactView>();
    for (const t of done) {
      for (const a of await this.artifacts(t)) {
        if (a.shotIndex !== undefined && a.mediaType.startsWith('image/')) byShot.set(a.shotIndex, a);
      }
    }
    return [...byShot.entries()].sort(([a], [b]) => a - b).map(([, a]) => a);
  }
}

const round = (n: number): number => Math.round(n * 10_000) / 10_000;

function budgetView(b: BudgetStatus): BudgetView {
  return { limit: b.limit, spent: b.spent, reserved: b.reserved, forecast: b.forecast.total, exceedsBudget: b.forecast.exceedsBudget };
}

function checkpointEntry(a: ApprovalRecord): CheckpointEntry {
  return {
    approvalId: a.approvalId,
    checkpoint: a.checkpoint,
    status: a.status,
    requestedAt: a.requestedAt.toISOString(),
    expiresAt: iso(a.expiresAt),
    decidedAt: iso(a.decidedAt),
    by: a.decidedBy,
    comment: a.comment,
  };
}

/** Attempts of an action whose error is retryable (a version conflict with a concurrent commit, a server restarting), as the bus retries a message. */
const ACTION_ATTEMPTS = 5;
const ACTION_BACKOFF_MS = 50;

/**
 * An action's answer: its result, or its typed error's code and message (as the control
 * subject replies). A retryable error is tried again with back-off first, as the bus does
 * with a decision: a person is not told "version conflict" for a race the next try wins.
 */
async function replyOf(run: () => Promise<unknown>): Promise<ActionReply> {
  for (let attempt = 1; ; attempt++) {
    try {
      return { ok: true, result: (await run()) ?? null };
    } catch (err) {
      if (!isOrchestratorError(err)) throw err;
      if (err.retryable && attempt < ACTION_ATTEMPTS) {
        await new Promise((resolve) => setTimeout(resolve, ACTION_BACKOFF_MS * 2 ** (attempt - 1)));
        continue;
      }
      return { ok: false, error: { code: err.code, message: err.message } };
    }
  }
}

/** The stages, one per task type, in the order their first task was created. */
export function timelineOf(tasks: readonly TaskRecord[]): StageSpan[] {
  const stages = new Map<string, TaskRecord[]>();
  for (const t of [...tasks].sort((a, b) => a.createdAt.getTime() - b.createdAt.getTime())) {
    const list = stages.get(t.taskType) ?? [];
    list.push(t);
    stages.set(t.taskType, list);
  }
  return [...stages.entries()].map(([taskType, list]) => {
    const starts = list.flatMap((t) => (t.startedAt ? [t.startedAt.getTime()] : []));
    const allEnded = list.every((t) => FINAL.includes(t.status));
    const ends = list.flatMap((t) => (t.completedAt ? [t.completedAt.getTime()] : []));
    const statuses: Partial<Record<TaskStatus, number>> = {};
    for (const t of list) statuses[t.status] = (statuses[t.status] ?? 0) + 1;
    return {
      taskType,
      tasks: list.length,
      startedAt: starts.length ? new Date(Math.min(...starts)).toISOString() : null,
      endedAt: allEnded && ends.length ? new Date(Math.max(...ends)).toISOString() : null,
      statuses,
    };
  });
}

/**
 * The budget over time, from the task rows: a task's estimate reserved from its start to
 * its end, its actual cost spent from its end, and the forecast (what is known of the work
 * still to run, at its estimate) as it stood; the last point is now, as the budget says.
 */
export function budgetHistoryOf(tasks: readonly TaskRecord[], now: BudgetStatus): BudgetPoint[] {
  type Change = { at: number; spent: number; reserved: number; planned: number };
  const changes: Change[] = [];
  for (const t of tasks) {
    const estimate = t.estimatedCost ?? 0;
    changes.push({ at: t.createdAt.getTime(), spent: 0, reserved: 0, planned: estimate });
    if (t.startedAt) changes.push({ at: t.startedAt.getTime(), spent: 0, reserved: estimate, planned: -estimate });
    if (t.completedAt && t.startedAt) changes.push({ at: t.completedAt.getTime(), spent: t.actualCost ?? 0, reserved: -estimate, planned: 0 });
    else if (t.completedAt || t.status === 'CANCELLED') changes.push({ at: (t.completedAt ?? t.updatedAt).getTime(), spent: 0, reserved: 0, planned: -estimate });
  }
  changes.sort((a, b) => a.at - b.at);
  const points: BudgetPoint[] = [];
  let spent = 0;
  let reserved = 0;
  let planned = 0;
  for (const c of changes) {
    spent += c.spent;
    reserved += c.reserved;
    planned += c.planned;
    const point = { at: new Date(c.at).toISOString(), spent: round(spent), reserved: round(Math.max(0, reserved)), forecast: round(spent + Math.max(0, reserved) + Math.max(0, planned)) };
    // One point per instant: the last change of a moment wins.
    if (points.length && points[points.length - 1]!.at === point.at) points[points.length - 1] = point;
    else points.push(point);
  }
  points.push({ at: new Date().toISOString(), spent: now.spent, reserved: now.reserved, forecast: now.forecast.total });
  return points;
}
