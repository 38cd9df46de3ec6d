import { randomBytes } from 'node:crypto';
import { systemClock, type Clock } from '../../ports/clock.js';
import type { Lease, LockManager } from '../../ports/lock-manager.js';
import { checkDistinctResources, checkFencingValue, checkResource, checkTtl } from '../validation.js';

export interface MemoryLockManagerOptions {
  /** Time source for expiry; xstate's SimulatedClock in tests. Default: the system clock. */
  clock?: Clock;
  /** Swept for expired leases once this many are stored (amortised O(1) per acquire). */
  sweepThreshold?: number;
}

interface Held {
  token: string;
  fencingToken: number;
  /** clock.now() at which the lease is gone: held while now < expiresAt. */
  expiresAt: number;
}

/**
 * In-process leases with the same contract as RedisLockManager, for an embedded
 * single-process run. Expiry is judged by `clock.now()` on every call (no timers), so a
 * SimulatedClock moved past a lease's end makes it free at once. The fencing counter is
 * shared by all resources and only grows.
 */
export class MemoryLockManager implements LockManager {
  readonly #clock: Clock;
  readonly #held = new Map<string, Held>();
  readonly #sweepThreshold: number;
  #nextSweepAt: number;
  #fence = 0;

  constructor(options: MemoryLockManagerOptions = {}) {
    this.#clock = options.clock ?? systemClock;
    this.#sweepThreshold = Math.max(1, options.sweepThreshold ?? 1_024);
    this.#nextSweepAt = this.#sweepThreshold;
  }

  async acquire(resource: string, ttlMs: number): Promise<Lease | null> {
    checkResource(resource);
    checkTtl(ttlMs);
    const now = this.#clock.now();
    if (this.#live(resource, now) !== undefined) return null;
    const lease: Lease = { resource, token: randomBytes(16).toString('hex'), fencingToken: ++this.#fence, ttlMs };
    this.#held.set(resource, { token: lease.token, fencingToken: lease.fencingToken, expiresAt: now + ttlMs });
    this.#maybeSweep(now);
    return lease;
  }

  async extend(lease: Lease, ttlMs: number): Promise<boolean> {
    checkResource(lease.resource);
    checkTtl(ttlMs);
    const now = this.#clock.now();
    const held = this.#live(lease.resource, now);
    if (!isHolder(held, lease)) return false;
    held.expiresAt = now + ttlMs;
    return true;
  }

  async release(lease: Lease): Promise<boolean> {
    checkResource(lease.resource);
    const held = this.#live(lease.resource, this.#clock.now());
    if (!isHolder(held, lease)) return false;
    this.#held.delete(lease.resource);
    return true;
  }

  /**
   * All at one instant (one clock.now()): a lease or null per resource, at its index;
   * fencing tokens of the leases taken grow with the index. Duplicates are a ValidationError.
   */
  async acquireMany(resources: readonly string[], ttlMs: number): Promise<(Lease | null)[]> {
    checkTtl(ttlMs);
    checkDistinctResources(resources);
    if (resources.length === 0) return [];
    const now = this.#clock.now();
    const random = randomBytes(16 * resources.length).toString('hex');
    const leases = resources.map((resource, i): Lease | null => {
      if (this.#live(resource, now) !== undefined) return null;
      const lease: Lease = { resource, token: random.slice(32 * i, 32 * (i + 1)), fencingToken: ++this.#fence, ttlMs };
      this.#held.set(resource, { token: lease.token, fencingToken: lease.fencingToken, expiresAt: now + ttlMs });
      return lease;
    });
    this.#maybeSweep(now);
    return leases;
  }

  /** In order, at one instant: per lease, whether it was still held (and is now extended). */
  async extendMany(entries: readonly { lease: Lease; ttlMs: number }[]): Promise<boolean[]> {
    for (const { lease, ttlMs } of entries) {
      checkResource(lease.resource);
      checkTtl(ttlMs);
    }
    const now = this.#clock.now();
    return entries.map(({ lease, ttlMs }) => {
      const held = this.#live(lease.resource, now);
      if (!isHolder(held, lease)) return false;
      held.expiresAt = now + ttlMs;
      return true;
    });
  }

  /** In order, at one instant: per lease, whether it was still held (and is now released). */
  async releaseMany(leases: readonly Lease[]): Promise<boolean[]> {
    for (const lease of leases) checkResource(lease.resource);
    const now = this.#clock.now();
    return leases.map((lease) => {
      const held = this.#live(lease.resource, now);
      if (!isHolder(held, lease)) return false;
      this.#held.delete(lease.resource);
      return true;
    });
  }

  async ensureFencingAbove(value: number): Promise<void> {
    checkFencingValue(value);
    if (this.#fence < value) this.#fence = value;
  }

  /** Lease entries in memory, expired ones not yet dropped included (for monitoring). */
  get storedLeases(): number {
    return this.#held.size;
  }

  /** Milliseconds left on the lease of `resource`, or null when nothing holds it. */
  async remainingTtl(resource: string): Promise<number | null> {
    const now = this.#clock.now();
    const held = this.#live(resource, now);
    return held === undefined ? null : held.expiresAt - now;
  }

  /** The stored lease when it has not expired; an expired one is dropped. */
  #live(resource: string, now: number): Held | undefined {
    const held = this.#held.get(resource);
    if (held === undefined) return undefined;
    if (held.expiresAt > now) return held;
    this.#held.delete(resource);
    return undefined;
  }

  /** Drops expired leases nobody asked about again (e.g. crashed holders). */
  #maybeSweep(now: number): void {
    if (this.#held.size < this.#nextSweepAt) return;
    for (const [resource, held] of this.#held) {
      if (held.expiresAt <= now) this.#held.delete(resource);
    }
    this.#nextSweepAt = Math.max(this.#sweepThreshold, this.#held.size * 2);
  }
}

function isHolder(held: Held | undefined, lease: Lease): held is Held {
  return held !== undefined && held.token === lease.token && held.fencingToken === lease.fencingToken;
}
