import { randomUUID } from 'node:crypto';
import { IllegalTransitionError, ProjectNotFoundError, ValidationError, isOrchestratorError } from '../errors.js';
import { PipelineEvent, type PipelineEventInput } from '../domain/pipeline.js';
import { newTaskId, type NewTaskInput } from '../domain/task.js';
import { ApprovalDecided, ControlRequest, Heartbeat, TaskResult, type BudgetStatus } from '../domain/messages.js';
import type { InboundSubscription } from '../ports/event-bus.js';
import type { ApprovalRecord, NewProject, ProjectRecord } from '../ports/project-store.js';
import type { OutboxEvent } from '../ports/task-store.js';
import type { PlannedTask } from '../pipeline/event-mapper.js';
import type { ProjectEvent } from '../machines/project-machine.js';
import { BudgetChecker } from './budget-checker.js';
import { ApprovalManager, requestBody } from './approvals.js';
import { TaskFlow } from './task-flow.js';
import { TaskScheduler } from './scheduler.js';
import { Batcher } from './batcher.js';
import { Ingest, projectFromPayload, type IngestOutcome } from './ingest.js';
import { Reactions } from './reactions.js';
import type { ResultItem } from './batch-flow.js';
import { Dispatcher, STRAY_AFTER_MS } from '../dispatch/dispatcher.js';
import { WatchedQueue } from '../dispatch/watched-queue.js';
import { BUDGET_EXHAUSTED, type Core } from './core.js';

/** How often the reactions a failure left undone are looked for in the durable state. */
export const REACTION_SWEEP_MS = 2_000;
/** A raised event whose handling keeps failing is dead-lettered after this many tries. */
export const RAISED_EVENT_TRIES = 5;

export interface HandleEventResult {
  duplicate: boolean;
  taskIds: string[];
  approvalId: string | null;
}

export interface ProjectStatus {
  project: ProjectRecord;
  budget: BudgetStatus;
  tasks: Partial<Record<string, number>>;
  pendingApprovals: ApprovalRecord[];
}

/**
 * The orchestrator: events in, tasks through the seven states, budget and approvals
 * enforced. `handleEvent` follows the original flow (project → approval? → map → budget →
 * queue); the scheduler dispatches; results, heartbeats and decisions come back through
 * the event bus. Every method resolves only once its effect is durable.
 */
export class Orchestrator {
  readonly budgetChecker: BudgetChecker;
  readonly scheduler: TaskScheduler;
  readonly approvals: ApprovalManager;
  private readonly flow: TaskFlow;
  private readonly ingestion: Ingest;
  private inbound: InboundSubscription | null = null;
  private readonly results: Batcher<ResultItem>;
  private readonly reactions: Reactions;
  private running = false;
  private lastReactionSweep = Number.NEGATIVE_INFINITY;
  /** Raised events whose handling failed here: tries so far, and when to try again. */
  private readonly raisedFailures = new Map<string, { tries: number; nextAt: number }>();

  readonly core: Core;

  constructor(core: Core) {
    const queue = new WatchedQueue(core.queue);
    core = { ...core, queue };
    this.core = core;
    this.reactions = new Reactions(core.logger);
    const react = (projectId: string, what: string, fn: () => Promise<void>) => this.reactions.run(projectId, what, fn);
    this.budgetChecker = new BudgetChecker(core);
    this.flow = new TaskFlow(core, this.budgetChecker, {
      settledMany: async (ids) => {
        if (await this.scheduler.dispatcher.settled(ids)) this.scheduler.wake();
      },
      wake: () => this.scheduler.wake(),
      pauseForBudget: (projectId) => this.pauseForBudget(projectId),
      handleRaised: (events) => this.handleRaised(events),
      react,
    });
    this.results = new Batcher(
      (batch) => this.flow.batch.completeMany(batch),
      (item) => item.result.taskId,
    );
    const dispatcher = new Dispatcher(core, queue, { dependencyStates: (records) => this.flow.batch.dependencyStates(records) });
    this.scheduler = new TaskScheduler(
      core,
      dispatcher,
      {
        timeOut: (taskId) => this.flow.timeOut(taskId),
        retries: async (now) => {
          const due = await core.tasks.listDueRetries(new Date(now), 200);
          if (due.length) await this.flow.batch.promoteMany(due.map((t) => t.taskId));
        },
        approvals: () => this.approvals.sweepExpired(),
        reactions: () => this.sweepReactions(),
      },
      core.inspect,
    );
    this.ingestion = new Ingest(core, this.scheduler, this.budgetChecker, this.flow, react);
    this.approvals = new ApprovalManager(core, this.flow, {
      ingestRevision: (approval, tasks) => this.ingestRevision(approval, tasks).then(() => undefined),
      completeProject: (projectId) => this.completeProject(projectId),
    });
  }

  get isRunning(): boolean {
    return this.running;
  }

  /**
   * Recovers and starts: restores the actors of RUNNING tasks, lifts the fencing
   * counter above every stored token, puts READY tasks back in the queue (it may have
   * lost them), replays unhandled raised events and interrupted decisions, promotes what
   * became runnable, then consumes the event bus and starts the scheduler.
   */
  async start(): Promise<void> {
    if (this.running) return;
    const { core } = this;
    await this.budgetChecker.loadObservations();
    await this.scheduler.dispatcher.liftFencing();
    // Project actors first: restored task actors are created as their children.
    const open = await core.projects.listProjects(['active', 'paused']);
    for (const project of open) await core.projectActors.load(project.projectId);
    // RUNNING tasks only (their dispatches may be sent again below); the others' passivated
    // actors are loaded from their rows when first needed — a batch at a time, by the
    // scheduler, the results and the promotions — so a restart does not read every
    // waiting task before it dispatches the first.
    await core.registry.restore(1000, ['RUNNING']);
    await this.requeueReady();
    for (const event of await core.tasks.listOutbox(10_000)) {
      await this.ingestRaised(event).catch((err) => core.logger.warn({ err, eventId: event.eventId }, 'raised event failed at start; the sweep tries again'));
    }
    for (const project of open) {
      await this.approvals.recover(project.projectId);
      // Announce open requests again: a crash may have come between storing one and publishing it.
      for (const approval of await core.projects.listApprovals(project.projectId, 'pending')) {
        await core.bus.publish({ kind: 'approval_requested', body: requestBody(approval) });
      }
      if (project.state === 'active') await this.promotePending(project.projectId);
    }
    // From the bus, a message is acknowledged once its commit is durable: the handlers do
    // not wait for the reactions.
    this.inbound = await core.bus.consume({
      event: (e) => this.ingestEvent(e).then(() => undefined),
      result: (projectId, r) => this.results.submit({ projectId, result: TaskResult.parse(r) }),
      heartbeat: (projectId, h) => this.handleHeartbeat(projectId, h),
      decision: (projectId, d) => this.decide(projectId, d).then(() => undefined),
      control: (projectId, c) => this.control(projectId, c),
    });
    this.running = true;
    // Attempts whose owner is gone (a crash, a stop) are taken over and dispatched again;
    // a live process's are left alone. After consume: answers may be quick.
    await this.scheduler.dispatcher.recoverOrphans();
    this.scheduler.start();
    core.logger.info({ instanceId: core.instanceId, live: core.registry.liveCount }, 'orchestrator started');
  }

  /** Graceful stop: no new dispatches, inbound handlers finish, then actors stop. */
  async stop(): Promise<void> {
    if (!this.running) return;
    this.running = false;
    await this.scheduler.stop();
    await this.inbound?.close();
    this.inbound = null;
    await this.results.drain();
    await this.reactions.idle();
    this.flow.stop();
    await this.budgetChecker.flush();
    this.core.registry.stopAll();
    this.core.projectActors.stopAll();
    this.core.logger.info('orchestrator stopped');
  }

  /**
   * Handles one pipeline event (idempotent by event id); resolves once its effects are
   * durable and its reaction (statuses, approval request, promotions) has run.
   */
  async handleEvent(input: PipelineEventInput): Promise<HandleEventResult> {
    const { reacted, ...result } = await this.ingestEvent(input);
    await reacted;
    return result;
  }

  /** An event's commit; its reaction runs after, in its project's order (`reacted`). */
  private async ingestEvent(input: PipelineEventInput): Promise<IngestOutcome> {
    const parsed = PipelineEvent.safeParse(input);
    if (!parsed.success) {
      throw new ValidationError('invalid event', parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`));
    }
    const event = parsed.data;
    // A project this process holds active in memory is not read first: the ingest writes
    // only if the row is still active, and otherwise leaves the event to the general way.
    const held = event.type === 'PROJECT_CREATED' ? undefined : this.core.projectActors.get(event.projectId);
    let project: ProjectRecord | null | undefined;
    if (held?.record.state === 'active') {
      const result = await this.ingestPipelineEvent(event, held.record, undefined, true);
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
    const duplicate = { duplicate: true, taskIds: [], approvalId: null };
    if (project === undefined) project = await this.core.projects.getProject(event.projectId);
    let newProject: NewProject | undefined;
    if (event.type === 'PROJECT_CREATED') {
      if (!project) newProject = projectFromPayload(event.projectId, event.payload);
    } else if (!project) {
      if (await this.core.projects.isEventProcessed(event.id)) return duplicate;
      throw new ProjectNotFoundError(event.projectId);
    }
    if (project && (project.state === 'completed' || project.state === 'cancelled')) {
      if (await this.core.projects.isEventProcessed(event.id)) return duplicate;
      throw new ValidationError(`project ${event.projectId} is ${project.state}: event ${event.type} refused`);
    }
    return (await this.ingestPipelineEvent(event, project, newProject, false))!;
  }

  /** An event of a known or new project; null when `onlyIfActive` and the project was not active. */
  private async ingestPipelineEvent(
    event: PipelineEvent,
    project: ProjectRecord | null,
    newProject: NewProject | undefined,
    onlyIfActive: boolean,
  ): Promise<IngestOutcome | null> {
    const checkpoints = project?.checkpoints ?? newProject?.checkpoints ?? this.core.mapper.pipeline.checkpoints;
    const atCheckpoint = this.core.config.approval.enabled && checkpoints.includes(event.type);
    const planned = this.core.mapper.mapEventToTasks(event);
    const completes = !atCheckpoint && this.core.mapper.completesProject(event.type);
    return this.ingestion.ingest(
      { id: event.id, type: event.type, projectId: event.projectId, payload: event.payload },
      planned,
      atCheckpoint,
      newProject,
      onlyIfActive,
      completes ? () => this.completeProject(event.projectId) : undefined,
    );
  }

  /**
   * Adds tasks to an existing project directly (outside the pipeline's event map), with
   * the same guarantees as an event: one transaction, idempotent by `eventId`.
   */
  async submitTasks(
    projectId: string,
    tasks: readonly Omit<NewTaskInput, 'projectId'>[],
    eventId = `sub_${randomUUID().replaceAll('-', '')}`,
  ): Promise<HandleEventResult> {
    const project = await this.core.projects.getProject(projectId);
    if (!project) throw new ProjectNotFoundError(projectId);
    if (project.state === 'completed' || project.state === 'cancelled') {
      throw new ValidationError(`project ${projectId} is ${project.state}: tasks refused`);
    }
    const planned = tasks.map((t) => ({ ...t, projectId, taskId: t.taskId ?? newTaskId(), input: t.input ?? {}, dependencies: t.dependencies ?? [] }));
    const { reacted, ...result } = (await this.ingestion.ingest({ id: eventId, type: 'TASKS_SUBMITTED', projectId, payload: {} }, planned, false))!;
    await reacted;
    return result;
  }

  /**
   * A result from an agent; resolves once its effects are durable. Results that arrive
   * together (the bus hands several over at once) are written as one batch.
   */
  async handleResult(projectId: string, input: TaskResult): Promise<void> {
    const item: ResultItem = { projectId, result: TaskResult.parse(input) };
    await this.results.submit(item);
    await item.reacted;
  }

  /** A heartbeat extends the running attempt's deadline (and its lease). */
  async handleHeartbeat(projectId: string, input: Heartbeat): Promise<void> {
    const hb = Heartbeat.parse(input);
    const actor = await this.core.registry.get(hb.taskId);
    if (actor.projectId !== projectId) throw new ValidationError(`task ${hb.taskId} is not a task of project ${projectId}`);
    const now = this.core.clock.now();
    try {
      // Decided on the row when the held copy refuses it (see TaskRegistry.sendMany).
      await this.flow.send(hb.taskId, { type: 'HEARTBEAT', at: now, deadline: now + actor.timeoutMs }, { fencingToken: hb.fencingToken });
    } catch (err) {
      // A heartbeat that crossed the result (or a timeout) on the way is harmless: ignored.
      // One with an older token is not: refused (and dead-lettered).
      if (err instanceof IllegalTransitionError) return;
      throw err;
    }
    await this.scheduler.dispatcher.extendLease(hb.taskId, actor.timeoutMs);
  }

  async decide(projectId: string, input: ApprovalDecided): Promise<ApprovalRecord> {
    return this.approvals.decide(projectId, ApprovalDecided.parse(input));
  }

  /** Runs a scheduler pass now (`dispatchTasks` of the original design); returns how many were dispatched. */
  dispatchTasks(): Promise<number> {
    return this.scheduler.tick();
  }

  async pauseProject(projectId: string, reason = 'paused by user'): Promise<ProjectRecord> {
    return this.projectEvent(projectId, { type: 'PAUSE', reason });
  }

  /** Resumes dispatching: READY tasks go back in the queue, runnable PENDING ones are promoted. */
  async resumeProject(projectId: string): Promise<ProjectRecord> {
    const row = await this.projectEvent(projectId, { type: 'RESUME' });
    await this.promotePending(projectId);
    // After the state change: a READY task a scheduler popped (and dropped) while the
    // project was paused is back in the queue.
    await this.requeueReady(projectId);
    this.scheduler.wake();
    return row;
  }

  /** Cancels every non-final task of the project with the reason, then the project. */
  async cancelProject(projectId: string, reason = 'cancelled by user'): Promise<ProjectRecord> {
    const row = await this.projectEvent(projectId, { type: 'CANCEL', reason });
    const tasks = await this.core.tasks.listByProject(projectId, ['PENDING', 'READY', 'RUNNING', 'WAITING_APPROVAL', 'FAILED']);
    for (const t of tasks) await this.flow.cancelTask(t.taskId, `project cancelled: ${reason}`).catch((err) => {
      if (!(err instanceof IllegalTransitionError)) throw err;
    });
    return row;
  }

  /** Sets the budget limit; a project paused for its budget resumes when it now fits. */
  async setBudget(projectId: string, limit: number | null): Promise<BudgetStatus> {
    const row = await this.core.projects.setBudgetLimit(projectId, limit, new Date(this.core.clock.now()));
    if (row.state === 'paused' && row.pausedReason === BUDGET_EXHAUSTED) await this.resumeProject(projectId);
    await this.budgetChecker.afterChange(projectId, true);
    return this.budgetChecker.getBudgetStatus(projectId);
  }

  async getBudgetStatus(projectId: string): Promise<BudgetStatus> {
    return this.budgetChecker.getBudgetStatus(projectId);
  }

  async getProjectStatus(projectId: string): Promise<ProjectStatus> {
    const project = await this.core.projects.getProject(projectId);
    if (!project) throw new ProjectNotFoundError(projectId);
    return {
      project,
      budget: await this.budgetChecker.getBudgetStatus(projectId),
      tasks: await this.core.tasks.countByStatus(projectId),
      pendingApprovals: await this.core.projects.listApprovals(projectId, 'pending'),
    };
  }

  /** `lap.control.<projectId>` requests. */
  async control(projectId: string, input: ControlRequest): Promise<unknown> {
    const request = ControlRequest.parse(input);
    switch (request.action) {
      case 'pause':
        await this.pauseProject(projectId, request.reason);
        break;
      case 'resume':
        await this.resumeProject(projectId);
        break;
      case 'cancel':
        await this.cancelProject(projectId, request.reason);
        break;
      case 'set_budget':
        await this.setBudget(projectId, request.limit);
        break;
      case 'status':
        break;
    }
    return this.getProjectStatus(projectId);
  }

  // -------------------------------------------------------------------------------------

  /**
   * Raised events, in order (within their project's reaction: their own reactions follow
   * it in the same order, so they are not awaited here).
   */
  private async handleRaised(events: readonly OutboxEvent[]): Promise<void> {
    for (const e of events) await this.ingestRaised(e);
  }

  private async ingestRaised(e: OutboxEvent): Promise<void> {
    await this.ingestEvent({ id: e.eventId, type: e.eventType, projectId: e.projectId, payload: e.payload, occurredAt: e.at });
  }

  /**
   * What reactions left undone, found in the durable state (every REACTION_SWEEP_MS, by
   * the scheduler's sweep): raised events still in the outbox, PENDING tasks whose
   * dependencies are done, failed attempts not yet retried. Each item on its own: one
   * that fails is tried again later, with back-off; a raised event that keeps failing, or
   * fails for good, is dead-lettered with its reason.
   */
  async sweepReactions(): Promise<void> {
    const { core } = this;
    const now = core.clock.now();
    if (now - this.lastReactionSweep < REACTION_SWEEP_MS) return;
    this.lastReactionSweep = now;
    const before = new Date(now - STRAY_AFTER_MS);
    for (const e of await core.tasks.listOutbox(500, before)) {
      const failed = this.raisedFailures.get(e.eventId);
      if (failed && failed.nextAt > now) continue;
      try {
        await this.ingestRaised(e);
        this.raisedFailures.delete(e.eventId);
      } catch (err) {
        const tries = (failed?.tries ?? 0) + 1;
        const permanent = isOrchestratorError(err) && !err.retryable;
        if (permanent || tries >= RAISED_EVENT_TRIES) {
          this.raisedFailures.delete(e.eventId);
          await this.deadLetterRaised(e, err, tries);
        } else {
          this.raisedFailures.set(e.eventId, { tries, nextAt: now + REACTION_SWEEP_MS * 2 ** tries });
          core.logger.warn({ err, eventId: e.eventId, projectId: e.projectId, tries }, 'raised event failed; tried again later');
        }
      }
    }
    const promotable = await core.tasks.listPromotable(before, 1000);
    if (promotable.length) await this.flow.batch.promoteMany(promotable);
    const failed = await core.tasks.loadNonFinal({ limit: 200, statuses: ['FAILED'] });
    for (const t of failed) {
      if (t.updatedAt.getTime() >= before.getTime()) continue;
      await this.flow.afterFailure(t.taskId).catch((err: unknown) => core.logger.warn({ err, taskId: t.taskId }, 'retry of a failed task failed'));
    }
  }

  /** A raised event that cannot be handled: out of the outbox, into the dead letters, with its reason. */
  private async deadLetterRaised(e: OutboxEvent, err: unknown, tries: number): Promise<void> {
    const reason = `raised event ${e.eventType} (${e.eventId}) could not be handled: ${err instanceof Error ? err.message : String(err)}`;
    this.core.logger.error({ err, eventId: e.eventId, projectId: e.projectId, tries }, 'raised event dead-lettered');
    await this.core.deadLetters.record({ taskId: e.taskId, projectId: e.projectId, reason, lastError: reason, attempts: tries, at: new Date(this.core.clock.now()) });
    await this.core.tasks.removeOutbox(e.eventId);
  }

  private async ingestRevision(approval: ApprovalRecord, tasks: PlannedTask[]): Promise<IngestOutcome | null> {
    return this.ingestion.ingest(
      { id: `${approval.approvalId}:rejected`, type: `${approval.checkpoint}_REJECTED`, projectId: approval.projectId, payload: { comment: approval.comment } },
      tasks,
      false,
    );
  }

  private async completeProject(projectId: string): Promise<void> {
    try {
      await this.projectEvent(projectId, { type: 'COMPLETE' });
    } catch (err) {
      if (!(err instanceof IllegalTransitionError)) throw err;
    }
  }

  private async pauseForBudget(projectId: string): Promise<void> {
    try {
      const row = await this.projectEvent(projectId, { type: 'PAUSE', reason: BUDGET_EXHAUSTED });
      this.core.logger.warn({ projectId, spent: row.spent, reserved: row.reserved, limit: row.budgetLimit }, 'budget exhausted: project paused');
      await this.budgetChecker.afterChange(projectId, false);
    } catch (err) {
      if (!(err instanceof IllegalTransitionError)) throw err;
    }
  }

  private async projectEvent(projectId: string, event: ProjectEvent): Promise<ProjectRecord> {
    const actor = await this.core.projectActors.load(projectId);
    const row = await actor.send(event);
    await this.core.bus.publish({ kind: 'project', body: { projectId, state: row.state, reason: row.pausedReason } });
    // A final project actor has stopped; its remaining task actors finish on their own.
    if (row.state === 'completed' || row.state === 'cancelled') this.core.projectActors.drop(projectId);
    return row;
  }

  private async requeueReady(projectId?: string): Promise<void> {
    const { core } = this;
    if (projectId) {
      const ready = await core.tasks.listByProject(projectId, ['READY']);
      await core.queue.putMany(ready.map((t) => ({ taskId: t.taskId, priority: t.priority })));
      return;
    }
    const entries: { taskId: string; priority: number }[] = [];
    for (let offset = 0; ; offset += 10_000) {
      const page = await core.tasks.listReady({ offset, limit: 10_000 });
      entries.push(...page);
      if (page.length < 10_000) break;
    }
    if ((await core.queue.size()) === 0) await core.queue.rebuild(entries);
    else await core.queue.putMany(entries);
  }

  private async promotePending(projectId: string): Promise<void> {
    const pending = await this.core.tasks.listByProject(projectId, ['PENDING']);
    for (let i = 0; i < pending.length; i += 1000) await this.flow.batch.promoteMany(pending.slice(i, i + 1000).map((t) => t.taskId));
  }
}
