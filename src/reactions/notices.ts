import type { Logger } from 'pino';
import { isOrchestratorError, ProjectNotFoundError, ServiceUnavailableError } from '../errors.js';
import type { BudgetStatus, TaskStatusMessage } from '../domain/messages.js';
import type { TaskStatus } from '../domain/task.js';
import type { Clock } from '../ports/clock.js';
import type { Commit, EventIngest, IngestResult, TransitionOutcome, TransitionWrite } from '../ports/commit.js';
import type { EventBus } from '../ports/event-bus.js';
import type { AuditNotice, NoticeLedger } from '../ports/notice-ledger.js';
import type { NewTaskRecord, TaskStore } from '../ports/task-store.js';

/** Pending notices kept in memory at most; past this their copies are dropped and replayed from the audit log. */
export const MAX_PENDING_NOTICES = 5_000;
/** Back-off of the retries of notices the bus refused: from the first, doubling, capped. */
export const NOTICE_RETRY_MS = { first: 100, max: 5_000 } as const;
/** Audit rows read per page when notices are replayed. */
export const REPLAY_PAGE = 500;
/** How often the watermark is written (at most; a quarter of the stale period when that is shorter). */
export const HEARTBEAT_MS = 1_000;
/** Settles of a project within this window are published as one budget status (the latest). */
export const BUDGET_COALESCE_MS = 50;
/**
 * The window grows with the cost of the status (its forecast aggregates the project's
 * tasks): at least this many times the last computation's duration, so that a big busy
 * project spends at most ~1/20 of the time computing statuses nobody asked for.
 */
export const BUDGET_COST_FACTOR = 20;

/** What a budget status is checked against once published: the projects row's figures. */
export interface BudgetFigures {
  limit: number | null;
  spent: number;
  reserved: number;
}

/** The stored figures (the row), or null when the project is gone. */
export type BudgetFiguresSource = (projectId: string) => Promise<BudgetFigures | null>;

const sameFigures = (a: BudgetFigures, b: BudgetFigures): boolean => a.limit === b.limit && a.spent === b.spent && a.reserved === b.reserved;

export interface NoticeTrackerDeps {
  instanceId: string;
  ledger: NoticeLedger;
  bus: EventBus;
  clock: Clock;
  logger: Logger;
  /** NOTICE_STALE_AFTER: an instance whose heartbeat is older than this is gone, and its notices are replayed. */
  staleAfterMs: number;
  heartbeatMs?: number;
  maxPending?: number;
  /**
   * A committed notice that no reaction handed to the bus within this long (the reaction
   * failed before publishing) is replayed from the audit log. Default: the stale period,
   * at least 30 s.
   */
  pendingTimeoutMs?: number;
  /** How long a graceful stop waits for the pending notices. */
  stopTimeoutMs?: number;
}

/** The commit of one write, from the floor it captured: its notices, until the bus takes them. */
interface Pending {
  /** The lowest audit id the write could get: the sequence value of the last heartbeat before it was sent, + 1. */
  floor: number;
  remaining: number;
  committedAt: number;
  dropped: boolean;
  keys: readonly NoticeKey[];
}

/** What identifies a status notice to its commit: the task, the step and its time. */
/** A status notice's identity: the task, the step and its time (the audit row's). */
interface NoticeKey {
  taskId: string;
  from: TaskStatus | null;
  to: TaskStatus;
  at: string;
}

const keyOf = (taskId: string, from: TaskStatus | null, to: TaskStatus, at: string): NoticeKey => ({ taskId, from, to, at });

/** The audit rows a created task gets (see NewTaskRecord.createdSteps): the creation, then each step. */
function creationKeys(t: NewTaskRecord): NoticeKey[] {
  const at = t.createdAt.toISOString();
  const steps = t.createdSteps ?? [];
  return [keyOf(t.taskId, null, steps.length ? 'PENDING' : t.status, at), ...steps.map((s) => keyOf(t.taskId, s.from, s.to, at))];
}

/** An error after which nothing was written for sure: a typed refusal, not a lost connection. */
const nothingWritten = (err: unknown): boolean => isOrchestratorError(err) && !(err instanceof ServiceUnavailableError);

/** A status notice of an audit row, as the live path builds it. */
export function statusOfAudit(a: AuditNotice): TaskStatusMessage {
  return { taskId: a.taskId, projectId: a.projectId, taskType: a.taskType, from: a.from, to: a.to, at: a.at.toISOString(), attempt: a.attempt };
}

/**
 * Status and budget notices, at least once. The durable record of every status is its
 * audit row (task_transitions), written in the statement of its transition; this tracker
 * keeps this instance's watermark into the audit log (its `instances` row, the
 * NoticeLedger): every audit row it wrote with id >= `noticesFrom` may not have been
 * announced yet. No write per transition: the watermark is written by a heartbeat
 * (HEARTBEAT_MS).
 *
 * - Every write that appends audit rows (the Commit port, TaskStore.createTasks: wrapped
 *   once, in the factory, by `commit()` and `tasks()`) captures, before it is sent, the
 *   floor `seqFloor + 1`: `seqFloor` is the audit id sequence's value read by the last
 *   heartbeat, and ids are handed out in nextval order, so whatever the write gets is at
 *   or above its floor even when it commits after a later heartbeat. It is in flight
 *   until it resolves; once committed its notices are pending until the bus takes them.
 *   `noticesFrom` is the lowest floor in flight or pending (or owed, below), else
 *   `seqFloor + 1`.
 * - A status the bus refuses stays pending and is tried again with capped back-off
 *   (NOTICE_RETRY_MS) until the bus takes it. Past MAX_PENDING_NOTICES the in-memory
 *   copies are dropped, the watermark kept, and once the bus answers this instance's audit
 *   rows from there are replayed (`listAuditSince`): a consumer may see a status twice.
 * - Budget statuses: a committed write that settles a task's budget (or `budgetChanged`)
 *   makes the project's budget notice owed, with the write's floor, so the watermark stays
 *   below its audit rows until the notice is out (a restart or another instance replays
 *   them and owes it again). Each project's owed notice is published by one run at a time
 *   (in this instance): the status read from the row after the change, published, then
 *   the row read again; a row that moved on meanwhile (a settle here, or on another
 *   instance whose status may have arrived first) is published again, so the last status
 *   published is the row's. Settles within a short window are coalesced (the latest
 *   wins); a read or publish that fails leaves the notice owed, retried with the capped
 *   back-off, until the row's figures are out.
 * - Every heartbeat, an instance whose heartbeat is older than the stale period is
 *   claimed (one claimer), its audit rows from its watermark replayed, then the current
 *   budget status of every project they touched; then its row is deleted. At start, this
 *   instance's own row (a restart under the same INSTANCE_ID) is replayed the same way.
 *   A graceful stop waits (bounded) for the pending notices, then deletes the row if
 *   nothing is left, or leaves it to another instance.
 */
export class NoticeTracker {
  private seqFloor = 0;
  private ticket = 0;
  private readonly inFlight = new Map<number, number>();
  private readonly pending = new Set<Pending>();
  /**
   * Per task, its notices not yet taken by the bus, with their commit's entry: looked up by
   * the task id (a string whose hash V8 keeps), then the step — no key string built per notice.
   */
  private readonly byTask = new Map<string, { key: NoticeKey; entry: Pending }[]>();
  /** Statuses the bus refused, to be tried again. */
  private refused: TaskStatusMessage[] = [];
  /**
   * Projects whose budget status is owed, with the floor that keeps one of their audit rows
   * in the window, and a version raised by every change (a run that published an older
   * one leaves the notice owed).
   */
  private readonly owedBudgets = new Map<string, { floor: number; version: number }>();
  private budgetVersion = 0;
  /** The run publishing each project's owed budget status (one at a time per project). */
  private readonly budgetRuns = new Map<string, Promise<boolean>>();
  /** Projects whose owed status waits for its coalescing window. */
  private readonly budgetTimers = new Map<string, unknown>();
  /** Projects whose owed status is wanted at once (a level crossed): no coalescing window. */
  private readonly budgetUrgent = new Set<string>();
  /** How long the last status of a project took to compute (ms), for its window (bounded, oldest dropped). */
  private readonly budgetCostMs = new Map<string, number>();
  /** Per project, the floor of the last committed write that changed its budget (bounded, oldest dropped). */
  private readonly budgetFloors = new Map<string, number>();
  /** The own replay in progress: its next id. */
  private replayCursor: number | null = null;
  /** Own audit rows to replay from, owed since the replay in progress started. */
  private owedFrom: number | null = null;
  private replaying = false;
  private retryDelay: number = NOTICE_RETRY_MS.first;
  private retryTimer: unknown = null;
  private retrying: Promise<void> | null = null;
  private loopTimer: unknown = null;
  private ticking: Promise<void> = Promise.resolve();
  private started = false;
  private stopped = false;
  private budgetOf: ((projectId: string) => Promise<BudgetStatus>) | null = null;
  private figuresOf: BudgetFiguresSource | null = null;
  private readonly heartbeatMs: number;
  private readonly maxPending: number;
  private readonly pendingTimeoutMs: number;
  private readonly stopTimeoutMs: number;

  constructor(private readonly deps: NoticeTrackerDeps) {
    this.heartbeatMs = deps.heartbeatMs ?? Math.max(10, Math.min(HEARTBEAT_MS, deps.staleAfterMs / 4));
    this.maxPending = deps.maxPending ?? MAX_PENDING_NOTICES;
    this.pendingTimeoutMs = deps.pendingTimeoutMs ?? Math.max(deps.staleAfterMs, 30_000);
    this.stopTimeoutMs = deps.stopTimeoutMs ?? 5_000;
  }

  /**
   * Where a budget status is read from (the budget checker's `getBudgetStatus`): owed
   * budgets are published as they are now; and where the stored figures are read from to
   * check a published status against the row (default: the status source itself).
   */
  setBudgetSource(source: (projectId: string) => Promise<BudgetStatus>, figures?: BudgetFiguresSource): void {
    this.budgetOf = source;
    this.figuresOf = figures ?? null;
  }

  /** Every audit row of this instance with id >= this may not have been announced yet. */
  noticesFrom(): number {
    let min = this.seqFloor + 1;
    for (const floor of this.inFlight.values()) if (floor < min) min = floor;
    for (const p of this.pending) if (p.floor < min) min = p.floor;
    for (const { floor } of this.owedBudgets.values()) if (floor < min) min = floor;
    if (this.replayCursor !== null && this.replayCursor < min) min = this.replayCursor;
    if (this.owedFrom !== null && this.owedFrom < min) min = this.owedFrom;
    return min;
  }

  /** Notices neither in flight, pending nor owed. */
  get idle(): boolean {
    return this.inFlight.size === 0 && this.pending.size === 0 && this.refused.length === 0 && this.owedBudgets.size === 0 && this.replayCursor === null && this.owedFrom === null;
  }

  /** For tests and metrics: what is tracked. */
  get counts(): { inFlight: number; pending: number; refused: number; owedBudgets: number; replaying: boolean } {
    return { inFlight: this.inFlight.size, pending: this.pending.size, refused: this.refused.length, owedBudgets: this.owedBudgets.size, replaying: this.replayCursor !== null || this.owedFrom !== null };
  }

  // ---- the writes ---------------------------------------------------------------------

  /** The Commit port, each write tracked (see the class comment). */
  commit(inner: Commit): Commit {
    return {
      applyTransition: async (w: TransitionWrite) => {
        const ticket = this.begin();
        try {
          const version = await inner.applyTransition(w);
          this.committed(ticket, [keyOf(w.taskId, w.from, w.to, w.at.toISOString())], w.budget ? [w.budget.projectId] : [], settles(w) ? [w.budget!.projectId] : []);
          return version;
        } catch (err) {
          this.failed(ticket, err);
          throw err;
        }
      },
      applyTransitions: async (writes: readonly TransitionWrite[]) => {
        const ticket = this.begin();
        let outcomes: TransitionOutcome[];
        try {
          outcomes = await inner.applyTransitions(writes);
        } catch (err) {
          this.failed(ticket, err);
          throw err;
        }
        const keys: NoticeKey[] = [];
        const budgets = new Set<string>();
        const settled = new Set<string>();
        writes.forEach((w, i) => {
          if (!outcomes[i]?.ok) return;
          keys.push(keyOf(w.taskId, w.from, w.to, w.at.toISOString()));
          if (w.budget) budgets.add(w.budget.projectId);
          if (settles(w)) settled.add(w.budget!.projectId);
        });
        this.committed(ticket, keys, [...budgets], [...settled]);
        return outcomes;
      },
      ingestEvent: async (ingest: EventIngest) => {
        const ticket = this.begin();
        let result: IngestResult;
        try {
          result = await inner.ingestEvent(ingest);
        } catch (err) {
          this.failed(ticket, err);
          throw err;
        }
        const written = !result.written ? [] : result.ready && ingest.ready ? withReady(ingest.tasks, ingest.ready.tasks) : ingest.tasks;
        this.committed(ticket, written.flatMap(creationKeys), result.ready ? [ingest.projectId] : [], []);
        return result;
      },
    };
  }

  /** The TaskStore, its one write that appends audit rows (createTasks) tracked. */
  tasks(inner: TaskStore): TaskStore {
    const createTasks = async (tasks: readonly NewTaskRecord[], by: string): Promise<void> => {
      const ticket = this.begin();
      try {
        await inner.createTasks(tasks, by);
      } catch (err) {
        this.failed(ticket, err);
        throw err;
      }
      this.committed(ticket, tasks.flatMap(creationKeys), [], []);
    };
    // Methods bound once (not at every call: the store is on every hot path).
    const bound = new Map<string | symbol, unknown>([['createTasks', createTasks]]);
    return new Proxy(inner, {
      get(target, prop) {
        const cached = bound.get(prop);
        if (cached !== undefined) return cached;
        const value: unknown = Reflect.get(target, prop);
        if (typeof value !== 'function') return value;
        const fn = (value as (...args: unknown[]) => unknown).bind(target);
        bound.set(prop, fn);
        return fn;
      },
      // A method replaced on the store (a test's spy) is bound again at its next use.
      set(target, prop, value) {
        if (prop !== 'createTasks') bound.delete(prop);
        return Reflect.set(target, prop, value);
      },
    });
  }

  /** A write is about to be sent: its floor is captured now, before the statement. */
  private begin(): number {
    const ticket = ++this.ticket;
    this.inFlight.set(ticket, this.seqFloor + 1);
    return ticket;
  }

  /**
   * A write committed: its notices are pending; `budgetProjects`' amounts changed; the
   * budget notices of `settledProjects` (a settle: a release or a spend) are owed from now.
   */
  private committed(ticket: number, keys: readonly NoticeKey[], budgetProjects: readonly string[], settledProjects: readonly string[]): void {
    const floor = this.inFlight.get(ticket)!;
    this.inFlight.delete(ticket);
    for (const projectId of budgetProjects) {
      this.budgetFloors.delete(projectId);
      this.budgetFloors.set(projectId, floor);
      if (this.budgetFloors.size > this.maxPending) this.budgetFloors.delete(this.budgetFloors.keys().next().value!);
    }
    for (const projectId of settledProjects) void this.budgetChanged(projectId);
    if (keys.length === 0) return;
    const entry: Pending = { floor, remaining: keys.length, committedAt: this.deps.clock.now(), dropped: false, keys };
    this.pending.add(entry);
    for (const key of keys) {
      const list = this.byTask.get(key.taskId);
      if (list) list.push({ key, entry });
      else this.byTask.set(key.taskId, [{ key, entry }]);
    }
    if (this.pending.size > this.maxPending) this.dropCopies('too many pending notices');
  }

  private failed(ticket: number, err: unknown): void {
    const floor = this.inFlight.get(ticket)!;
    this.inFlight.delete(ticket);
    // A lost connection may hide a commit: its rows, if any, are replayed.
    if (!nothingWritten(err)) this.oweReplay(floor);
  }

  /** The bus took a status: its commit has one notice less to wait for. */
  private taken(body: TaskStatusMessage): void {
    const list = this.byTask.get(body.taskId);
    if (!list) return;
    let found: Pending | undefined;
    for (let i = 0; i < list.length; i++) {
      const { key, entry } = list[i]!;
      if (entry.dropped) {
        list.splice(i--, 1);
        continue;
      }
      if (key.to === body.to && key.from === body.from && key.at === body.at) {
        list.splice(i, 1);
        found = entry;
        break;
      }
    }
    if (list.length === 0) this.byTask.delete(body.taskId);
    if (found && --found.remaining === 0) this.pending.delete(found);
  }

  /** The in-memory copies go; the audit rows from the lowest pending floor are replayed instead. */
  private dropCopies(why: string): void {
    let min: number | null = null;
    for (const p of this.pending) {
      p.dropped = true;
      if (min === null || p.floor < min) min = p.floor;
    }
    const dropped = this.pending.size;
    this.pending.clear();
    this.byTask.clear();
    this.refused = [];
    if (min !== null) this.oweReplay(min);
    this.deps.logger.warn({ dropped, from: min }, `${why}: dropped from memory, to be replayed from the audit log`);
  }

  private oweReplay(from: number): void {
    if (this.owedFrom === null || from < this.owedFrom) this.owedFrom = from;
  }

  // ---- the publishes ------------------------------------------------------------------

  /**
   * Publishes status notices, each handed to the bus before the first await (the NATS
   * client writes them to its socket together). Never throws: a notice the bus refuses
   * stays pending and is retried (see the class comment).
   */
  publishStatuses(bodies: readonly TaskStatusMessage[]): Promise<void> {
    // The hot path (every transition's notice): two promises per notice, no async frames.
    return Promise.all(bodies.map((body) => this.tryStatus(body).then((outcome) => (outcome === 'refused' ? this.refusedStatus(body) : undefined)))).then(
      () => undefined,
    );
  }

  private refusedStatus(body: TaskStatusMessage): void {
    this.refused.push(body);
    if (this.refused.length > this.maxPending) this.dropCopies('too many refused notices');
    this.scheduleRetry();
  }

  /** One try; 'refused' when the bus may take it later (an outage), 'dropped' when it never will. Never rejects. */
  private tryStatus(body: TaskStatusMessage): Promise<'taken' | 'refused' | 'dropped'> {
    let sent: Promise<void>;
    try {
      sent = this.deps.bus.publish({ kind: 'status', body });
    } catch (err) {
      sent = Promise.reject(err);
    }
    return sent.then(
      () => {
        this.taken(body);
        return 'taken' as const;
      },
      (err: unknown) => {
        if (isOrchestratorError(err) && !err.retryable) {
          // The bus will never take it (it is not an outage): logged and let go.
          this.deps.logger.error({ err, projectId: body.projectId, taskId: body.taskId }, 'status notice refused for good; dropped');
          this.taken(body);
          return 'dropped' as const;
        }
        return 'refused' as const;
      },
    );
  }

  /**
   * The project's budget changed (committed): its status is owed, and published soon —
   * coalesced with the other changes of the window — or, `now`, at once (a level crossed).
   * Resolves once a run published the row's figures (true), or left the notice owed for
   * the retries (false: the bus or the database refused). Never rejects.
   */
  budgetChanged(projectId: string, when: 'soon' | 'now' = 'soon'): Promise<boolean> {
    this.oweBudget(projectId, this.budgetFloors.get(projectId) ?? this.seqFloor + 1);
    if (when === 'now') {
      this.budgetUrgent.add(projectId);
      this.clearBudgetTimer(projectId);
      return this.runBudget(projectId);
    }
    // A run in progress sees the new version when it is done, and schedules the next window.
    if (!this.budgetRuns.has(projectId)) this.scheduleBudget(projectId);
    return Promise.resolve(true);
  }

  private oweBudget(projectId: string, floor: number): void {
    const owed = this.owedBudgets.get(projectId);
    this.owedBudgets.set(projectId, { floor: owed === undefined || floor < owed.floor ? floor : owed.floor, version: ++this.budgetVersion });
  }

  /** The project's owed status, after its coalescing window (unless one is set already). */
  private scheduleBudget(projectId: string): void {
    if (this.budgetTimers.has(projectId) || this.stopped) return;
    const delay = Math.max(BUDGET_COALESCE_MS, BUDGET_COST_FACTOR * (this.budgetCostMs.get(projectId) ?? 0));
    this.budgetTimers.set(
      projectId,
      this.deps.clock.setTimeout(() => {
        this.budgetTimers.delete(projectId);
        void this.runBudget(projectId);
      }, delay),
    );
  }

  private clearBudgetTimer(projectId: string): void {
    const timer = this.budgetTimers.get(projectId);
    if (timer === undefined) return;
    this.deps.clock.clearTimeout(timer);
    this.budgetTimers.delete(projectId);
  }

  /** The run publishing the project's owed status: the one in progress, or a new one. */
  private runBudget(projectId: string): Promise<boolean> {
    let run = this.budgetRuns.get(projectId);
    if (!run) {
      run = this.budgetRun(projectId).finally(() => this.budgetRuns.delete(projectId));
      this.budgetRuns.set(projectId, run);
    }
    return run;
  }

  /**
   * Publishes the project's status until the row's figures are out: read, publish, read
   * the row again. True when nothing is owed any more (or the next window is scheduled for
   * a change that came meanwhile); false when a read or the bus failed (owed, retried).
   */
  private async budgetRun(projectId: string): Promise<boolean> {
    for (;;) {
      const owed = this.owedBudgets.get(projectId);
      if (!owed) return true;
      this.budgetUrgent.delete(projectId);
      const outcome = await this.publishBudgetOnce(projectId);
      if (outcome === 'failed') {
        this.scheduleRetry();
        return false;
      }
      if (outcome === 'gone') {
        this.owedBudgets.delete(projectId);
        return true;
      }
      if (outcome === 'published' && this.owedBudgets.get(projectId)?.version === owed.version) {
        this.owedBudgets.delete(projectId);
        return true;
      }
      // Changed meanwhile, or the row moved on since the status was read (another
      // instance's settle): published again, after the window unless wanted at once. While
      // stopping, the stop's rounds publish it again.
      if (this.stopped) return false;
      if (!this.budgetUrgent.has(projectId)) {
        this.scheduleBudget(projectId);
        return true;
      }
    }
  }

  /**
   * One try: the status read now, published, and checked against the row read after it:
   * 'published' when the row still has its figures, 'stale' when it moved on, 'gone' when
   * the project is, 'failed' when a read or the bus failed (an outage).
   */
  private async publishBudgetOnce(projectId: string): Promise<'published' | 'stale' | 'gone' | 'failed'> {
    if (!this.budgetOf) return 'failed';
    const { clock, logger, bus } = this.deps;
    let status: BudgetStatus;
    const started = clock.now();
    try {
      status = await this.budgetOf(projectId);
    } catch (err) {
      if (err instanceof ProjectNotFoundError) return 'gone';
      logger.warn({ err, projectId }, 'could not read the budget status; tried again');
      return 'failed';
    }
    this.budgetCostMs.delete(projectId);
    this.budgetCostMs.set(projectId, clock.now() - started);
    if (this.budgetCostMs.size > this.maxPending) this.budgetCostMs.delete(this.budgetCostMs.keys().next().value!);
    try {
      await bus.publish({ kind: 'budget', body: status });
    } catch (err) {
      if (!(isOrchestratorError(err) && !err.retryable)) return 'failed';
      // The bus will never take it (it is not an outage): logged and let go.
      logger.error({ err, projectId }, 'budget notice refused for good; dropped');
      return 'published';
    }
    let row: BudgetFigures | null;
    try {
      row = await (this.figuresOf ?? this.budgetOf)(projectId);
    } catch (err) {
      if (err instanceof ProjectNotFoundError) return 'gone';
      logger.warn({ err, projectId }, 'could not check the published budget status against the row; tried again');
      return 'failed';
    }
    if (!row) return 'gone';
    return sameFigures(row, status) ? 'published' : 'stale';
  }

  /** Owed budget statuses that no window will publish. */
  private owedBudgetsToRetry(): boolean {
    for (const projectId of this.owedBudgets.keys()) if (!this.budgetTimers.has(projectId) && !this.budgetRuns.has(projectId)) return true;
    return false;
  }

  private scheduleRetry(): void {
    if (this.retryTimer !== null || this.retrying || this.stopped) return;
    const delay = this.retryDelay;
    this.retryDelay = Math.min(this.retryDelay * 2, NOTICE_RETRY_MS.max);
    this.retryTimer = this.deps.clock.setTimeout(() => {
      this.retryTimer = null;
      this.retrying = this.retry().finally(() => {
        this.retrying = null;
        if (this.refused.length || this.owedBudgetsToRetry()) this.scheduleRetry();
      });
    }, delay);
  }

  /** Tries the refused statuses (the first alone: while the bus refuses, one try per round) and the owed budgets. */
  private async retry(): Promise<void> {
    const queue = this.refused;
    this.refused = [];
    if (queue.length) {
      if ((await this.tryStatus(queue[0]!)) === 'refused') {
        // Refused again: it keeps its place, the rest (and those refused meanwhile) wait behind it.
        this.refused = [...queue, ...this.refused];
        if (this.refused.length > this.maxPending) this.dropCopies('too many refused notices');
        return;
      }
      this.retryDelay = NOTICE_RETRY_MS.first;
      await this.publishStatuses(queue.slice(1));
    }
    // Owed budgets not waiting for their window: published as the rows are now.
    for (const projectId of [...this.owedBudgets.keys()]) {
      if (!this.budgetOf) return;
      if (this.budgetTimers.has(projectId) && !this.stopped) continue;
      this.clearBudgetTimer(projectId);
      if (!(await this.runBudget(projectId))) return;
    }
    this.retryDelay = NOTICE_RETRY_MS.first;
  }

  // ---- the loop -----------------------------------------------------------------------

  /**
   * Before any write of this instance (Orchestrator.start): the first heartbeat, and the
   * replay of a previous incarnation's row (same INSTANCE_ID), if any, from its watermark.
   */
  async start(): Promise<void> {
    if (this.started) return;
    this.started = true;
    this.stopped = false;
    const { ledger, instanceId } = this.deps;
    const previous = await ledger.get(instanceId);
    // Its old watermark stays written while its rows are replayed.
    this.seqFloor = await ledger.heartbeat(instanceId, previous?.noticesFrom ?? null);
    if (previous && previous.noticesFrom <= this.seqFloor) {
      this.oweReplay(previous.noticesFrom);
      await this.replayOwn().catch((err: unknown) => this.deps.logger.warn({ err }, 'replay of the previous incarnation\'s notices failed; tried again'));
    }
    this.scheduleTick();
  }

  private scheduleTick(): void {
    if (this.stopped) return;
    this.loopTimer = this.deps.clock.setTimeout(() => {
      this.loopTimer = null;
      this.ticking = this.tick().finally(() => this.scheduleTick());
    }, this.heartbeatMs);
  }

  /** One round of the loop: the heartbeat, pending notices no reaction published, the own replay, a stale instance's recovery. */
  async tick(): Promise<void> {
    try {
      await this.beat();
      this.expirePending();
      await this.replayOwn();
      if (!this.stopped) await this.recoverStale();
    } catch (err) {
      this.deps.logger.warn({ err }, 'notice heartbeat round failed; tried again');
    }
  }

  /** Writes the watermark, computed before it is sent; the sequence value it read is the next floor. */
  private async beat(): Promise<number> {
    const seq = await this.deps.ledger.heartbeat(this.deps.instanceId, this.noticesFrom());
    if (seq > this.seqFloor) this.seqFloor = seq;
    return seq;
  }

  /** Pending notices older than the pending timeout (their reaction never published them): replayed from the audit log. */
  private expirePending(): void {
    // While the bus refuses, the retries are in charge of the pending notices.
    if (this.refused.length) return;
    const cutoff = this.deps.clock.now() - this.pendingTimeoutMs;
    let expired = 0;
    for (const p of this.pending) {
      if (p.committedAt > cutoff) break;
      p.dropped = true;
      this.pending.delete(p);
      for (const key of p.keys) {
        const list = this.byTask.get(key.taskId)?.filter((e) => e.entry !== p);
        if (list?.length) this.byTask.set(key.taskId, list);
        else this.byTask.delete(key.taskId);
      }
      this.oweReplay(p.floor);
      expired++;
    }
    if (expired) this.deps.logger.warn({ expired }, 'committed notices not published by their reaction; replayed from the audit log');
  }

  /** Replays this instance's own audit rows owed (dropped copies, lost connections, a previous incarnation). */
  private async replayOwn(whileStopping = false): Promise<void> {
    if (this.replaying || (this.stopped && !whileStopping)) return;
    this.replaying = true;
    try {
      for (;;) {
        if (this.replayCursor === null) {
          this.replayCursor = this.owedFrom;
          this.owedFrom = null;
        }
        if (this.replayCursor === null) return;
        // Every committed row is at or below the sequence value read now.
        const upTo = await this.beat();
        const touched = await this.replay(this.deps.instanceId, this.replayCursor, upTo, (next) => {
          this.replayCursor = next;
        });
        for (const [projectId, id] of touched) this.oweBudget(projectId, id);
        this.replayCursor = null;
        if (touched.size) this.scheduleRetry();
      }
    } finally {
      this.replaying = false;
    }
  }

  /**
   * Publishes the statuses of `instanceId`'s audit rows from `from` to `upTo`, a page at a
   * time; `progress` gets the next id after each page the bus took. Throws when the bus
   * refuses one. Returns the projects the rows touched, with the id of the first row of each.
   */
  private async replay(instanceId: string, from: number, upTo: number, progress: (next: number) => void): Promise<Map<string, number>> {
    const touched = new Map<string, number>();
    let cursor = from;
    for (;;) {
      const rows = await this.deps.ledger.listAuditSince(instanceId, cursor, REPLAY_PAGE, upTo);
      if (rows.length === 0) return touched;
      await Promise.all(rows.map((r) => this.deps.bus.publish({ kind: 'status', body: statusOfAudit(r) })));
      for (const r of rows) if (!touched.has(r.projectId)) touched.set(r.projectId, r.id);
      cursor = rows.at(-1)!.id + 1;
      progress(cursor);
      if (rows.length < REPLAY_PAGE) return touched;
    }
  }

  /** Claims one stale instance's row and announces what it may not have: its statuses, then its projects' budgets. */
  private async recoverStale(): Promise<void> {
    const { ledger, instanceId, logger } = this.deps;
    const claim = await ledger.claimStale(this.deps.staleAfterMs / 1000, instanceId);
    if (!claim) return;
    logger.info({ instance: claim.instanceId, from: claim.noticesFrom }, 'replaying the notices of a stale instance');
    // If this fails, the claim goes stale again and some live instance tries again.
    const touched = await this.replay(claim.instanceId, claim.noticesFrom, this.seqFloor, () => undefined);
    if (touched.size && !this.budgetOf) throw new Error('no budget source to publish the recovered projects\' budgets');
    for (const projectId of touched.keys()) {
      // Through the project's run (ordered with this instance's own publishes of it).
      if (!(await this.budgetChanged(projectId, 'now'))) throw new Error(`could not publish the budget status of ${projectId}`);
    }
    await ledger.release(claim.instanceId, claim.heartbeatAt);
  }

  /**
   * Graceful stop (after the reactions): waits, at most the stop timeout, for the pending
   * notices; then deletes this instance's row when nothing is left, or writes its last
   * watermark and leaves the row for another instance to recover.
   */
  async stop(): Promise<void> {
    if (!this.started || this.stopped) return;
    this.stopped = true;
    if (this.loopTimer !== null) this.deps.clock.clearTimeout(this.loopTimer);
    this.loopTimer = null;
    await this.ticking;
    // Owed budgets waiting for their window: published now, by the retries below.
    for (const projectId of [...this.budgetTimers.keys()]) this.clearBudgetTimer(projectId);
    const until = this.deps.clock.now() + this.stopTimeoutMs;
    while (!this.idle && this.deps.clock.now() < until) {
      if (this.retryTimer !== null) this.deps.clock.clearTimeout(this.retryTimer);
      this.retryTimer = null;
      await (this.retrying ?? this.retry());
      // The reactions have run: a pending notice the bus did not refuse will not be published by one.
      if (this.refused.length === 0 && this.pending.size) this.dropCopies('stopping with notices no reaction published');
      await this.replayOwn(true).catch(() => undefined);
      if (!this.idle) await new Promise<void>((resolve) => this.deps.clock.setTimeout(resolve, 100));
    }
    if (this.retryTimer !== null) this.deps.clock.clearTimeout(this.retryTimer);
    this.retryTimer = null;
    const { ledger, instanceId, logger } = this.deps;
    try {
      if (this.idle) await ledger.release(instanceId);
      else {
        await this.beat();
        logger.warn({ ...this.counts, noticesFrom: this.noticesFrom() }, 'stopped with notices unannounced; another instance replays them');
      }
    } catch (err) {
      logger.warn({ err }, 'could not write the last notice watermark');
    }
    this.started = false;
  }
}

/** A write that settles its task's budget (releases its reservation, spends): its project's status is owed. */
const settles = (w: TransitionWrite): boolean => w.budget !== undefined && (w.budget.release !== undefined || w.budget.spend !== undefined);

/** `tasks` with the READY variant of each task that has one (as the ingest writes them). */
function withReady(tasks: readonly NewTaskRecord[], ready: readonly NewTaskRecord[]): NewTaskRecord[] {
  const byId = new Map(ready.map((t) => [t.taskId, t]));
  return tasks.map((t) => byId.get(t.taskId) ?? t);
}
