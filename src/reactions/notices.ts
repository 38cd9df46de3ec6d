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
 * - A budget status the bus refuses leaves the project's budget notice owed: the retry
 *   publishes its current status (read again), not the refused one.
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
  /** Projects whose budget status is owed, with the floor that keeps one of their audit rows in the window. */
  private readonly owedBudgets = new Map<string, number>();
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

  /** Where a budget status is read from (the budget checker's `getBudgetStatus`): owed budgets are published as they are now. */
  setBudgetSource(source: (projectId: string) => Promise<BudgetStatus>): void {
    this.budgetOf = source;
  }

  /** Every audit row of this instance with id >= this may not have been announced yet. */
  noticesFrom(): number {
    let min = this.seqFloor + 1;
    for (const floor of this.inFlight.values()) if (floor < min) min = floor;
    for (const p of this.pending) if (p.floor < min) min = p.floor;
    for (const floor of this.owedBudgets.values()) if (floor < min) min = floor;
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
          this.committed(ticket, [keyOf(w.taskId, w.from, w.to, w.at.toISOString())], w.budget ? [w.budget.projectId] : []);
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
        const budgets: string[] = [];
        writes.forEach((w, i) => {
          if (!outcomes[i]?.ok) return;
          keys.push(keyOf(w.taskId, w.from, w.to, w.at.toISOString()));
          if (w.budget) budgets.push(w.budget.projectId);
        });
        this.committed(ticket, keys, budgets);
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
        this.committed(ticket, written.flatMap(creationKeys), result.ready ? [ingest.projectId] : []);
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
      this.committed(ticket, tasks.flatMap(creationKeys), []);
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

  private committed(ticket: number, keys: readonly NoticeKey[], budgetProjects: readonly string[]): void {
    const floor = this.inFlight.get(ticket)!;
    this.inFlight.delete(ticket);
    for (const projectId of budgetProjects) {
      this.budgetFloors.delete(projectId);
      this.budgetFloors.set(projectId, floor);
      if (this.budgetFloors.size > this.maxPending) this.budgetFloors.delete(this.budgetFloors.keys().next().value!);
    }
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
   * Publishes a budget status. Never throws: when the bus refuses it, the project's
   * budget notice is owed, and the retry publishes the project's status as it is then.
   * True when the bus took it.
   */
  async publishBudget(status: BudgetStatus): Promise<boolean> {
    try {
      await this.deps.bus.publish({ kind: 'budget', body: status });
      return true;
    } catch (err) {
      if (isOrchestratorError(err) && !err.retryable) {
        this.deps.logger.error({ err, projectId: status.projectId }, 'budget notice refused for good; dropped');
        return false;
      }
      this.oweBudget(status.projectId, this.budgetFloors.get(status.projectId) ?? this.seqFloor + 1);
      this.scheduleRetry();
      return false;
    }
  }

  private oweBudget(projectId: string, floor: number): void {
    const owed = this.owedBudgets.get(projectId);
    if (owed === undefined || floor < owed) this.owedBudgets.set(projectId, floor);
  }

  private scheduleRetry(): void {
    if (this.retryTimer !== null || this.retrying || this.stopped) return;
    const delay = this.retryDelay;
    this.retryDelay = Math.min(this.retryDelay * 2, NOTICE_RETRY_MS.max);
    this.retryTimer = this.deps.clock.setTimeout(() => {
      this.retryTimer = null;
      this.retrying = this.retry().finally(() => {
        this.retrying = null;
        if (this.refused.length || this.owedBudgets.size) this.scheduleRetry();
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
    for (const [projectId, floor] of [...this.owedBudgets]) {
      if (!this.budgetOf) break;
      let status: BudgetStatus;
      try {
        status = await this.budgetOf(projectId);
      } catch (err) {
        if (err instanceof ProjectNotFoundError) {
          this.owedBudgets.delete(projectId);
          continue;
        }
        this.deps.logger.warn({ err, projectId }, 'could not read an owed budget status; tried again later');
        continue;
      }
      try {
        await this.deps.bus.publish({ kind: 'budget', body: status });
      } catch (err) {
        if (isOrchestratorError(err) && !err.retryable) {
          this.deps.logger.error({ err, projectId }, 'budget notice refused for good; dropped');
        } else return;
      }
      // Owed again meanwhile (a later refusal): that one is owed still.
      if (this.owedBudgets.get(projectId) === floor) this.owedBudgets.delete(projectId);
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
      const status = await this.budgetOf!(projectId).catch((err: unknown) => {
        if (err instanceof ProjectNotFoundError) return null;
        throw err;
      });
      if (status) await this.deps.bus.publish({ kind: 'budget', body: status });
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

/** `tasks` with the READY variant of each task that has one (as the ingest writes them). */
function withReady(tasks: readonly NewTaskRecord[], ready: readonly NewTaskRecord[]): NewTaskRecord[] {
  const byId = new Map(ready.map((t) => [t.taskId, t]));
  return tasks.map((t) => byId.get(t.taskId) ?? t);
}
