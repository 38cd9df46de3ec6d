import { SimulatedClock } from 'xstate';
import { describe, expect, it } from 'vitest';
import { MemoryLockManager } from '../../src/adapters/memory/lock-manager.js';
import { lockManagerContract } from './lock-manager.contract.js';

// Time is a SimulatedClock moved by hand: expiry is exact and instantaneous.
lockManagerContract('MemoryLockManager', async () => {
  const clock = new SimulatedClock();
  const locks = new MemoryLockManager({ clock });
  const shortTtlMs = 50;
  return {
    locks,
    connectAnother: async () => locks,
    shortTtlMs,
    expire: async () => clock.increment(shortTtlMs),
    remainingTtl: (resource) => locks.remainingTtl(resource),
    close: async () => undefined,
  };
});

describe('MemoryLockManager on a simulated clock', () => {
  it('holds a lease for exactly ttlMs, extended from the time of the extend', async () => {
    const clock = new SimulatedClock();
    const locks = new MemoryLockManager({ clock });
    const lease = await locks.acquire('r', 1_000);
    expect(lease).not.toBeNull();
    clock.increment(999);
    expect(await locks.acquire('r', 1_000)).toBeNull();
    expect(await locks.extend(lease!, 1_000)).toBe(true);
    clock.increment(999);
    expect(await locks.remainingTtl('r')).toBe(1);
    expect(await locks.acquire('r', 1_000)).toBeNull();
    clock.increment(1);
    expect(await locks.remainingTtl('r')).toBeNull();
    expect(await locks.extend(lease!, 1_000)).toBe(false);
    const next = await locks.acquire('r', 1_000);
    expect(next!.fencingToken).toBe(lease!.fencingToken + 1);
  });

  it('a batch is taken at one instant: every lease of it lasts exactly ttlMs', async () => {
    const clock = new SimulatedClock();
    const locks = new MemoryLockManager({ clock });
    const leases = await locks.acquireMany(['a', 'b', 'c'], 1_000);
    expect(leases.map((l) => l!.fencingToken)).toEqual([1, 2, 3]);
    clock.increment(999);
    for (const r of ['a', 'b', 'c']) expect(await locks.remainingTtl(r)).toBe(1);
    expect(await locks.releaseMany([leases[0]!])).toEqual([true]);
    clock.increment(1);
    expect(await locks.releaseMany(leases.map((l) => l!))).toEqual([false, false, false]);
    expect((await locks.acquireMany(['a', 'b', 'c'], 1_000)).map((l) => l!.fencingToken)).toEqual([4, 5, 6]);
  });

  it('sweeps leases whose holders never came back', async () => {
    const clock = new SimulatedClock();
    const locks = new MemoryLockManager({ clock, sweepThreshold: 4 });
    for (let i = 0; i < 4; i++) await locks.acquire(`gone-${i}`, 10);
    clock.increment(10);
    for (let i = 0; i < 4; i++) await locks.acquire(`live-${i}`, 1_000);
    // The 8th stored lease triggers a sweep: only the 4 live ones remain.
    expect(locks.storedLeases).toBe(4);
    expect(await locks.remainingTtl('live-0')).toBe(1_000);
  });
});
