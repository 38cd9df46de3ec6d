import { once } from 'node:events';
import type { Redis } from 'ioredis';
import { describe, expect, it } from 'vitest';
import { withCommands } from '../../src/adapters/redis/scripts.js';
import { RedisLockManager } from '../../src/adapters/redis/lock-manager.js';
import {
  closeClients,
  connectTestRedis,
  deleteKeysWithPrefix,
  keysWithPrefix,
  pollUntil,
  randomPrefix,
} from '../helpers/redis.js';
import { lockManagerContract } from './lock-manager.contract.js';

const lockKey = (prefix: string, resource: string): string => `${prefix}:lock:${resource}`;

/** Waits until Redis has dropped the key (its PX ran out); never asserts on how long that took. */
function untilGone(redis: Redis, key: string): Promise<void> {
  return pollUntil(async () => (await redis.exists(key)) === 0, `${key} to expire`);
}

lockManagerContract('RedisLockManager', async () => {
  const prefix = randomPrefix('locks');
  const admin = connectTestRedis('locks-admin');
  const clients: Redis[] = [admin];
  return {
    locks: new RedisLockManager({ redis: admin, prefix }),
    connectAnother: async () => {
      const client = connectTestRedis(`locks-${clients.length}`);
      clients.push(client);
      return new RedisLockManager({ redis: client, prefix });
    },
    shortTtlMs: 50,
    expire: (resource) => untilGone(admin, lockKey(prefix, resource)),
    remainingTtl: async (resource) => {
      const ms = await admin.pttl(lockKey(prefix, resource));
      return ms < 0 ? null : ms;
    },
    close: async () => {
      await deleteKeysWithPrefix(admin, prefix);
      await closeClients(clients);
    },
  };
});

describe('RedisLockManager on Redis', () => {
  it('a holder cut off mid-lease loses it: the next holder gets a greater token, the old one is refused', async () => {
    const prefix = randomPrefix('lock-drop');
    const holderClient = connectTestRedis('lock-holder');
    const rivalClient = connectTestRedis('lock-rival');
    try {
      const holder = new RedisLockManager({ redis: holderClient, prefix });
      const rival = new RedisLockManager({ redis: rivalClient, prefix });
      const lease = await holder.acquire('job', 50);
      expect(lease).not.toBeNull();

      const ended = once(holderClient, 'end');
      holderClient.disconnect();
      await ended;
      await untilGone(rivalClient, lockKey(prefix, 'job'));

      const taken = await rival.acquire('job', 60_000);
      expect(taken).not.toBeNull();
      expect(taken!.fencingToken).toBeGreaterThan(lease!.fencingToken);

      await holderClient.connect();
      expect(await holder.extend(lease!, 60_000)).toBe(false);
      expect(await holder.release(lease!)).toBe(false);
      expect(await holder.acquire('job', 60_000)).toBeNull();
      expect(await rivalClient.pttl(lockKey(prefix, 'job'))).toBeGreaterThan(0);
      expect(await rival.release(taken!)).toBe(true);
    } finally {
      await deleteKeysWithPrefix(rivalClient, prefix);
      await closeClients([holderClient, rivalClient]);
    }
  });

  it('a resent acquire (same token) returns the same fencing token without taking another', async () => {
    const prefix = randomPrefix('lock-resend');
    const client = connectTestRedis('lock-resend');
    try {
      const redis = withCommands(client, ['orchLockAcquire']);
      const key = lockKey(prefix, 'job');
      const fence = `${prefix}:fence`;
      const first = await redis.orchLockAcquire(key, fence, 'a'.repeat(32), 60_000);
      expect(first).toBe(1);
      expect(await redis.orchLockAcquire(key, fence, 'a'.repeat(32), 60_000)).toBe(first);
      expect(await redis.orchLockAcquire(key, fence, 'b'.repeat(32), 60_000)).toBeNull();
      expect(await client.get(fence)).toBe('1');
    } finally {
      await deleteKeysWithPrefix(client, prefix);
      await closeClients([client]);
    }
  });

  it('stores leases under <prefix>:lock:<resource> and one counter at <prefix>:fence', async () => {
    const prefix = randomPrefix('lock-keys');
    const client = connectTestRedis('lock-keys');
    try {
      const locks = new RedisLockManager({ redis: client, prefix });
      const lease = await locks.acquire('job-7', 60_000);
      expect((await keysWithPrefix(client, prefix)).sort()).toEqual([`${prefix}:fence`, `${prefix}:lock:job-7`]);
      expect(await client.get(`${prefix}:lock:job-7`)).toBe(`${lease!.token}:${lease!.fencingToken}`);
      expect(await client.ttl(`${prefix}:fence`)).toBe(-1);
    } finally {
      await deleteKeysWithPrefix(client, prefix);
      await closeClients([client]);
    }
  });
});
