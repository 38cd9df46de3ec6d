import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ValidationError } from '../../src/errors.js';
import type { Lease, LockManager } from '../../src/ports/lock-manager.js';

/** What one adapter gives the contract for one test. */
export interface LockManagerHarness {
  locks: LockManager;
  /** Another client of the same lock store, over its own connection where there is one. */
  connectAnother(): Promise<LockManager>;
  /** A lease time that `expire` can run out quickly. */
  shortTtlMs: number;
  /** Lets a lease taken with shortTtlMs on `resource` run out; resolves once it is gone. */
  expire(resource: string): Promise<void>;
  /** Remaining lease time on `resource` in ms, or null when nothing holds it. */
  remainingTtl(resource: string): Promise<number | null>;
  close(): Promise<void>;
}

export type LockManagerFactory = () => Promise<LockManagerHarness>;

const LONG_TTL = 60_000;

function mustHold(lease: Lease | null): Lease {
  expect(lease).not.toBeNull();
  return lease as Lease;
}

/** The LockManager port's contract; every adapter runs it from its own *.test.ts file. */
export function lockManagerContract(name: string, factory: LockManagerFactory): void {
  describe(`LockManager contract: ${name}`, () => {
    let h: LockManagerHarness;
    let locks: LockManager;
    let other: LockManager;

    beforeEach(async () => {
      h = await factory();
      locks = h.locks;
      other = await h.connectAnother();
    });
    afterEach(async () => {
      await h.close();
    });

    it('acquires a free resource', async () => {
      const lease = mustHold(await locks.acquire('job-1', LONG_TTL));
      expect(lease.resource).toBe('job-1');
      expect(lease.ttlMs).toBe(LONG_TTL);
      expect(lease.token.length).toBeGreaterThanOrEqual(16);
      expect(Number.isSafeInteger(lease.fencingToken) && lease.fencingToken > 0).toBe(true);
      const remaining = await h.remainingTtl('job-1');
      expect(remaining).not.toBeNull();
      expect(remaining!).toBeGreaterThan(0);
      expect(remaining!).toBeLessThanOrEqual(LONG_TTL);
    });

    it('refuses a held resource to everyone, the holder included', async () => {
      mustHold(await locks.acquire('job-1', LONG_TTL));
      expect(await locks.acquire('job-1', LONG_TTL)).toBeNull();
      expect(await other.acquire('job-1', LONG_TTL)).toBeNull();
      mustHold(await other.acquire('job-2', LONG_TTL));
    });

    it('gives a contended resource to exactly one of many concurrent callers', async () => {
      const attempts = Array.from({ length: 20 }, (_, i) => (i % 2 === 0 ? locks : other).acquire('hot', LONG_TTL));
      const leases = (await Promise.all(attempts)).filter((l) => l !== null);
      expect(leases).toHaveLength(1);
    });

    it('releases only for the holder', async () => {
      const lease = mustHold(await locks.acquire('job-1', LONG_TTL));
      expect(await other.release({ ...lease, token: 'f'.repeat(32) })).toBe(false);
      expect(await other.release({ ...lease, fencingToken: lease.fencingToken + 1 })).toBe(false);
      expect(await other.acquire('job-1', LONG_TTL)).toBeNull();
      expect(await locks.release(lease)).toBe(true);
      expect(await locks.release(lease)).toBe(false);
      const next = mustHold(await other.acquire('job-1', LONG_TTL));
      expect(next.token).not.toBe(lease.token);
      expect(next.fencingToken).toBeGreaterThan(lease.fencingToken);
      expect(await locks.release(lease)).toBe(false);
      expect(await locks.acquire('job-1', LONG_TTL)).toBeNull();
    });

    it('extends only for the holder', async () => {
      const lease = mustHold(await locks.acquire('job-1', 10_000));
      expect(await other.extend({ ...lease, token: 'f'.repeat(32) }, 600_000)).toBe(false);
      expect((await h.remainingTtl('job-1'))!).toBeLessThanOrEqual(10_000);
      expect(await other.extend(lease, 600_000)).toBe(true); // the token is the identity, not the client
      expect((await h.remainingTtl('job-1'))!).toBeGreaterThan(10_000);
      expect(await locks.extend(lease, 1_200_000)).toBe(true);
      expect((await h.remainingTtl('job-1'))!).toBeGreaterThan(600_000);
      expect(await other.acquire('job-1', LONG_TTL)).toBeNull();
    });

    it('lets another holder in after expiry, with a greater fencing token', async () => {
      const first = mustHold(await locks.acquire('job-1', h.shortTtlMs));
      await h.expire('job-1');
      expect(await h.remainingTtl('job-1')).toBeNull();
      const second = mustHold(await other.acquire('job-1', LONG_TTL));
      expect(second.fencingToken).toBeGreaterThan(first.fencingToken);
      expect(await locks.extend(first, LONG_TTL)).toBe(false);
      expect(await locks.release(first)).toBe(false);
      expect(await locks.acquire('job-1', LONG_TTL)).toBeNull();
      expect(await other.release(second)).toBe(true);
    });

    it('does not revive an expired lease on extend', async () => {
      const lease = mustHold(await locks.acquire('job-1', h.shortTtlMs));
      await h.expire('job-1');
      expect(await locks.extend(lease, LONG_TTL)).toBe(false);
      expect(await h.remainingTtl('job-1')).toBeNull();
      mustHold(await other.acquire('job-1', LONG_TTL));
    });

    it('hands out strictly increasing fencing tokens across resources and clients', async () => {
      const tokens: number[] = [];
      for (let i = 0; i < 10; i++) {
        const lease = mustHold(await (i % 2 === 0 ? locks : other).acquire(`r-${i % 4}-${i}`, LONG_TTL));
        tokens.push(lease.fencingToken);
      }
      expect(await locks.acquire('r-0-0', LONG_TTL)).toBeNull();
      tokens.push(mustHold(await other.acquire('fresh', LONG_TTL)).fencingToken);
      for (let i = 1; i < tokens.length; i++) expect(tokens[i]!).toBeGreaterThan(tokens[i - 1]!);
    });

    it('reacquiring a released resource gives a new token and a greater fencing token', async () => {
      const a = mustHold(await locks.acquire('job-1', LONG_TTL));
      expect(await locks.release(a)).toBe(true);
      const b = mustHold(await locks.acquire('job-1', LONG_TTL));
      expect(b.token).not.toBe(a.token);
      expect(b.fencingToken).toBeGreaterThan(a.fencingToken);
    });

    it('ensureFencingAbove makes every later token greater, and never lowers the counter', async () => {
      const before = mustHold(await locks.acquire('a', LONG_TTL));
      const floor = before.fencingToken + 1_000_000;
      await locks.ensureFencingAbove(floor);
      const after = mustHold(await other.acquire('b', LONG_TTL));
      expect(after.fencingToken).toBeGreaterThan(floor);
      await other.ensureFencingAbove(5);
      await locks.ensureFencingAbove(0);
      const later = mustHold(await locks.acquire('c', LONG_TTL));
      expect(later.fencingToken).toBeGreaterThan(after.fencingToken);
    });

    it('keeps large fencing tokens exact', async () => {
      const floor = 2 ** 52 + 3;
      await locks.ensureFencingAbove(floor);
      const a = mustHold(await locks.acquire('a', LONG_TTL));
      expect(a.fencingToken).toBe(floor + 1);
      expect(await locks.extend(a, LONG_TTL)).toBe(true);
      expect(await locks.release(a)).toBe(true);
      const b = mustHold(await other.acquire('a', LONG_TTL));
      expect(b.fencingToken).toBe(floor + 2);
    });

    it('rejects bad arguments with ValidationError', async () => {
      for (const ttl of [0, -1, 1.5, Number.NaN]) {
        await expect(locks.acquire('job-1', ttl)).rejects.toBeInstanceOf(ValidationError);
      }
      await expect(locks.acquire('', LONG_TTL)).rejects.toBeInstanceOf(ValidationError);
      const lease = mustHold(await locks.acquire('job-1', LONG_TTL));
      await expect(locks.extend(lease, 0)).rejects.toBeInstanceOf(ValidationError);
      for (const value of [-1, 0.5, Number.POSITIVE_INFINITY]) {
        await expect(locks.ensureFencingAbove(value)).rejects.toBeInstanceOf(ValidationError);
      }
      expect(await locks.release(lease)).toBe(true);
    });
  });
}
