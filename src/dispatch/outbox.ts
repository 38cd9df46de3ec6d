import type { TaskDispatch } from '../domain/messages.js';
import type { Lease } from '../ports/lock-manager.js';
import type { Core } from '../orchestrator/core.js';
import { CLAIM_TTL_MS, LEASE_GRACE_MS, type Slots } from './slots.js';
import { inTraceOf } from '../tracing/tracing.js';

/**
 * A dispatch the bus did not confirm is sent again after this back-off (doubling, capped).
 * The cap is what a dispatch may wait once NATS is back: a bus that is not connected
 * refuses at once, so a retry during an outage costs nothing but the try.
 */
const PUBLISH_RETRY_MS = { first: 100, max: 1_000 };
/**
 * A confirmed dispatch is written as such (its record removed, its lease lengthened) this
 * long after the bus confirmed it, together with the others confirmed meanwhile; an
 * attempt that ended first needs neither (the write that ended it removed its record, and
 * its lease was given back). Far below the claim TTL left on the lease at confirmation.
 */
export const CONFIRM_WRITE_DELAY_MS = 1_000;
/** An unconfirmed attempt's claim lease is renewed (for CLAIM_TTL_MS) once it is this old… */
const RENEW_AFTER_MS = CLAIM_TTL_MS / 3;
/** … looked for this often while there are unconfirmed attempts: a lease is renewed before it is CLAIM_TTL_MS / 2 old. */
const RENEW_EVERY_MS = RENEW_AFTER_MS / 2;

/** An attempt's dispatch handed to the bus: the message, and the lease this process holds for the attempt. */
export interface Sending {
  agent: string;
  message: TaskDispatch;
  lease: Lease;
  /** The traceparent stored with the task (its ingest's), null when untraced: the dispatch's span is its child. */
  traceParent?: string | null;
}

/**
 * The dispatcher's side of the dispatch outbox (the durable record, written with RUNNING,
 * is the store's: migrations/005_dispatch_outbox.sql). Publishes dispatches until the bus
 * confirms them:
 *
 * - `send`: a batch's dispatches handed to the bus together; those confirmed at once are
 *   confirmed as one batch; the others are sent again with back-off (NATS down) while
 *   this process runs the attempt and is not stopping;
 * - a confirmation removes the attempts' records in one statement and lengthens their
 *   leases (taken for the claim TTL) to the attempt's deadline in one round trip, for the
 *   attempts confirmed within CONFIRM_WRITE_DELAY_MS of one another and still running
 *   then: an attempt that ended sooner (most, in a fast pipeline) costs neither, its
 *   record removed by the write that ended it. Should this process die in that second,
 *   the record of a dispatch that did leave stays, and the attempt is sent again (same
 *   token) by whoever takes it over once its lease is free — as for a process that dies
 *   between the publish and its confirmation;
 * - while unconfirmed, an attempt's lease is renewed for the claim TTL (`renew`, on a
 *   timer that runs while there are unconfirmed attempts), so a live process keeps its
 *   attempts (another instance takes over only attempts whose lease is free) and a dead
 *   one's are free within the claim TTL. A lease found lost (a lock store that lost its
 *   data, a process stalled past the TTL) gives the attempt up: whoever finds its record
 *   and its lease free takes it over;
 * - `stop`: publishes still unconfirmed are given up (their records stay for whoever takes
 *   the attempts over); what was confirmed is written at once.
 */
export class DispatchOutbox {
  /** Publishes and confirmation writes in flight (stop waits for them). */
  private readonly inFlight = new Set<Promise<void>>();
  /** Wakes the publish retries waiting on their back-off (at stop). */
  private readonly sleepers = new Set<() => void>();
  /** Confirmed by the bus, not yet written: the attempts (and whether this process ran them then). */
  private readonly toConfirm: { sending: Sending; held: boolean }[] = [];
  private confirming = false;
  /** The timer of the next confirmation write (CONFIRM_WRITE_DELAY_MS after the first confirmation waiting). */
  private confirmTimer: unknown = null;
  private stopping = false;
  /**
   * Lease renewals and lengthenings, one after the other: a renewal for the claim TTL that
   * landed after the lengthening of a just-confirmed attempt would shorten its lease again.
   */
  private leaseOps: Promise<unknown> = Promise.resolve();
  private renewTimer: unknown = null;

  constructor(
    private readonly core: Core,
    private readonly slots: Slots,
  ) {}

  start(): void {
    this.stopping = false;
    if (this.slots.hasUnconfirmed()) this.armRenewals();
  }

  /** Gives up unconfirmed publishes; resolves once nothing is in flight (confirmations written). */
  async stop(): Promise<void> {
    this.stopping = true;
    if (this.renewTimer !== null) this.core.clock.clearTimeout(this.renewTimer);
    this.renewTimer = null;
    for (const wake of this.sleepers) wake();
    // What the bus confirmed is written now, not after the delay.
    this.writeSoon(true);
    while (this.inFlight.size) await Promise.all([...this.inFlight]);
  }

  /**
   * Hands the dispatches to the bus together — those of an agent that takes several per
   * message (`dispatchBatchSize`) in messages of several, the others each on its own;
   * never rejects (tracked until confirmed or given up). A dispatch whose first try failed
   * is sent again on its own.
   */
  send(batch: readonly Sending[]): void {
    if (!batch.length) return;
    this.armRenewals();
    const alone: Sending[] = [];
    const byAgent = new Map<string, Sending[]>();
    for (const s of batch) {
      if (this.core.bus.dispatchBatchSize(s.agent) <= 1) alone.push(s);
      else {
        const group = byAgent.get(s.agent);
        if (group) group.push(s);
        else byAgent.set(s.agent, [s]);
      }
    }
    this.track(
      (async () => {
        const first = await Promise.all([
          Promise.all(alone.map((s) => this.tryOnce(s, 1))),
          ...[...byAgent.values()].map((group) => this.tryTogether(group)),
        ]);
        const sent = [alone, ...byAgent.values()].flat();
        const ok = first.flat();
        this.confirmed(sent.filter((_, i) => ok[i]));
        await Promise.all(sent.filter((_, i) => !ok[i]).map((s) => this.retry(s)));
      })(),
    );
  }

  /** One try of one agent's dispatches together; per dispatch, true when the bus confirmed. Never rejects. */
  private async tryTogether(group: readonly Sending[]): Promise<boolean[]> {
    const outcomes = await this.core.bus
      .dispatchTasks(group[0]!.agent, group.map((s) => ({ task: s.message, traceParent: s.traceParent ?? null })))
      // The port never rejects; a bus that does fails every dispatch of the group (each sent again on its own).
      .catch((err: unknown) => group.map(() => (err instanceof Error ? err : new Error(String(err)))));
    const failed = outcomes.findIndex((err) => err !== null);
    if (failed >= 0) {
      const err = outcomes[failed];
      this.core.logger.warn({ err, agent: group[0]!.agent, tasks: outcomes.filter((e) => e !== null).length, taskId: group[failed]!.message.taskId }, 'dispatches not confirmed; sending them again');
    }
    return outcomes.map((err) => err === null);
  }

  /**
   * Renews, for the claim TTL, the leases of the unconfirmed attempts renewed longest ago
   * (one round trip); an attempt whose lease was lost is given up (its slot freed).
   */
  renew(): Promise<void> {
    return this.serial(async () => {
      const now = this.core.clock.now();
      const due = this.slots.unconfirmed(now - RENEW_AFTER_MS);
      if (!due.length) return;
      const held = await this.core.locks.extendMany(due.map(({ slot }) => ({ lease: slot.lease, ttlMs: CLAIM_TTL_MS })));
      const lost: string[] = [];
      due.forEach(({ taskId, slot }, i) => {
        if (held[i]) slot.renewedAt = now;
        // Not an attempt that ended meanwhile (its lease given back).
        else if (this.slots.get(taskId)?.lease === slot.lease) lost.push(taskId);
      });
      if (lost.length) {
        this.slots.free(lost);
        this.core.logger.warn({ tasks: lost.length, taskId: lost[0] }, 'lease of an unconfirmed dispatch lost; the attempt is left to whoever takes it over');
      }
    });
  }

  /** Renewals every RENEW_EVERY_MS, while there are unconfirmed attempts. */
  private armRenewals(): void {
    if (this.renewTimer !== null || this.stopping) return;
    this.renewTimer = this.core.clock.setTimeout(() => {
      this.renewTimer = null;
      void this.renew()
        .catch((err) => this.core.logger.warn({ err }, 'could not renew the leases of unconfirmed dispatches'))
        .finally(() => {
          if (this.slots.hasUnconfirmed()) this.armRenewals();
        });
    }, RENEW_EVERY_MS);
  }

  private serial(fn: () => Promise<void>): Promise<void> {
    const run = this.leaseOps.then(fn);
    this.leaseOps = run.catch(() => undefined);
    return run;
  }

  /** One try; true when the bus confirmed. Never rejects. */
  private async tryOnce(s: Sending, tries: number): Promise<boolean> {
    try {
      // Traced: sent in the context of the task's ingest (stored with the task), whatever runs this.
      await inTraceOf(s.traceParent, () => this.core.bus.dispatchTask(s.agent, s.message));
      if (tries > 1) this.core.logger.info({ taskId: s.message.taskId, tries }, 'dispatch confirmed after retries');
      return true;
    } catch (err) {
      if (this.givenUp(s)) {
        this.core.logger.warn({ err, taskId: s.message.taskId }, 'dispatch not confirmed; left to whoever takes the attempt over');
      } else if (tries === 1) {
        this.core.logger.warn({ err, taskId: s.message.taskId }, 'dispatch not confirmed; sending it again');
      }
      return false;
    }
  }

  /** Sent again with back-off until confirmed, while this process runs the attempt and is not stopping. */
  private async retry(s: Sending): Promise<void> {
    let delay = PUBLISH_RETRY_MS.first;
    for (let tries = 2; !this.givenUp(s); tries++) {
      await this.sleep(delay);
      if (this.givenUp(s)) return;
      if (await this.tryOnce(s, tries)) {
        this.confirmed([s]);
        return;
      }
      delay = Math.min(delay * 2, PUBLISH_RETRY_MS.max);
    }
  }

  /** Whether the publish is no longer retried: stopping, or the attempt no longer this process's (ended, or its lease lost). */
  private givenUp(s: Sending): boolean {
    return this.stopping || !this.slots.holds(s.message.taskId, s.message.fencingToken);
  }

  /**
   * Confirmed dispatches: written as such (records removed, leases lengthened) in a batch,
   * CONFIRM_WRITE_DELAY_MS after the first of them (at once when stopping).
   */
  private confirmed(batch: readonly Sending[]): void {
    if (!batch.length) return;
    for (const s of batch) this.toConfirm.push({ sending: s, held: this.slots.markConfirmed(s.message.taskId, s.message.fencingToken) });
    this.writeSoon(this.stopping);
  }

  /** Arms the confirmation write (or, `now`, starts it), unless one is armed or being written. */
  private writeSoon(now: boolean): void {
    if (now && this.confirmTimer !== null) {
      this.core.clock.clearTimeout(this.confirmTimer);
      this.confirmTimer = null;
    }
    if (this.confirming || this.confirmTimer !== null || !this.toConfirm.length) return;
    if (now) return this.track(this.writeConfirmed());
    this.confirmTimer = this.core.clock.setTimeout(() => {
      this.confirmTimer = null;
      this.track(this.writeConfirmed());
    }, CONFIRM_WRITE_DELAY_MS);
  }

  /** Writes the confirmations waiting (one statement, one round trip for the leases). */
  private async writeConfirmed(): Promise<void> {
    const { core } = this;
    this.confirming = true;
    try {
      // An attempt this process ran when the bus confirmed it and no longer runs has ended
      // (its record went with the write that ended it, its lease was given back): nothing
      // to write. One it did not run then (its lease lost meanwhile) has its record removed
      // all the same: its dispatch did leave.
      const batch = this.toConfirm.splice(0).filter((c) => !c.held || this.slots.holds(c.sending.message.taskId, c.sending.message.fencingToken));
      if (!batch.length) return;
      const held = batch.filter((c) => c.held).map((c) => c.sending);
      await Promise.all([
        core.tasks
          .confirmDispatches(batch.map(({ sending: { message } }) => ({ taskId: message.taskId, fencingToken: message.fencingToken })))
          .catch((err) => core.logger.warn({ err, tasks: batch.length }, 'could not record dispatches as confirmed; they may be sent again')),
        held.length
          ? this.serial(async () => {
              const now = core.clock.now();
              await core.locks.extendMany(held.map(({ message, lease }) => ({ lease, ttlMs: Math.max(Date.parse(message.deadline) - now, 0) + LEASE_GRACE_MS })));
            }).catch((err) => core.logger.warn({ err }, 'could not lengthen the leases of dispatched tasks'))
          : undefined,
      ]);
    } finally {
      this.confirming = false;
      // Confirmed while this was written: after the delay (at once when stopping).
      this.writeSoon(this.stopping);
    }
  }

  private track(work: Promise<void>): void {
    this.inFlight.add(work);
    void work.finally(() => this.inFlight.delete(work));
  }

  private sleep(ms: number): Promise<void> {
    return new Promise<void>((resolve) => {
      const done = () => {
        this.sleepers.delete(done);
        this.core.clock.clearTimeout(handle);
        resolve();
      };
      const handle = this.core.clock.setTimeout(done, ms);
      this.sleepers.add(done);
    });
  }
}
