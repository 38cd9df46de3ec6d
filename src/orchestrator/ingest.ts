import { randomUUID } from 'node:crypto';
import { ValidationError } from '../errors.js';
import type { TaskStatusMessage } from '../domain/messages.js';
import type { NewApproval, NewProject } from '../ports/project-store.js';
import type { ProjectBudget } from '../ports/commit.js';
import type { NewTaskRecord, TaskRecord } from '../ports/task-store.js';
import type { PlannedTask } from '../pipeline/event-mapper.js';
import type { BudgetChecker } from './budget-checker.js';
import type { TaskFlow } from './task-flow.js';
import type { TaskScheduler } from './scheduler.js';
import type { DispatchClaim } from '../dispatch/dispatcher.js';
import { requestBody } from './approvals.js';
import { publishStatuses, type Core } from './core.js';

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

/**
 * Writes an event's effects in one transaction (or one statement) and makes its tasks go:
 *
 * - tasks without dependencies are written READY, their estimates reserved with them,
 *   when the project is active and the reservation fits (else PENDING, promoted after);
 * - of those, the ones the scheduler can start at once (room, nothing waiting in the
 *   queue; see DirectDispatch) are written RUNNING in the same write, with
 *   their leases' fencing tokens, and dispatched right after it — no queue round trip,
 *   no second commit;
 * - the rest of the READY ones go in the queue; PENDING ones are promoted.
 */
export class Ingest {
  constructor(
    private readonly core: Core,
    private readonly scheduler: TaskScheduler,
    private readonly budget: BudgetChecker,
    private readonly flow: TaskFlow,
    private readonly react: (projectId: string, what: string, fn: () => Promise<void>) => Promise<void>,
  ) {}

  /** Null when `onlyIfActive` and the project was not active (nothing written). */
  async ingest(
    event: IngestedEvent,
    planned: readonly PlannedTask[],
    atCheckpoint: boolean,
    project?: NewProject,
    onlyIfActive = false,
    after?: () => Promise<void>,
  ): Promise<IngestOutcome | null> {
    const { core } = this;
    const now = core.clock.now();
    const records = await core.registry.prepare(planned, { awaitingApproval: atCheckpoint });
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
    if (!written.written) return { duplicate: true, taskIds: [], approvalId: null };
    // Durable. The tasks written RUNNING take their slots and are dispatched; the rest
    // follows in the project's reaction, which cannot fail the event any more.
    const running = written.ready ? variants.filter((t) => t.status === 'RUNNING') : [];
    const variantById = new Map(written.ready ? variants.map((t) => [t.taskId, t]) : []);
    // The project actor first: the new task actors are created as its children.
    const projectActor =
      records.length || approval
        ? await core.projectActors.load(event.projectId).catch((err: unknown) => {
            core.logger.warn({ err, projectId: event.projectId }, 'project actor unavailable; its tasks go on without it');
            return undefined;
          })
        : undefined;
    const created = core.registry.adopt(records.map((r) => variantById.get(r.taskId) ?? r));
    this.scheduler.dispatcher.confirm(running);
    const reacted = this.react(event.projectId, 'ingest', async () => {
      if (approval) projectActor?.noteApproval({ ...approval, status: 'pending' });
      if (project) await core.bus.publish({ kind: 'project', body: { projectId: project.projectId, state: 'active', reason: null } });
      await this.publishCreated(created, variantById, now);
      await this.afterCreated(event, created, variantById.size > 0, approval, written.project);
      await after?.();
    });
    return { duplicate: false, taskIds: records.map((r) => r.taskId), approvalId: approval?.approvalId ?? null, reacted };
  }

  /** After the write: the approval request announced, READY tasks queued, PENDING ones promoted. */
  private async afterCreated(
    event: IngestedEvent,
    created: readonly TaskRecord[],
    ready: boolean,
    approval: NewApproval | undefined,
    project: ProjectBudget | undefined,
  ): Promise<void> {
    const { core } = this;
    if (approval) await core.bus.publish({ kind: 'approval_requested', body: requestBody(approval) });
    if (ready) {
      const queued = created.filter((r) => r.status === 'READY');
      if (queued.length) {
        await core.queue.putMany(queued.map((r) => ({ taskId: r.taskId, priority: r.priority })));
        this.scheduler.wake();
      }
      await this.budget.afterChange(event.projectId, false, project);
    }
    const pending = created.filter((r) => r.status === 'PENDING').map((r) => r.taskId);
    if (pending.length) await this.flow.batch.promoteMany(pending);
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

  /** The statuses of created tasks, with the steps of those created past PENDING. */
  private publishCreated(created: readonly TaskRecord[], variants: ReadonlyMap<string, NewTaskRecord>, now: number): Promise<void> {
    const at = new Date(now).toISOString();
    const bodies = created.flatMap((r): TaskStatusMessage[] => {
      const base = { taskId: r.taskId, projectId: r.projectId, taskType: r.taskType, at, attempt: 0 };
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
  const title = typeof payload.title === 'string' && payload.title.trim() ? payload.title : projectId;
  const budget = payload.budget;
  if (budget !== undefined && budget !== null && (typeof budget !== 'number' || !Number.isFinite(budget) || budget < 0)) {
    throw new ValidationError('PROJECT_CREATED payload.budget must be a non-negative number');
  }
  const checkpoints = payload.checkpoints;
  if (checkpoints !== undefined && !(Array.isArray(checkpoints) && checkpoints.every((c) => typeof c === 'string'))) {
    throw new ValidationError('PROJECT_CREATED payload.checkpoints must be an array of event types');
  }
  return {
    projectId,
    title: title.slice(0, 500),
    budgetLimit: typeof budget === 'number' ? budget : null,
    checkpoints: (checkpoints as string[] | undefined) ?? null,
  };
}
