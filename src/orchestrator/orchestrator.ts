import { randomUUID } from 'node:crypto';
import type { PipelineEventInput } from '../domain/pipeline.js';
import type { NewTaskInput } from '../domain/task.js';
import { ApprovalDecided, ControlRequest, Heartbeat, QueryRequest, TaskResult, type BudgetStatus, type QueryRequestInput } from '../domain/messages.js';
import type { InboundSubscription } from '../ports/event-bus.js';
import type { ApprovalRecord, ProjectRecord } from '../ports/project-store.js';
import { ApprovalManager } from '../approvals/approvals.js';
import { BudgetChecker } from '../budget/budget-checker.js';
import { Cancellation } from '../control/cancellation.js';
import { ProjectControl, type ProjectStatus } from '../control/control.js';
import { ProjectLifecycle } from '../control/lifecycle.js';
import { Queries, type QueryAnswers } from '../queries/queries.js';
import { Dispatcher, STRAY_AFTER_MS } from '../dispatch/dispatcher.js';
import { WatchedQueue } from '../dispatch/watched-queue.js';
import { Ingest } from '../ingest/ingest.js';
import { RaisedEvents } from '../ingest/raised-events.js';
import { Promotion } from '../promotion/promotion.js';
import { Reactions } from '../reactions/reactions.js';
import { Timers } from '../reactions/timers.js';
import { Results, type ResultItem } from '../results/results.js';
import { Retries } from '../retries/retries.js';
import { ProjectRetry, type RetryOutcome } from '../retries/project-retry.js';
import { TaskScheduler } from './scheduler.js';
import type { Core } from './core.js';

export type { ProjectStatus } from '../control/control.js';

/** How often the reactions a failure left undone are looked for in the durable state. */
export const REACTION_SWEEP_MS = 2_000;

export interface HandleEventResult {
  duplicate: boolean;
  taskIds: string[];
  approvalId: string | null;
}

/**
 * The orchestrator: it builds the use cases over the shared context and connects them to
 * the event bus. Each use case has one home (see the README's Architecture section):
 * ingest/ (events → tasks), dispatch/ (READY → RUNNING → the agent), results/ (results
 * and heartbeats), approvals/ (checkpoints), retries/ (timeouts and retries), control/
 * (pause, resume, cancel, budget), with promotion/ and reactions/ as the follow-ups they
 * share. Every use case decides on the rows, commits, then reacts; a message from the bus
 * is acknowledged once its commit is durable, and the public methods below resolve once
 * their reactions have run as well.
 */
export class Orchestrator {
  readonly budgetChecker: BudgetChecker;
  readonly scheduler: TaskScheduler;
  readonly approvals: ApprovalManager;
  private readonly ingest: Ingest;
  private readonly raised: RaisedEvents;
  private readonly results: Results;
  private readonly promotion: Promotion;
  private readonly retries: Retries;
  private readonly controls: ProjectControl;
  private readonly queries: Queries;
  private readonly timers: Timers;
  private readonly reactions: Reactions;
  private inbound: InboundSubscription | null = null;
  private running = false;

  readonly core: Core;

  constructor(core: Core, budget: BudgetChecker = new BudgetChecker(core)) {
    const queue = new WatchedQueue(core.queue);
    core = { ...core, queue };
    this.core = core;
    this.budgetChecker = budget;
    // An owed budget notice is published as the project's status is when it is retried.
    core.notices.setBudgetSource(
      (projectId) => budget.getBudgetStatus(projectId),
      (projectId) => budget.figuresOf(projectId),
    );
    this.reactions = new Reactions(core.logger, core.metrics);
    this.timers = new Timers(core.clock, core.logger);
    this.scheduler = new TaskScheduler(core, new Dispatcher(core, queue));
    // The project machine's steps; their reactions are performed by the use cases built below.
    const lifecycle = new ProjectLifecycle(core, {
      announceBudget: (projectId, level) => budget.announceLevel(projectId, level),
      approval: (step, reaction) => this.approvals.react(step, reaction),
      resumeWork: (projectId) => this.controls.resumeWork(projectId),
      cancelWork: (projectId, reason) => this.controls.cancelWork(projectId, reason),
    });
    const cancellation = new Cancellation(core, budget, this.scheduler);
    this.promotion = new Promotion(core, budget, lifecycle, cancellation, this.scheduler, this.timers);
    const retries = (this.retries = new Retries(core, budget, this.scheduler, this.promotion, cancellation, lifecycle, this.timers));
    this.ingest = new Ingest(core, this.scheduler, budget, this.promotion, lifecycle, this.reactions);
    this.raised = new RaisedEvents(core, this.ingest, lifecycle);
    this.results = new Results(core, budget, this.scheduler, this.promotion, retries, this.raised, this.reactions);
    this.approvals = new ApprovalManager(core, budget, this.scheduler, this.promotion, cancellation, lifecycle, this.ingest);
    this.queries = new Queries(core);
    this.controls = new ProjectControl(core, budget, this.scheduler, lifecycle, this.promotion, cancellation, new ProjectRetry(core, this.ingest, lifecycle));
    // What each use case finishes from the durable state, once per scheduler interval.
    this.scheduler.addSweep('timeouts', (now) => retries.sweepTimeouts(now));
    this.scheduler.addSweep('retries', (now) => retries.sweepDue(now));
    this.scheduler.addSweep('approvals', () => this.approvals.sweepExpired());
    this.scheduler.addSweep('reactions', (now) => this.sweepReactions(now), REACTION_SWEEP_MS);
  }

  get isRunning(): boolean {
    return this.running;
  }

  /** What this process holds in memory, for the operator's metrics (read on a scrape). */
  operatorFigures(): { leasesHeld: number; reactionsPending: number; noticesPending: number } {
    const notices = this.core.notices.counts;
    return {
      leasesHeld: this.scheduler.dispatcher.leasesHeld,
      reactionsPending: this.reactions.pending,
      noticesPending: notices.inFlight + notices.pending + notices.refused,
    };
  }

  /**
   * Recovers and starts: loads the cost means, lifts the fencing counter above every
   * stored token, restores the actors of RUNNING tasks, puts READY tasks back in the
   * queue (it may have lost them), replays unhandled raised events and interrupted
   * decisions, promotes what became runnable, then consumes the event bus, takes over
   * the attempts whose owner is gone and starts the scheduler.
   */
  async start(): Promise<void> {
    if (this.running) return;
    const { core } = this;
    // Before any write: the notice watermark (and a previous incarnation's unannounced notices).
    await core.notices.start();
    await this.budgetChecker.loadObservations();
    await this.scheduler.dispatcher.liftFencing();
    // Project actors first: restored task actors are created as their children.
    const open = await core.projects.listProjects(['active', 'paused', 'failed']);
    for (const project of open) await core.projectActors.load(project.projectId);
    // RUNNING tasks only; the others' passivated actors are loaded from their rows when
    // first needed — a batch at a time, by the scheduler, the results and the promotions —
    // so a restart does not read every waiting task before it dispatches the first.
    await core.registry.restore(1000, ['RUNNING']);
    await this.scheduler.dispatcher.requeueReady();
    await this.raised.replay();
    for (const project of open) {
      if (project.state !== 'failed') await this.retries.recoverFailures(project.projectId);
      await this.approvals.recover(project.projectId);
      // Announce open requests again: a crash may have come between storing one and publishing it.
      // One that cannot be published (NATS down, refused) is logged: it fails neither the
      // start nor another project; the reviewer still finds it in the project's status.
      for (const approval of await core.projects.listApprovals(project.projectId, 'pending')) {
        await this.approvals.announce(approval).catch((err: unknown) => {
          core.logger.warn({ err, approvalId: approval.approvalId, projectId: project.projectId }, 'could not announce a pending approval request at start');
        });
      }
      if (project.state === 'active') await this.promotion.promotePending(project.projectId);
    }
    // From the bus, a message is acknowledged once its commit is durable: the handlers do
    // not wait for the reactions.
    this.inbound = await core.bus.consume({
      // Validated by the bus against the wire schemas: not parsed again.
      event: (e) => this.ingest.accept(e).then(() => undefined),
      result: (projectId, result) => this.results.submit({ projectId, result }),
      heartbeat: (projectId, h) => this.results.heartbeat(projectId, h),
      decision: (projectId, d) => this.approvals.decide(projectId, d).then(() => undefined),
      control: (projectId, c) => this.controls.handle(projectId, c),
      query: (q) => this.queries.handle(q),
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
    this.timers.stop();
    await this.budgetChecker.flush();
    // The notices still pending are waited for (bounded); what is left, another instance announces.
    await this.core.notices.stop();
    this.core.registry.stopAll();
    this.core.projectActors.stopAll();
    this.core.logger.info('orchestrator stopped');
  }

  /**
   * Handles one pipeline event (idempotent by event id); resolves once its effects are
   * durable and its reaction (statuses, approval request, promotions) has run.
   */
  async handleEvent(input: PipelineEventInput): Promise<HandleEventResult> {
    const { reacted, ...result } = await this.ingest.event(input);
    await reacted;
    return result;
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
    const { reacted, ...result } = await this.ingest.submit(projectId, tasks, eventId);
    await reacted;
    return result;
  }

  /**
   * A result from an agent; resolves once its effects are durable and its reaction has
   * run. Results that arrive together (the bus hands several over at once) are written
   * as one batch.
   */
  async handleResult(projectId: string, input: TaskResult): Promise<void> {
    const item: ResultItem = { projectId, result: TaskResult.parse(input) };
    await this.results.submit(item);
    await item.reacted;
  }

  /** A heartbeat extends the running attempt's deadline (and its lease). */
  handleHeartbeat(projectId: string, input: Heartbeat): Promise<void> {
    return this.results.heartbeat(projectId, Heartbeat.parse(input));
  }

  async decide(projectId: string, input: ApprovalDecided): Promise<ApprovalRecord> {
    return this.approvals.decide(projectId, ApprovalDecided.parse(input));
  }

  /** Runs a scheduler pass now (`dispatchTasks` of the original design); returns how many were dispatched. */
  dispatchTasks(): Promise<number> {
    return this.scheduler.tick();
  }

  pauseProject(projectId: string, reason?: string): Promise<ProjectRecord> {
    return this.controls.pause(projectId, reason);
  }

  /** Resumes dispatching: READY tasks go back in the queue, runnable PENDING ones are promoted. */
  resumeProject(projectId: string): Promise<ProjectRecord> {
    return this.controls.resume(projectId);
  }

  /** Cancels every non-final task of the project with the reason, then the project. */
  cancelProject(projectId: string, reason?: string): Promise<ProjectRecord> {
    return this.controls.cancel(projectId, reason);
  }

  /**
   * Retries a failed project: each task that failed for good is planned again with fresh
   * attempts, with its cancelled dependents, and the project is active again.
   */
  retryProject(projectId: string): Promise<RetryOutcome> {
    return this.controls.retry(projectId);
  }

  /** Sets the budget limit; a project paused for its budget resumes when it now fits. */
  setBudget(projectId: string, limit: number | null): Promise<BudgetStatus> {
    return this.controls.setBudget(projectId, limit);
  }

  getBudgetStatus(projectId: string): Promise<BudgetStatus> {
    return this.budgetChecker.getBudgetStatus(projectId);
  }

  getProjectStatus(projectId: string): Promise<ProjectStatus> {
    return this.controls.status(projectId);
  }

  /** `lap.control.<projectId>` requests. */
  control(projectId: string, input: ControlRequest): Promise<ProjectStatus> {
    return this.controls.handle(projectId, ControlRequest.parse(input));
  }

  /** `lap.query.<kind>` requests: a page of projects, of a project's tasks, or of dead letters. */
  query<K extends QueryRequest['query']>(input: QueryRequestInput & { query: K }): Promise<QueryAnswers[K]> {
    return this.queries.handle(QueryRequest.parse(input)) as Promise<QueryAnswers[K]>;
  }

  /**
   * What reactions left undone, found in the durable state (every REACTION_SWEEP_MS, by
   * the scheduler's sweep): raised events still in the outbox, PENDING tasks whose
   * dependencies are done, failed attempts not yet retried. Only what is older than
   * STRAY_AFTER_MS: younger work is still in its reaction.
   */
  async sweepReactions(now = this.core.clock.now()): Promise<void> {
    const before = new Date(now - STRAY_AFTER_MS);
    await this.raised.sweep(before);
    await this.promotion.sweep(before);
    await this.retries.sweepFailed(before);
  }
}
