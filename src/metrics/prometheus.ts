import { Counter, Gauge, Registry, collectDefaultMetrics } from 'prom-client';
import type { Logger } from 'pino';
import { TASK_STATUSES, type TaskStatus } from '../domain/task.js';
import type { InboundOutcome, Metrics } from '../ports/metrics.js';
import type { OperatorStats } from '../ports/operator-stats.js';
import type { TaskQueue } from '../ports/task-queue.js';
import { LocalCounter, LocalHistogram } from './cells.js';

/** The one prefix of the orchestrator's own metrics (the default process metrics keep their standard names). */
export const METRICS_PREFIX = 'lap_';

/** READY tasks remembered for their READY → RUNNING wait, at most (the oldest forgotten first). */
export const READY_REMEMBERED = 100_000;

/** What this process holds in memory, read on a scrape (see Orchestrator.operatorFigures). */
export interface RuntimeFigures {
  /** Task leases this process holds. */
  leasesHeld: number;
  /** Projects whose reactions (follow-ups of commits) are queued or running here. */
  reactionsPending: number;
  /** Writes committed here whose status notices the bus has not all taken yet, plus the notices it refused. */
  noticesPending: number;
}

/** Where a scrape reads the gauges from: the stored state (one statement), the queue, this process's figures. */
export interface ScrapeSources {
  stats?: OperatorStats;
  queue?: Pick<TaskQueue, 'size'>;
  runtime?: () => RuntimeFigures;
}

const seconds = (ms: number): number => Math.max(0, ms) / 1000;

/** An attempt's outcome label, by the state it ended in. */
const OUTCOME: Record<TaskStatus, string> = {
  PENDING: 'pending',
  READY: 'ready',
  RUNNING: 'running',
  COMPLETED: 'completed',
  FAILED: 'failed',
  CANCELLED: 'cancelled',
  WAITING_APPROVAL: 'waiting_approval',
};


/**
 * The operator's metrics in the Prometheus format (prom-client), on a registry of its own
 * (never the global one: several orchestrators in one process do not clash). Counters and
 * histograms are updated as the core reports (the Metrics port: a map lookup and an
 * increment, no I/O); the gauges of the stored state are read on a scrape, in one SQL
 * statement, with the queue's size and this process's in-memory figures.
 *
 * Stored-state gauges (tasks by status, approvals pending, budget, backlogs, queue depth)
 * are the whole deployment's: every instance reports the same figures (aggregate them
 * with max, not sum). Counters, histograms, leases, reactions and notices are this
 * process's (sum them).
 */
export class PrometheusMetrics implements Metrics {
  readonly registry = new Registry();
  // The hot path's (every transition, every message): cells of plain numbers (cells.ts).
  private readonly transitions: LocalCounter;
  private readonly readyWait: LocalHistogram;
  private readonly attemptDuration: LocalHistogram;
  private readonly inboundMessages: LocalCounter;
  private readonly reactions: LocalCounter;
  // The rare ones: prom-client's own.
  private readonly deadLetters: Counter<'source' | 'reason'>;
  private readonly approvalWait: LocalHistogram;
  private readonly collectErrors: Counter<'source'>;
  private readonly tasks: Gauge<'status'>;
  private readonly queueDepth: Gauge;
  private readonly approvalsPending: Gauge;
  private readonly budgetSpent: Gauge;
  private readonly budgetReserved: Gauge;
  private readonly outboxBacklog: Gauge;
  private readonly dispatchBacklog: Gauge;
  private readonly leasesHeld: Gauge;
  private readonly reactionsPending: Gauge;
  private readonly noticesPending: Gauge;
  /** When each task became READY here (epoch ms), until it is dispatched or cancelled. */
  private readonly readySince = new Map<string, number>();
  private sources: ScrapeSources = {};
  private scraping: Promise<void> | null = null;

  constructor(private readonly options: { logger?: Logger; defaultMetrics?: boolean } = {}) {
    const registers = [this.registry];
    const p = METRICS_PREFIX;
    this.transitions = new LocalCounter(`${p}task_transitions_total`, 'Committed task transitions, by task type, from and to (from="none": the creation)', ['task_type', 'from', 'to'], this.registry);
    this.readyWait = new LocalHistogram(`${p}task_ready_wait_seconds`, 'Time from READY to RUNNING (tasks made READY by this process)', ['task_type'], [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300], this.registry);
    this.attemptDuration = new LocalHistogram(`${p}task_attempt_duration_seconds`, 'Duration of an attempt, RUNNING to its end, by task type and outcome (completed, failed, cancelled)', ['task_type', 'outcome'], [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600], this.registry);
    this.inboundMessages = new LocalCounter(`${p}inbound_messages_total`, 'Inbound messages settled, by kind (event, result, results, heartbeat, decision, control, invalid) and outcome (handled, retried, dead_lettered, refused)', ['kind', 'outcome'], this.registry);
    this.deadLetters = new Counter({
      name: `${p}dead_letters_total`,
      help: 'Dead letters, by source (task: a task or raised event given up on; message: an inbound message) and reason code',
      labelNames: ['source', 'reason'],
      registers,
    });
    this.approvalWait = new LocalHistogram(`${p}approval_wait_seconds`, 'Time from an approval request to its decision, by decision (approved, rejected, expired)', ['decision'], [1, 10, 60, 300, 900, 1800, 3600, 7200, 14400, 43200, 86400], this.registry);
    this.reactions = new LocalCounter(`${p}reactions_total`, 'Reactions (a project\'s follow-ups of a commit) run, by reaction and outcome (ok, failed: the sweep finishes it)', ['reaction', 'outcome'], this.registry);
    this.collectErrors = new Counter({
      name: `${p}metrics_collect_errors_total`,
      help: 'Scrapes whose source could not be read (its gauges are left out of that scrape), by source',
      labelNames: ['source'],
      registers,
    });
    this.tasks = new Gauge({ name: `${p}tasks`, help: 'Stored tasks by status (the whole deployment)', labelNames: ['status'], registers });
    this.queueDepth = new Gauge({ name: `${p}queue_depth`, help: 'READY tasks in the ready queue (the whole deployment)', registers });
    this.approvalsPending = new Gauge({ name: `${p}approvals_pending`, help: 'Approval requests waiting for a decision (the whole deployment)', registers });
    this.budgetSpent = new Gauge({ name: `${p}budget_spent`, help: 'Budget spent, summed over every project, in the budgets\' currency (the whole deployment)', registers });
    this.budgetReserved = new Gauge({ name: `${p}budget_reserved`, help: 'Budget reserved by tasks not yet settled, summed over every project (the whole deployment)', registers });
    this.outboxBacklog = new Gauge({ name: `${p}outbox_backlog`, help: 'Raised events not yet handled, in the outbox (the whole deployment)', registers });
    this.dispatchBacklog = new Gauge({ name: `${p}dispatch_outbox_backlog`, help: 'Dispatches written RUNNING whose publish the bus has not confirmed (the whole deployment)', registers });
    this.leasesHeld = new Gauge({ name: `${p}leases_held`, help: 'Task leases this process holds', registers });
    this.reactionsPending = new Gauge({ name: `${p}reactions_pending`, help: 'Projects whose reactions are queued or running in this process', registers });
    this.noticesPending = new Gauge({ name: `${p}notices_pending`, help: 'Writes of this process whose status notices the bus has not all taken yet, and notices it refused (retried)', registers });
    if (options.defaultMetrics ?? true) collectDefaultMetrics({ register: this.registry });
  }

  /** Where the scrape-time gauges come from (once the service runs); unset sources leave their gauges out. */
  attach(sources: ScrapeSources): void {
    this.sources = sources;
  }

  get contentType(): string {
    return this.registry.contentType;
  }

  /** The metrics in the Prometheus text format, the gauges read now (concurrent scrapes share one read). */
  async scrape(): Promise<string> {
    this.scraping ??= this.collect().finally(() => (this.scraping = null));
    await this.scraping;
    return this.registry.metrics();
  }

  // ---- the Metrics port ---------------------------------------------------------------

  taskStep(taskId: string, taskType: string, from: TaskStatus | null, to: TaskStatus, at: number, startedAt: number | null): void {
    this.transitions.at(taskType, from ?? 'none', to).value++;
    if (to === 'READY') {
      if (from !== 'READY') {
        this.readySince.set(taskId, at);
        if (this.readySince.size > READY_REMEMBERED) this.readySince.delete(this.readySince.keys().next().value!);
      }
    } else if (from === 'READY') {
      const since = this.readySince.get(taskId);
      if (since !== undefined) {
        this.readySince.delete(taskId);
        if (to === 'RUNNING') this.readyWait.at(taskType).observe(seconds(at - since));
      }
    } else if (to === 'COMPLETED' || to === 'CANCELLED') {
      // Made READY here, dispatched by another instance: forgotten once seen final.
      this.readySince.delete(taskId);
    }
    if (from === 'RUNNING' && to !== 'RUNNING' && startedAt !== null) {
      this.attemptDuration.at(taskType, OUTCOME[to]).observe(seconds(at - startedAt));
    }
  }

  inbound(kind: string, outcome: InboundOutcome): void {
    this.inboundMessages.at(kind, outcome).value++;
  }

  deadLetter(source: 'task' | 'message', code: string): void {
    this.deadLetters.inc({ source, reason: code });
  }

  approvalDecided(decision: string, waitMs: number): void {
    this.approvalWait.at(decision).observe(seconds(waitMs));
  }

  reaction(what: string, failed: boolean): void {
    this.reactions.at(what, failed ? 'failed' : 'ok').value++;
  }

  // ---- internals ----------------------------------------------------------------------

  private async collect(): Promise<void> {
    const { stats, queue, runtime } = this.sources;
    const failed = (source: string, err: unknown, gauges: readonly Gauge<string>[]): void => {
      for (const g of gauges) g.reset();
      this.collectErrors.inc({ source });
      this.options.logger?.warn({ err, source }, 'metrics: a source could not be read');
    };
    const stored = [this.tasks, this.approvalsPending, this.budgetSpent, this.budgetReserved, this.outboxBacklog, this.dispatchBacklog];
    await Promise.all([
      stats
        ?.read()
        .then((c) => {
          for (const status of TASK_STATUSES) this.tasks.set({ status }, c.tasksByStatus[status] ?? 0);
          this.approvalsPending.set(c.approvalsPending);
          this.budgetSpent.set(c.budgetSpent);
          this.budgetReserved.set(c.budgetReserved);
          this.outboxBacklog.set(c.outboxBacklog);
          this.dispatchBacklog.set(c.dispatchBacklog);
        })
        .catch((err: unknown) => failed('postgres', err, stored)),
      queue
        ?.size()
        .then((n) => this.queueDepth.set(n))
        .catch((err: unknown) => failed('redis', err, [this.queueDepth])),
    ]);
    if (runtime) {
      const r = runtime();
      this.leasesHeld.set(r.leasesHeld);
      this.reactionsPending.set(r.reactionsPending);
      this.noticesPending.set(r.noticesPending);
    }
  }
}
