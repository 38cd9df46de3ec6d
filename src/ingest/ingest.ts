import { randomUUID } from 'node:crypto';
import { FanOutLimitError, ProjectNotFoundError, ValidationError } from '../errors.js';
import { PipelineEvent, ProjectCreatedPayload, type PipelineEventInput } from '../domain/pipeline.js';
import type { TaskStatusMessage } from '../domain/messages.js';
import { newTaskId, type NewTaskInput } from '../domain/task.js';
import type { ApprovalRecord, NewApproval, NewProject, ProjectRecord } from '../ports/project-store.js';
import type { ProjectBudget } from '../ports/commit.js';
import type { NewTaskRecord, TaskRecord } from '../ports/task-store.js';
import type { PlannedTask } from '../pipeline/event-mapper.js';
import { requestOf } from '../actors/project-snapshot.js';
import type { BudgetChecker } from '../budget/budget-checker.js';
import type { ProjectLifecycle } from '../control/lifecycle.js';
import type { DispatchClaim } from '../dispatch/dispatcher.js';
import type { Promotion } from '../promotion/promotion.js';
import type { TaskScheduler } from '../orchestrator/scheduler.js';
import type { Core } from '../orchestrator/core.js';
import type { Reactions } from '../reactions/reactions.js';
import { publishStatuses } from '../reactions/statuses.js';
import { ingestSpan, tracingOn } from '../tracing/tracing.js';

export interface IngestedEvent {
  id: string;
  type: string;
  projectId: string;
  payload: Record<string, unknown>;
}

export interface IngestOutcome {
  duplicate: boolean;
  taskIds: string[];
  approvalId: string | null;
  /** The reaction to the commit (statuses, approval request, queue, promotions); never rejects. */
  reacted?: Promise<void>;
}

/** The id of a rejection's revision (one per rejection: its ingest is idempotent by it). */
export function revisionEventId(approval: Pick<ApprovalRecord, 'approvalId'>): string {
  return `${approval.approvalId}:rejected`;
}

const DUPLICATE: IngestOutcome = { duplicate: true, taskIds: [], approvalId: null };

/**
 * Ingesting an event: a pipeline event (from the bus, or raised by a completed task), a
 * direct submission of tasks, or the revision tasks of a rejected checkpoint.
 *
 * - Decide: the event is validated, mapped to its planned tasks (pipeline/event-mapper.ts),
 *   held at a checkpoint (an approval request) or not; tasks without dependencies are
 *   READY, and those the dispatcher can start at once are RUNNING with their leases.
 * - Commit: one transaction (Commit.ingestEvent), idempotent by event id — the
 *   processed mark, the project, the tasks, their reservation, the approval request.
 * - React, in the project's order: statuses, the approval request announced, READY tasks
 *   queued, PENDING ones promoted, the project completed when the event ends it.
 */
export class Ingest {
  constructor(
    private readonly core: Core,
    private readonly scheduler: TaskScheduler,
    private readonly budget: BudgetChecker,
    private readonly promotion: Promotion,
    private readonly lifecycle: ProjectLifecycle,
    private readonly reactions: Reactions,
  ) {}

  /** A pipeline event, validated here (idempotent by event id); resolves once its commit is durable. */
  event(input: PipelineEventInput): Promise<IngestOutcome> {
    const parsed = PipelineEvent.safeParse(input);
    if (!parsed.success) {
      throw new ValidationError('invalid event', parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`));
    }
    return this.accept(parsed.data);
  }

  /** A pipeline event the event bus validated already. */
  async accept(event: PipelineEvent): Promise<IngestOutcome> {
    // A project this process holds active in memory is not read first: the ingest writes
    // only if the row is still active, and otherwise leaves the event to the general way.
    const held = event.type === 'PROJECT_CREATED' ? undefined : this.core.projectActors.get(event.projectId);
    let project: ProjectRecord | null | undefined;
    if (held?.record.state === 'active') {
      const result = await this.pipelineEvent(event, held.record, undefined, true);
      if (result) return result;
      // Its state changed elsewhere: read here, and learnt by the actor.
      project = await held.refresh().catch((err: unknown) => {
        if (err instanceof ProjectNotFoundError) return null;
        throw err;
      });
    }
    // A duplicate is found by the ingest's transaction (the processed mark is its first
    // write); only an event that would be refused is checked for one first, so that a
    // redelivered event of a finished project is a duplicate, not an error.
    if (project === undefined) project = await this.core.projects.getProject(event.projectId);
    let newProject: NewProject | undefined;
    if (event.type === 'PROJECT_CREATED') {
      if (!project) newProject = projectFromPayload(event.projectId, event.payload);
    } else if (!project) {
      if (await this.core.projects.isEventProcessed(event.id)) return DUPLICATE;
      throw new ProjectNotFoundError(event.projectId);
    }
    if (project && (project.state === 'completed' || project.state === 'cancelled')) {
      if (await this.core.projects.isEventProcessed(event.id)) return DUPLICATE;
      throw new ValidationError(`project ${event.projectId} is ${project.state}: event ${event.type} refused`);
    }
    return (await this.pipelineEvent(event, project, newProject, false))!;
  }

  /**
   * Tasks added to an existing project directly (outside the pipeline's event map), with
   * the same guarantees as an event: one transaction, idempotent by `eventId`.
   */
  async submit(projectId: string, tasks: readonly Omit<NewTaskInput, 'projectId'>[], eventId: string): Promise<IngestOutcome> {
    const project = await this.core.projects.getProject(projectId);
    if (!project) throw new ProjectNotFoundError(projectId);
    if (project.state === 'completed' || project.state === 'cancelled') {
      throw new ValidationError(`project ${projectId} is ${project.state}: tasks refused`);
    }
    const limit = this.core.mapper.maxTasksPerEvent;
    if (tasks.length > limit) throw new FanOutLimitError(`the submission ${eventId}`, tasks.length, limit);
    const planned = tasks.map((t) => ({ ...t, projectId, taskId: t.taskId ?? newTaskId(), input: t.input ?? {}, dependencies: t.dependencies ?? [] }));
    return (await this.ingest({ id: eventId, type: 'TASKS_SUBMITTED', projectId, payload: {} }, planned, false))!;
  }

  /**
   * The copies a retry of a failed project plans (retries/project-retry.ts), idempotent by
   * the plan's event id. Written PENDING (or READY) while the project is failed; the retry's
   * project step, taken next, promotes them.
   */
  async retry(projectId: string, eventId: string, failed: readonly string[], tasks: readonly PlannedTask[]): Promise<IngestOutcome> {
    return (await this.ingest({ id: eventId, type: 'PROJECT_RETRIED', projectId, payload: { failed: [...failed] } }, tasks, false))!;
  }

  /** The revision tasks of a rejected checkpoint (idempotent: one revision per rejection). */
  async revision(approval: ApprovalRecord, tasks: readonly PlannedTask[]): Promise<IngestOutcome | null> {
    return this.ingest(
      { id: revisionEventId(approval), type: `${approval.checkpoint}_REJECTED`, projectId: approval.projectId, payload: { comment: approval.comment } },
      tasks,
      false,
    );
  }

  /** An event of a known or new project; null when `onlyIfActive` and the project was not active. */
  private async pipelineEvent(
    event: PipelineEvent,
    project: ProjectRecord | null,
    newProject: NewProject | undefined,
    onlyIfActive: boolean,
  ): Promise<IngestOutcome | null> {
    const checkpoints = project?.checkpoints ?? newProject?.checkpoints ?? this.core.mapper.pipeline.checkpoints;
    const atCheckpoint = this.core.config.approval.enabled && checkpoints.includes(event.type);
    const planned = this.core.mapper.mapEventToTasks(event);
    const completes = !atCheckpoint && this.core.mapper.completesProject(event.type);
    return this.ingest(
      { id: event.id, type: event.type, projectId: event.projectId, payload: event.payload },
      planned,
      atCheckpoint,
      newProject,
      onlyIfActive,
      completes ? () => this.lifecycle.complete(event.projectId) : undefined,
    );
  }

  /**
   * Null when `onlyIfActive` and the project was not active (nothing written). Traced
   * (tracing on) in the span `ingest <event type>`, whose traceparent the tasks store.
   */
  private ingest(
    event: IngestedEvent,
    planned: readonly PlannedTask[],
    atCheckpoint: boolean,
    project?: NewProject,
    onlyIfActive = false,
    after?: () => Promise<void>,
  ): Promise<IngestOutcome | null> {
    if (!tracingOn()) return this.write(event, planned, atCheckpoint, project, onlyIfActive, after, null);
    const attributes = { 'lap.event.id': event.id, 'lap.event.type': event.type, 'lap.project.id': event.projectId, 'lap.tasks.planned': planned.length };
    return ingestSpan(event.type, attributes, (traceParent) => this.write(event, planned, atCheckpoint, project, onlyIfActive, after, traceParent));
  }

  private async write(
    event: IngestedEvent,
    planned: readonly PlannedTask[],
    atCheckpoint: boolean,
    project: NewProject | undefined,
    onlyIfActive: boolean,
    after: (() => Promise<void>) | undefined,
    traceParent: string | null,
  ): Promise<IngestOutcome | null> {
    const { core } = this;
    const now = core.clock.now();
    const records = await core.registry.prepare(planned, { awaitingApproval: atCheckpoint, traceParent });
    const approval: NewApproval | undefined = atCheckpoint
      ? {
          approvalId: `apr_${randomUUID().replaceAll('-', '')}`,
          projectId: event.projectId,
          checkpoint: event.type,
          eventId: event.id,
          summary: event.payload,
          taskIds: records.map((r) => r.taskId),
          requestedAt: new Date(now),
          expiresAt: new Date(now + core.config.approval.timeoutMs),
        }
      : undefined;
    const supersede = planned.flatMap((p) => (p.supersedes ? [{ oldTaskId: p.supersedes, newTaskId: p.taskId }] : []));
    // Not combined with supersession (see EventIngest.ready) nor a checkpoint (WAITING_APPROVAL).
    const readyTasks = atCheckpoint || supersede.length ? [] : core.registry.readyVariants(records, now);
    const claims = await this.scheduler.dispatcher.claim(readyTasks);
    const variants = this.withDispatches(readyTasks, claims);
    let written;
    try {
      written = await core.commit.ingestEvent({
        eventId: event.id,
        eventType: event.type,
        projectId: event.projectId,
        at: new Date(now),
        by: core.instanceId,
        ...(project ? { project } : {}),
        tasks: records,
        ...(approval ? { approval } : {}),
        ...(supersede.length ? { supersede } : {}),
        ...(variants.length
          ? { ready: { tasks: variants, reserve: variants.reduce((sum, t) => sum + (t.estimatedCost ?? 0), 0), enforce: core.config.budget.checkEnabled } }
          : {}),
        ...(onlyIfActive ? { onlyIfActive } : {}),
      });
    } catch (err) {
      await this.scheduler.dispatcher.abandon(claims);
      throw err;
    }
    if (!written.ready) await this.scheduler.dispatcher.abandon(claims);
    if (written.skipped) return null;
    if (!written.written) return DUPLICATE;
    // Durable. The tasks written RUNNING take their slots and are dispatched; the rest
    // follows in the project's reaction, which cannot fail the event any more.
    const running = written.ready ? variants.filter((t) => t.status === 'RUNNING') : [];
    const variantById = new Map(written.ready ? variants.map((t) => [t.taskId, t]) : []);
    // The project actor first: the new task actors are created as its children.
    if (records.length || approval) {
      await core.projectActors.load(event.projectId).catch((err: unknown) => {
        core.logger.warn({ err, projectId: event.projectId }, 'project actor unavailable; its tasks go on without it');
      });
    }
    const created = core.registry.adopt(records.map((r) => variantById.get(r.taskId) ?? r));
    this.scheduler.dispatcher.confirm(running);
    const reacted = this.reactions.run(event.projectId, 'ingest', async () => {
      if (project) await core.bus.publish({ kind: 'project', body: { projectId: project.projectId, state: 'active', reason: null } });
      await this.publishCreated(created, variantById);
      await this.afterCreated(event, created, variantById.size > 0, approval, written.project);
      await after?.();
    });
    return { duplicate: false, taskIds: records.map((r) => r.taskId), approvalId: approval?.approvalId ?? null, reacted };
  }

  /** After the write: the approval request taken by the project machine (and announced), READY tasks queued, PENDING ones promoted. */
  private async afterCreated(
    event: IngestedEvent,
    created: readonly TaskRecord[],
    ready: boolean,
    approval: NewApproval | undefined,
    project: ProjectBudget | undefined,
  ): Promise<void> {
    const { core } = this;
    if (approval) await this.lifecycle.step(event.projectId, [requestOf(approval)]);
    if (ready) {
      const queued = created.filter((r) => r.status === 'READY');
      if (queued.length) {
        await core.queue.putMany(queued.map((r) => ({ taskId: r.taskId, priority: r.priority })));
        this.scheduler.wake();
      }
      await this.budget.afterChange(event.projectId, false, project);
    }
    // A task waiting on a task of this same event cannot be promoted now (that one was
    // just created, it is not final); it is promoted when its last dependency completes
    // (`pushDependents`, in a reaction of the project that comes after this one).
    const createdIds = new Set(created.map((r) => r.taskId));
    const pending = created.filter((r) => r.status === 'PENDING' && !r.dependencies.some((d) => createdIds.has(d))).map((r) => r.taskId);
    if (pending.length) await this.promotion.promoteMany(pending);
  }

  /** The READY variants, the claimed ones moved on to RUNNING with their leases. */
  private withDispatches(ready: readonly NewTaskRecord[], claims: readonly DispatchClaim[]): NewTaskRecord[] {
    if (!claims.length) return [...ready];
    const byId = new Map(claims.map((c) => [c.taskId, c]));
    const at = this.core.clock.now();
    return ready.map((t) => {
      const claim = byId.get(t.taskId);
      return claim ? this.core.registry.dispatchVariant(t, { at, fencingToken: claim.lease.fencingToken, deadline: at + t.timeoutMs }) : t;
    });
  }

  /**
   * The statuses of created tasks, with the steps of those created past PENDING, at the
   * time their audit rows carry (the creation's), as a replay from the audit log sends them.
   */
  private publishCreated(created: readonly TaskRecord[], variants: ReadonlyMap<string, NewTaskRecord>): Promise<void> {
    const bodies = created.flatMap((r): TaskStatusMessage[] => {
      const base = { taskId: r.taskId, projectId: r.projectId, taskType: r.taskType, at: r.createdAt.toISOString(), attempt: 0 };
      const steps = variants.get(r.taskId)?.createdSteps ?? [];
      return [
        { ...base, from: null, to: steps.length ? 'PENDING' : r.status },
        ...steps.map((s): TaskStatusMessage => ({ ...base, from: s.from, to: s.to, attempt: s.to === 'RUNNING' ? r.attempts : 0 })),
      ];
    });
    return publishStatuses(this.core, bodies);
  }
}

/** The project a PROJECT_CREATED event's payload describes (title, budget, checkpoints), validated. */
export function projectFromPayload(projectId: string, payload: Record<string, unknown>): NewProject {
  const parsed = ProjectCreatedPayload.safeParse(payload);
  if (!parsed.success) {
    throw new ValidationError('invalid PROJECT_CREATED payload', parsed.error.issues.map((i) => `payload.${i.path.join('.')}: ${i.message}`));
  }
  const { title, budget, checkpoints } = parsed.data;
  // At most 500 UTF-16 units, not cutting a surrogate pair in two.
  const kept = (title?.trim() ? title : projectId).slice(0, 500);
  return {
    projectId,
    title: /[\uD800-\uDBFF]$/.test(kept) ? kept.slice(0, -1) : kept,
    budgetLimit: budget ?? null,
    checkpoints: checkpoints ?? null,
  };
}
