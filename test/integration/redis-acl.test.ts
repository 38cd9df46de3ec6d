import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { createRedisClient } from '../../src/adapters/redis/connection.js';
import { RedisLockManager } from '../../src/adapters/redis/lock-manager.js';
import { RedisTaskQueue } from '../../src/adapters/redis/task-queue.js';
import { loadConfig } from '../../src/config/config.js';
import { PrivateRedis } from '../helpers/private-redis.js';
import { closeClients } from '../helpers/redis.js';

/**
 * deploy/redis/users.acl on a private redis-server: the orchestrator's ACL user (its key
 * prefix, its commands, nothing of @dangerous) runs everything the service does with
 * Redis — the queue (put, pop, remove, size, rebuild), the leases and the fencing counter —
 * with the default REDIS_KEY_PREFIX and TASK_QUEUE_KEY, and no connection of it is refused
 * anything (the ready check's INFO was, on every connection). What is not its own is refused.
 */

const PASSWORD = `p${randomBytes(8).toString('hex')}`;
let dir: string;
let server: PrivateRedis;
const clients: Redis[] = [];

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'lap-redis-acl-'));
  const acl = (await readFile(new URL('../../deploy/redis/users.acl', import.meta.url), 'utf8')).replace('>change-me', `>${PASSWORD}`);
  const aclFile = join(dir, 'users.acl');
  await writeFile(aclFile, acl, { mode: 0o600 });
  server = await PrivateRedis.start({ aclFile, user: { name: 'orchestrator', password: PASSWORD } });
});

afterAll(async () => {
  await closeClients(clients);
  await server?.stop();
  await rm(dir, { recursive: true, force: true });
});

/** A client as the service makes it (createBlackboard's options), as the ACL user. */
function serviceClient(): Redis {
  const config = loadConfig({ REDIS_URL: server.url });
  const redis = createRedisClient({ url: config.redis.url!, connectionName: 'orchestrator-acl-test' });
  clients.push(redis);
  return redis;
}

describe('the Redis ACL of deploy/redis/users.acl', () => {
  it('lets the service use the queue, the leases and the fencing counter, and connects without a refused command', async () => {
    const warn = vi.spyOn(console, 'warn');
    try {
      const defaults = loadConfig({});
      const redis = serviceClient();
      expect(await redis.ping()).toBe('PONG');
      const queue = new RedisTaskQueue({ redis, key: defaults.queue.key });
      const locks = new RedisLockManager({ redis, prefix: defaults.redis.keyPrefix });

      await queue.put({ taskId: 'tsk_a', priority: 5 });
      await queue.putMany([{ taskId: 'tsk_b', priority: 9 }, { taskId: 'tsk_c', priority: 1 }]);
      expect(await queue.size()).toBe(3);
      expect(await queue.get()).toBe('tsk_b');
      expect(await queue.remove('tsk_c')).toBe(true);
      await queue.rebuild([{ taskId: 'tsk_d', priority: 3 }, { taskId: 'tsk_a', priority: 5 }]);
      expect(await queue.getMany(5)).toEqual(['tsk_a', 'tsk_d']);
      await queue.rebuild([]);
      expect(await queue.size()).toBe(0);

      const lease = await locks.acquire('tsk_a', 30_000);
      expect(lease).not.toBeNull();
      expect(await locks.acquire('tsk_a', 30_000)).toBeNull();
      expect(await locks.extend(lease!, 60_000)).toBe(true);
      const many = await locks.acquireMany(['tsk_b', 'tsk_c'], 30_000);
      expect(many.every((l) => l !== null)).toBe(true);
      expect(await locks.extendMany(many.map((l) => ({ lease: l!, ttlMs: 60_000 })))).toEqual([true, true]);
      await locks.ensureFencingAbove(1_000);
      const after = await locks.acquire('tsk_e', 30_000);
      expect(after!.fencingToken).toBeGreaterThan(1_000);
      expect(await locks.releaseMany([...many.map((l) => l!), after!])).toEqual([true, true, true]);
      expect(await locks.release(lease!)).toBe(true);

      // A second connection, as after a reconnect: nothing refused either.
      const second = serviceClient();
      expect(await second.ping()).toBe('PONG');
      expect(warn.mock.calls.map((c) => String(c[0])).filter((m) => /INFO|ready check|NOPERM/i.test(m))).toEqual([]);
    } finally {
      warn.mockRestore();
    }
  });

  it('refuses keys outside the prefix, @dangerous commands and pub/sub', async () => {
    const redis = serviceClient();
    await expect(redis.set('elsewhere:key', '1')).rejects.toThrow(/NOPERM/);
    await expect(redis.get('other')).rejects.toThrow(/NOPERM/);
    for (const refused of [() => redis.info(), () => redis.keys('*'), () => redis.flushdb(), () => redis.config('GET', 'dir'), () => redis.publish('x', 'y')]) {
      await expect(refused()).rejects.toThrow(/NOPERM/);
    }
  });
});
