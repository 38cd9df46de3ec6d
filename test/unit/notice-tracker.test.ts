import { describe, expect, it } from 'vitest';
import { SimulatedClock } from 'xstate';
import type { BudgetStatus, TaskStatusMessage } from '../../src/domain/messages.js';
import { ServiceUnavailableError, TransactionConflictError, VersionConflictError } from '../../src/errors.js';
import { silentLogger } from '../../src/logger.js';
import type { Commit, TransitionWrite } from '../../src/ports/commit.js';
import type { EventBus, Outbound } from '../../src/ports/event-bus.js';
import type { AuditNotice, InstanceWatermark, NoticeLedger } from '../../src/ports/notice-ledger.js';
import { NoticeTracker } from '../../src/reactions/notices.js';

/**
 * The notice tracker's watermark, on a simulated clock, an in-memory ledger and a bus that
 * refuses while `down`: what is in flight, pending and published, and the floors.
 */

class FakeLedger implements NoticeLedger {
  /** The audit log's sequence: the last id handed out. */
  seq = 0;
  readonly rows = new Map<string, { noticesFrom: number; heartbeatAt: number }>();
  readonly audit: (AuditNotice & { by: string })[] = [];
  readonly beats: number[] = [];
  constructor(private readonly clock: SimulatedClock) {}

  /** Appends an audit row of `by` (what a commit writes), with the next id. */
  append(by: string, taskId: string, projectId = 'prj'): AuditNotice {
    const row = { id: ++this.seq, by, taskId, projectId, taskType: 'WRITE_SCRIPT', from: 'READY' as const, to: 'RUNNING' as const, at: new Date(this.clock.now()), attempt: 1 };
    this.audit.push(row);
    return row;
  }
  async heartbeat(instanceId: string, noticesFrom: number | null): Promise<number> {
    const from = noticesFrom ?? this.seq + 1;
    if (instanceId === 'me') this.beats.push(from);
    this.rows.set(instanceId, { noticesFrom: from, heartbeatAt: this.clock.now() });
    return this.seq;
  }
  async get(instanceId: string): Promise<InstanceWatermark | null> {
    const r = this.rows.get(instanceId);
    return r ? { instanceId, noticesFrom: r.noticesFrom, heartbeatAt: new Date(r.heartbeatAt) } : null;
  }
  async claimStale(olderThanSeconds: number, except: string): Promise<InstanceWatermark | null> {
    for (const [id, r] of this.rows) {
      if (id === except || r.heartbeatAt >= this.clock.now() - olderThanSeconds * 1000) continue;
      r.heartbeatAt = this.clock.now();
      return { instanceId: id, noticesFrom: r.noticesFrom, heartbeatAt: new Date(r.heartbeatAt) };
    }
    return null;
  }
  async release(instanceId: string, ifHeartbeatAt?: Date): Promise<boolean> {
    const r = this.rows.get(instanceId);
    if (!r || (ifHeartbeatAt && r.heartbeatAt !== ifHeartbeatAt.getTime())) return false;
    return this.rows.delete(instanceId);
  }
  async listAuditSince(instanceId: string, fromId: number, limit: number, toId?: number): Promise<AuditNotice[]> {
    return this.audit
      .filter((r) => r.by === instanceId && r.id >= fromId && (toId === undefined || r.id <= toId))
      .slice(0, limit)
      .map(({ by: _by, ...r }) => r);
  }
}

class FakeBus implements EventBus {
  down = false;
  readonly published: Outbound[] = [];
  tries = 0;
  /** Called with each message the bus takes (before it is recorded). */
  onPublish: (message: Outbound) => void = () => undefined;
  async publish(message: Outbound): Promise<void> {
    this.tries++;
    if (this.down) throw new ServiceUnavailableError('nats', 'down (injected)');
    this.onPublish(message);
    this.published.push(message);
  }
  async dispatchTask(): Promise<void> {}
  dispatchBatchSize(): number {
    return 1;
  }
  async dispatchTasks(): Promise<(Error | null)[]> {
    return [];
  }
  async consume(): Promise<{ close(): Promise<void> }> {
    return { close: async () => undefined };
  }
  statuses(): string[] {
    return this.published.flatMap((m) => (m.kind === 'status' ? [`${m.body.taskId} ${m.body.to}`] : []));
  }
  budgets(): BudgetStatus[] {
    return this.published.flatMap((m) => (m.kind === 'budget' ? [m.body] : []));
  }
}

function gate<T>(): { promise: Promise<T>; open: (v: T) => void; fail: (e: unknown) => void } {
  let open!: (v: T) => void;
  let fail!: (e: unknown) => void;
  const promise = new Promise<T>((resolve, reject) => {
    open = resolve;
    fail = reject;
  });
  return { promise, open, fail };
}

const flush = async () => {
  for (let i = 0; i < 20; i++) await new Promise((r) => setImmediate(r));
};

/** Moves the simulated clock on by `ms`, a step at a time, letting the promises it wakes run. */
async function advance(clock: SimulatedClock, ms: number, step = 50): Promise<void> {
  for (let t = 0; t < ms; t += step) {
    clock.increment(step);
    await flush();
  }
}

const at = new Date('2025-01-01T00:00:00.000Z');
const w = (taskId: string): TransitionWrite => ({ taskId, expectedVersion: 1, from: 'READY', to: 'RUNNING', event: 'DISPATCH', patch: { status: 'RUNNING' }, snapshot: null, machineVersion: '1', by: 'me', at });
const body = (taskId: string): TaskStatusMessage => ({ taskId, projectId: 'prj', taskType: 'WRITE_SCRIPT', from: 'READY', to: 'RUNNING', at: at.toISOString(), attempt: 1 });

/** A commit whose writes resolve when the test says (`calls`), appending their audit rows to the ledger first. */
function heldCommit(ledger: FakeLedger) {
  const calls: { write: TransitionWrite; done: ReturnType<typeof gate<number>> }[] = [];
  const commit: Commit = {
    applyTransition: (write) => {
      const done = gate<number>();
      calls.push({ write, done });
      return done.promise;
    },
    applyTransitions: async () => [],
    ingestEvent: async () => ({ written: false, ready: false, skipped: false }),
  };
  return { commit, calls, ledger };
}

async function setup(options: { seq?: number; maxPending?: number; previous?: number } = {}) {
  const clock = new SimulatedClock();
  clock.set(1_000_000);
  const ledger = new FakeLedger(clock);
  ledger.seq = options.seq ?? 10;
  if (options.previous !== undefined) ledger.rows.set('me', { noticesFrom: options.previous, heartbeatAt: clock.now() - 60_000 });
  const bus = new FakeBus();
  const tracker = new NoticeTracker({ instanceId: 'me', ledger, bus, clock, logger: silentLogger(), staleAfterMs: 4_000, heartbeatMs: 1_000, ...(options.maxPending ? { maxPending: options.maxPending } : {}) });
  let budget: BudgetStatus = { projectId: 'prj', limit: 10, spent: 1, reserved: 0, remaining: 9, ratio: 0.1, level: 'ok', forecast: { remainingCost: 0, total: 1, exceedsBudget: false } };
  const reads = { failing: 0, count: 0 };
  tracker.setBudgetSource(async () => {
    reads.count++;
    if (reads.failing > 0) {
      reads.failing--;
      throw new ServiceUnavailableError('postgres', 'connection terminated (injected)');
    }
    return budget;
  });
  const held = heldCommit(ledger);
  const commit = tracker.commit(held.commit);
  await tracker.start();
  return { clock, ledger, bus, tracker, commit, calls: held.calls, reads, setBudget: (b: Partial<BudgetStatus>) => (budget = { ...budget, ...b }) };
}

describe('NoticeTracker: the watermark', () => {
  it('starts after the sequence value its first heartbeat read; a write in flight holds the floor it captured before it was sent', async () => {
    const { clock, ledger, tracker, commit, calls } = await setup({ seq: 10 });
    expect(ledger.beats).toStrictEqual([11]);
    expect(tracker.noticesFrom()).toBe(11);

    const sent = commit.applyTransition(w('t1'));
    // Its statement gets an id (others' rows come meanwhile); a heartbeat reads the sequence further on.
    ledger.append('other', 'x');
    ledger.append('me', 't1');
    ledger.seq = 20;
    await advance(clock, 1_000);
    expect(ledger.beats.at(-1), 'in flight: its floor, whatever the sequence says').toBe(11);
    expect(tracker.noticesFrom()).toBe(11);
    // A write sent now captures the new floor.
    const later = commit.applyTransition(w('t2'));
    calls[0]!.done.open(2);
    await sent;
    expect(tracker.counts).toMatchObject({ inFlight: 1, pending: 1 });
    expect(tracker.noticesFrom(), 'committed, not published: pending').toBe(11);
    await tracker.publishStatuses([body('t1')]);
    expect(tracker.noticesFrom(), 'the later write in flight').toBe(21);
    calls[1]!.done.open(2);
    await later;
    await tracker.publishStatuses([body('t2')]);
    expect(tracker.idle).toBe(true);
    expect(tracker.noticesFrom()).toBe(21);
    await advance(clock, 1_000);
    expect(ledger.beats.at(-1)).toBe(21);
  });

  it('a write refused for sure releases its floor; one whose outcome is unknown has its rows replayed from its floor', async () => {
    const { clock, ledger, bus, tracker, commit, calls } = await setup({ seq: 10 });
    const refused = commit.applyTransition(w('t1')).catch(() => 'refused');
    calls[0]!.done.fail(new VersionConflictError('t1', 1, 2));
    expect(await refused).toBe('refused');
    expect(tracker.idle).toBe(true);

    const lost = commit.applyTransition(w('t2')).catch(() => 'lost');
    ledger.append('me', 't2'); // it did commit
    calls[1]!.done.fail(new Error('Connection terminated unexpectedly'));
    expect(await lost).toBe('lost');
    expect(tracker.noticesFrom()).toBe(11);
    await advance(clock, 2_000);
    expect(bus.statuses()).toContain('t2 RUNNING');
    // And the budget of the project its rows touched.
    expect(bus.budgets().map((b) => b.projectId)).toStrictEqual(['prj']);
    expect(tracker.idle).toBe(true);
    expect(tracker.noticesFrom()).toBe(12);
  });

  it('a transaction PostgreSQL aborted for a conflict (a deadlock) wrote nothing: its floor released, nothing replayed', async () => {
    const { clock, bus, tracker, commit, calls } = await setup({ seq: 10 });
    const aborted = commit.applyTransition(w('t1')).catch((e: unknown) => e);
    calls[0]!.done.fail(new TransactionConflictError('PostgreSQL aborted the transaction (deadlock detected, 40P01): nothing of it was written'));
    expect(await aborted).toBeInstanceOf(TransactionConflictError);
    expect(tracker.idle).toBe(true);
    await advance(clock, 2_000);
    expect(bus.statuses()).toStrictEqual([]);
  });

  it('a status the bus refuses stays pending, holding the watermark, and is retried with back-off until the bus takes it', async () => {
    const { clock, ledger, bus, tracker, commit, calls } = await setup({ seq: 10 });
    const sent = commit.applyTransition(w('t1'));
    ledger.append('me', 't1');
    calls[0]!.done.open(2);
    await sent;
    bus.down = true;
    await tracker.publishStatuses([body('t1')]);
    expect(tracker.counts).toMatchObject({ pending: 1, refused: 1 });
    await advance(clock, 30_000);
    const tries = bus.tries;
    expect(tries, 'tried again, with back-off: not every step').toBeGreaterThan(5);
    expect(tries).toBeLessThan(40);
    expect(ledger.beats.at(-1), 'the watermark held').toBe(11);
    bus.down = false;
    await advance(clock, 6_000);
    expect(bus.statuses()).toStrictEqual(['t1 RUNNING']);
    expect(tracker.idle).toBe(true);
    expect(ledger.beats.at(-1)).toBe(12);
  });

  it('past the bound on pending notices their copies are dropped, the watermark kept, and the audit rows replayed once the bus answers', async () => {
    const { clock, ledger, bus, tracker, commit, calls } = await setup({ seq: 10, maxPending: 3 });
    bus.down = true;
    for (let i = 0; i < 5; i++) {
      const sent = commit.applyTransition(w(`t${i}`));
      ledger.append('me', `t${i}`);
      calls[i]!.done.open(2);
      await sent;
      await tracker.publishStatuses([body(`t${i}`)]);
    }
    expect(tracker.counts.pending + tracker.counts.refused, 'bounded').toBeLessThanOrEqual(6);
    expect(tracker.noticesFrom(), 'the watermark kept').toBe(11);
    await advance(clock, 3_000);
    expect(ledger.beats.at(-1)).toBe(11);
    bus.down = false;
    await advance(clock, 3_000);
    for (let i = 0; i < 5; i++) expect(bus.statuses()).toContain(`t${i} RUNNING`);
    expect(tracker.idle).toBe(true);
    expect(ledger.beats.at(-1)).toBe(16);
  });

  it('a budget status the bus refuses is owed: the retry publishes the project\'s status as it is then', async () => {
    const { clock, bus, tracker, setBudget } = await setup();
    bus.down = true;
    expect(await tracker.budgetChanged('prj', 'now'), 'refused: owed').toBe(false);
    expect(tracker.counts.owedBudgets).toBe(1);
    expect(tracker.idle).toBe(false);
    setBudget({ spent: 4, remaining: 6, ratio: 0.4 });
    await advance(clock, 2_000);
    bus.down = false;
    await advance(clock, 6_000);
    expect(bus.budgets().map((b) => b.spent)).toStrictEqual([4]);
    expect(tracker.idle).toBe(true);
  });

  const settle = (taskId: string): TransitionWrite => ({
    ...w(taskId),
    from: 'RUNNING',
    to: 'COMPLETED',
    event: 'COMPLETE',
    patch: { status: 'COMPLETED' },
    budget: { projectId: 'prj', release: 0.5, spend: 0.25, enforce: false },
  });

  it('a committed settle owes its project\'s status, the watermark held until it is out; settles of one window are one status, the latest', async () => {
    const { clock, ledger, bus, tracker, commit, calls, setBudget } = await setup();
    const first = commit.applyTransition(settle('t1'));
    const second = commit.applyTransition(settle('t2'));
    calls[0]!.done.open(2);
    calls[1]!.done.open(2);
    await Promise.all([first, second]);
    setBudget({ spent: 2 });
    expect(tracker.counts.owedBudgets).toBe(1);
    // The statuses of the settles are published; the budget's window has not passed.
    await tracker.publishStatuses([{ ...body('t1'), from: 'RUNNING', to: 'COMPLETED' }, { ...body('t2'), from: 'RUNNING', to: 'COMPLETED' }]);
    await tracker.tick();
    expect(ledger.beats.at(-1), 'the owed budget holds the floor of its commit').toBe(11);
    await advance(clock, 200);
    expect(bus.budgets().map((b) => b.spent)).toStrictEqual([2]);
    expect(tracker.idle).toBe(true);
  });

  it('a status the row moved past while it was published (another instance\'s settle) is published again: the last is the row\'s', async () => {
    const { clock, bus, tracker, setBudget } = await setup();
    let once = true;
    bus.onPublish = (m) => {
      if (m.kind === 'budget' && once) {
        once = false;
        setBudget({ spent: 4 });
      }
    };
    expect(await tracker.budgetChanged('prj', 'now')).toBe(true);
    await advance(clock, 200);
    expect(bus.budgets().map((b) => b.spent)).toStrictEqual([1, 4]);
    expect(tracker.idle).toBe(true);
  });

  it('a status that cannot be read (the database restarting) stays owed and is read again until it is out', async () => {
    const { clock, bus, tracker, reads } = await setup();
    reads.failing = 3;
    void tracker.budgetChanged('prj');
    await advance(clock, 100);
    expect(bus.budgets(), 'nothing while the reads fail').toStrictEqual([]);
    expect(tracker.counts.owedBudgets).toBe(1);
    await advance(clock, 3_000);
    expect(bus.budgets().map((b) => b.spent)).toStrictEqual([1]);
    expect(reads.count).toBeGreaterThan(3);
    expect(tracker.idle).toBe(true);
  });
});

describe('NoticeTracker: recovery', () => {
  it('claims a stale instance\'s row, announces its audit rows from its watermark, then its projects\' budgets, and releases the row', async () => {
    const { clock, ledger, bus } = await setup({ seq: 0 });
    ledger.append('dead', 'a1', 'prj_a');
    const from = ledger.append('dead', 'a2', 'prj_a').id;
    ledger.append('dead', 'a3', 'prj_b');
    ledger.append('alive', 'b1', 'prj_c');
    ledger.rows.set('dead', { noticesFrom: from, heartbeatAt: clock.now() });
    await advance(clock, 2_000);
    expect(bus.statuses(), 'not stale yet').toStrictEqual([]);
    await advance(clock, 4_000);
    expect(bus.statuses()).toStrictEqual(['a2 RUNNING', 'a3 RUNNING']);
    expect(bus.budgets().map((b) => b.projectId)).toHaveLength(2);
    expect(ledger.rows.has('dead')).toBe(false);
  });

  it('at start, replays its previous incarnation\'s rows (same instance id) from that row\'s watermark', async () => {
    const clock = new SimulatedClock();
    const ledger = new FakeLedger(clock);
    ledger.append('me', 'old1');
    const from = ledger.append('me', 'old2').id;
    ledger.rows.set('me', { noticesFrom: from, heartbeatAt: clock.now() });
    const bus = new FakeBus();
    const tracker = new NoticeTracker({ instanceId: 'me', ledger, bus, clock, logger: silentLogger(), staleAfterMs: 4_000 });
    tracker.setBudgetSource(async (projectId) => ({ projectId, limit: null, spent: 0, reserved: 0, remaining: null, ratio: null, level: 'ok', forecast: { remainingCost: 0, total: 0, exceedsBudget: false } }));
    await tracker.start();
    expect(ledger.beats[0], 'the old watermark kept while it replays').toBe(from);
    expect(bus.statuses()).toStrictEqual(['old2 RUNNING']);
    await advance(clock, 1_000);
    expect(bus.budgets().map((b) => b.projectId)).toStrictEqual(['prj']);
    expect(tracker.idle).toBe(true);
    await tracker.stop();
    expect(ledger.rows.has('me'), 'a graceful stop with nothing pending deletes the row').toBe(false);
  });

  it('a graceful stop with notices the bus still refuses leaves the row, with its watermark, for another instance', async () => {
    const { clock, ledger, bus, tracker, commit, calls } = await setup({ seq: 10 });
    const sent = commit.applyTransition(w('t1'));
    ledger.append('me', 't1');
    calls[0]!.done.open(2);
    await sent;
    bus.down = true;
    await tracker.publishStatuses([body('t1')]);
    const stopped = tracker.stop();
    await advance(clock, 6_000);
    await stopped;
    expect(ledger.rows.get('me')).toMatchObject({ noticesFrom: 11 });
  });
});
