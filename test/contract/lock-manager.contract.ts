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

    it('acquireMany: a lease per free resource, null exactly where another holder has it', async () => {
      mustHold(await other.acquire('b-1', LONG_TTL));
      const [held3] = await other.acquireMany(['b-3'], LONG_TTL);
      mustHold(held3 ?? null);
      const resources = ['b-0', 'b-1', 'b-2', 'b-3', 'b-4'];
      const leases = await locks.acquireMany(resources, LONG_TTL);
      expect(leases).toHaveLength(resources.length);
      expect(leases.map((l) => l === null)).toEqual([false, true, false, true, false]);
      const taken = leases.filter((l): l is Lease => l !== null);
      expect(taken.map((l) => l.resource)).toEqual(['b-0', 'b-2', 'b-4']);
      for (const lease of taken) {
        expect(lease.ttlMs).toBe(LONG_TTL);
        expect(lease.token.length).toBeGreaterThanOrEqual(16);
        expect(Number.isSafeInteger(lease.fencingToken) && lease.fencingToken > 0).toBe(true);
        const remaining = await h.remainingTtl(lease.resource);
        expect(remaining!).toBeGreaterThan(0);
        expect(remaining!).toBeLessThanOrEqual(LONG_TTL);
        expect(await other.acquire(lease.resource, LONG_TTL)).toBeNull();
      }
      expect(new Set(taken.map((l) => l.token)).size).toBe(taken.length);
      // Held now, by the batch or by the other holder: a second batch gets nothing.
      expect(await other.acquireMany(resources, LONG_TTL)).toEqual([null, null, null, null, null]);
      // Each lease of the batch is an ordinary lease.
      expect(await locks.extend(taken[0]!, LONG_TTL)).toBe(true);
      expect(await locks.release(taken[1]!)).toBe(true);
      mustHold(await other.acquire('b-2', LONG_TTL));
    });

    it('acquireMany: fencing tokens strictly increase within and across batches, interleaved with single acquisitions', async () => {
      const tokens: number[] = [];
      tokens.push(mustHold(await locks.acquire('f-single-0', LONG_TTL)).fencingToken);
      mustHold(await other.acquire('f-held', LONG_TTL));
      const batch1 = await locks.acquireMany(['f-0', 'f-1', 'f-held', 'f-2', 'f-3'], LONG_TTL);
      expect(batch1[2]).toBeNull();
      tokens.push(...batch1.filter((l): l is Lease => l !== null).map((l) => l.fencingToken));
      tokens.push(mustHold(await other.acquire('f-single-1', LONG_TTL)).fencingToken);
      const batch2 = await other.acquireMany(['f-4', 'f-0', 'f-5'], LONG_TTL);
      expect(batch2[1]).toBeNull();
      tokens.push(...batch2.filter((l): l is Lease => l !== null).map((l) => l.fencingToken));
      tokens.push(mustHold(await locks.acquire('f-single-2', LONG_TTL)).fencingToken);
      expect(tokens).toHaveLength(9); // 3 singles, 4 + 2 from the batches
      for (let i = 1; i < tokens.length; i++) expect(tokens[i]!).toBeGreaterThan(tokens[i - 1]!);
    });

    it('acquireMany gives each resource to exactly one of concurrent overlapping batches', async () => {
      const resources = Array.from({ length: 30 }, (_, i) => `c-${i}`);
      const batches = Array.from({ length: 6 }, (_, b) => {
        // Each batch a different rotation of the same resources, some also taken one at a time.
        const order = [...resources.slice(b * 5), ...resources.slice(0, b * 5)];
        return (b % 2 === 0 ? locks : other).acquireMany(order, LONG_TTL);
      });
      const singles = resources.filter((_, i) => i % 7 === 0).map((r) => other.acquire(r, LONG_TTL));
      const results = [...(await Promise.all(batches)).flat(), ...(await Promise.all(singles))];
      const winners = new Map<string, number>();
      for (const lease of results) {
        if (lease !== null) winners.set(lease.resource, (winners.get(lease.resource) ?? 0) + 1);
      }
      expect([...winners.keys()].sort()).toEqual([...resources].sort());
      for (const count of winners.values()) expect(count).toBe(1);
      const fencing = results.filter((l): l is Lease => l !== null).map((l) => l.fencingToken);
      expect(new Set(fencing).size).toBe(resources.length);
    });

    it('releaseMany: true only where the lease is still held by its token', async () => {
      const [a, b] = (await locks.acquireMany(['m-a', 'm-b'], h.shortTtlMs)).map(mustHold);
      const [c, d, e] = (await locks.acquireMany(['m-c', 'm-d', 'm-e'], LONG_TTL)).map(mustHold);
      await h.expire('m-a');
      await h.expire('m-b');
      const rival = mustHold(await other.acquire('m-a', LONG_TTL)); // a: expired and taken by another holder
      expect(await locks.release(c!)).toBe(true); // c: already released
      const forged = { ...e!, token: 'f'.repeat(32) };
      expect(await locks.releaseMany([a!, b!, c!, d!, forged, e!])).toEqual([false, false, false, true, false, true]);
      // The rival keeps its lease; d and e are free again.
      expect(await h.remainingTtl('m-a')).not.toBeNull();
      expect(await locks.acquire('m-a', LONG_TTL)).toBeNull();
      expect(await h.remainingTtl('m-d')).toBeNull();
      expect(await h.remainingTtl('m-e')).toBeNull();
      // A lease is released once: the same lease again (or twice in one call) is false.
      const again = await other.releaseMany([rival, rival, d!]);
      expect(again).toEqual([true, false, false]);
      expect(await locks.releaseMany([])).toEqual([]);
    });

    it('extendMany: each held lease to its own TTL, false where it was lost or forged', async () => {
      const b = mustHold(await locks.acquire('x-b', h.shortTtlMs));
      await h.expire('x-b');
      const [a, c] = (await locks.acquireMany(['x-a', 'x-c'], 10_000)).map(mustHold);
      const rival = mustHold(await other.acquire('x-b', LONG_TTL)); // b: expired and taken by another holder
      const forged = { ...c!, token: 'f'.repeat(32) };
      expect(await locks.extendMany([{ lease: a!, ttlMs: 600_000 }, { lease: b, ttlMs: 600_000 }, { lease: forged, ttlMs: 600_000 }, { lease: c!, ttlMs: 1_200_000 }]))
        .toEqual([true, false, false, true]);
      expect((await h.remainingTtl('x-a'))!).toBeGreaterThan(10_000);
      expect((await h.remainingTtl('x-a'))!).toBeLessThanOrEqual(600_000);
      expect((await h.remainingTtl('x-c'))!).toBeGreaterThan(600_000);
      // The rival's lease is untouched and still its own.
      expect(await other.release(rival)).toBe(true);
      expect(await locks.extendMany([])).toEqual([]);
      await expect(locks.extendMany([{ lease: a!, ttlMs: 0 }])).rejects.toBeInstanceOf(ValidationError);
    });

    it('acquireMany and releaseMany handle a batch of 1000 and keep large fencing tokens exact', async () => {
      const floor = 2 ** 52 + 3;
      await locks.ensureFencingAbove(floor);
      const resources = Array.from({ length: 1000 }, (_, i) => `big-${i}`);
      const leases = (await locks.acquireMany(resources, LONG_TTL)).map(mustHold);
      expect(leases.map((l) => l.fencingToken)).toEqual(resources.map((_, i) => floor + 1 + i));
      expect(leases.map((l) => l.resource)).toEqual(resources);
      expect(await other.releaseMany(leases)).toEqual(resources.map(() => true));
      const next = mustHold(await other.acquire('big-0', LONG_TTL));
      expect(next.fencingToken).toBe(floor + 1001);
    });

    it('acquireMany refuses duplicate resources, takes nothing, and answers [] to an empty batch', async () => {
      await expect(locks.acquireMany(['d-0', 'd-1', 'd-0'], LONG_TTL)).rejects.toBeInstanceOf(ValidationError);
      expect(await h.remainingTtl('d-0')).toBeNull();
      expect(await h.remainingTtl('d-1')).toBeNull();
      expect(await locks.acquireMany([], LONG_TTL)).toEqual([]);
      const [lease] = await locks.acquireMany(['d-0'], LONG_TTL);
      const first = mustHold(lease ?? null);
      const single = mustHold(await locks.acquire('d-1', LONG_TTL));
      expect(single.fencingToken).toBe(first.fencingToken + 1); // the failed and the empty batch used no token
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
      for (const ttl of [0, -1, 1.5, Number.NaN]) {
        await expect(locks.acquireMany(['job-2'], ttl)).rejects.toBeInstanceOf(ValidationError);
      }
      await expect(locks.acquireMany(['job-2', ''], LONG_TTL)).rejects.toBeInstanceOf(ValidationError);
      await expect(locks.releaseMany([lease, { ...lease, resource: '' }])).rejects.toBeInstanceOf(ValidationError);
      expect(await locks.release(lease)).toBe(true);
      expect(await h.remainingTtl('job-2')).toBeNull();
    });
  });
}
