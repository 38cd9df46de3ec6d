import { once } from 'node:events';
import type { Redis } from 'ioredis';
import { describe, expect, it } from 'vitest';
import { createRedisClient } from '../../src/adapters/redis/connection.js';
import { withCommands } from '../../src/adapters/redis/scripts.js';
import { RedisLockManager } from '../../src/adapters/redis/lock-manager.js';
import {
  closeClients,
  connectTestRedis,
  TEST_REDIS_URL,
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

  it('a resent acquireMany (same tokens) returns the same fencing tokens without taking more', async () => {
    const prefix = randomPrefix('lock-resend-many');
    const client = connectTestRedis('lock-resend-many');
    try {
      const redis = withCommands(client, ['orchLockAcquire', 'orchLockAcquireMany']);
      const fence = `${prefix}:fence`;
      const keys = ['j0', 'j1', 'j2', 'j3'].map((r) => lockKey(prefix, r));
      const tokens = ['a', 'b', 'c', 'd'].map((c) => c.repeat(32));
      expect(await redis.orchLockAcquire(keys[1]!, fence, 'e'.repeat(32), 60_000)).toBe(1); // j1 held elsewhere
      const send = () => redis.orchLockAcquireMany(keys.length + 1, fence, ...keys, 60_000, ...tokens);
      const first = await send();
      expect(first).toEqual([2, null, 3, 4]);
      expect(await client.get(fence)).toBe('4'); // one INCRBY of 3
      await client.pexpire(keys[0]!, 5_000);
      expect(await send()).toEqual(first); // recognised: same tokens, counter untouched
      expect(await client.get(fence)).toBe('4');
      expect(await client.pttl(keys[0]!)).toBeLessThanOrEqual(5_000); // expiry of a recognised lease left alone
      // j1 freed in between: the resend takes it, with a token above all earlier ones.
      await client.del(keys[1]!);
      expect(await send()).toEqual([2, 5, 3, 4]);
      expect(await client.get(keys[1]!)).toBe(`${tokens[1]}:5`);
      // Other tokens on the same keys: all refused, no token spent.
      expect(await redis.orchLockAcquireMany(3, fence, keys[0]!, keys[2]!, 60_000, 'f'.repeat(32), '0'.repeat(32))).toEqual([null, null]);
      expect(await client.get(fence)).toBe('5');
    } finally {
      await deleteKeysWithPrefix(client, prefix);
      await closeClients([client]);
    }
  });

  it('the acquireMany script refuses a key given twice before writing anything', async () => {
    const prefix = randomPrefix('lock-dup-many');
    const client = connectTestRedis('lock-dup-many');
    try {
      const redis = withCommands(client, ['orchLockAcquireMany']);
      const fence = `${prefix}:fence`;
      const key = lockKey(prefix, 'job');
      await expect(redis.orchLockAcquireMany(4, fence, lockKey(prefix, 'x'), key, key, 60_000, 'a'.repeat(32), 'b'.repeat(32), 'c'.repeat(32))).rejects.toThrow(
        /given twice/,
      );
      expect(await keysWithPrefix(client, prefix)).toEqual([]);
    } finally {
      await deleteKeysWithPrefix(client, prefix);
      await closeClients([client]);
    }
  });

  it('acquireMany stores each lease as <token>:<fencing token> with its own token and the batch TTL', async () => {
    const prefix = randomPrefix('lock-keys-many');
    const client = connectTestRedis('lock-keys-many');
    try {
      const locks = new RedisLockManager({ redis: client, prefix });
      const leases = await locks.acquireMany(['job-1', 'job-2'], 30_000);
      for (const lease of leases) {
        expect(await client.get(lockKey(prefix, lease!.resource))).toBe(`${lease!.token}:${lease!.fencingToken}`);
        expect(await client.pttl(lockKey(prefix, lease!.resource))).toBeGreaterThan(25_000);
      }
      expect(leases[0]!.token).not.toBe(leases[1]!.token);
      expect(await client.get(`${prefix}:fence`)).toBe('2');
      expect((await keysWithPrefix(client, prefix)).sort()).toEqual([`${prefix}:fence`, `${prefix}:lock:job-1`, `${prefix}:lock:job-2`]);
    } finally {
      await deleteKeysWithPrefix(client, prefix);
      await closeClients([client]);
    }
  });

  it('empty batches and refused arguments make no round trip', async () => {
    const client = createRedisClient({ url: TEST_REDIS_URL, connectionName: 'test-lock-lazy', lazyConnect: true });
    try {
      const locks = new RedisLockManager({ redis: client, prefix: randomPrefix('lock-lazy') });
      expect(await locks.acquireMany([], 1_000)).toEqual([]);
      expect(await locks.releaseMany([])).toEqual([]);
      await expect(locks.acquireMany(['a', 'a'], 1_000)).rejects.toThrow(/distinct/);
      expect(client.status).toBe('wait'); // never connected
    } finally {
      client.disconnect();
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
