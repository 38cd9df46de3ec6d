import type { Redis } from 'ioredis';
import { describe, expect, it } from 'vitest';
import { withCommands } from '../../src/adapters/redis/scripts.js';
import { RedisTaskQueue } from '../../src/adapters/redis/task-queue.js';
import {
  closeClients,
  connectTestRedis,
  deleteKeysWithPrefix,
  keysWithPrefix,
  randomPrefix,
} from '../helpers/redis.js';
import { taskQueueContract, type TaskQueueHarness } from './task-queue.contract.js';

async function redisHarness(): Promise<TaskQueueHarness & { prefix: string; admin: Redis }> {
  const prefix = randomPrefix('queue');
  const key = `${prefix}:ready`;
  const admin = connectTestRedis('queue-admin');
  const clients: Redis[] = [admin];
  return {
    prefix,
    admin,
    queue: new RedisTaskQueue({ redis: admin, key }),
    connectAnother: async () => {
      const client = connectTestRedis(`queue-${clients.length}`);
      clients.push(client);
      return new RedisTaskQueue({ redis: client, key });
    },
    loseEverything: async () => {
      await deleteKeysWithPrefix(admin, prefix);
      return new RedisTaskQueue({ redis: admin, key });
    },
    close: async () => {
      if (admin.status === 'end') return;
      await deleteKeysWithPrefix(admin, prefix);
      await closeClients(clients);
    },
  };
}

taskQueueContract('RedisTaskQueue', redisHarness);

describe('RedisTaskQueue on Redis', () => {
  it('keeps FIFO exact near the top of the sequence range (scores above 2^52)', async () => {
    const h = await redisHarness();
    try {
      const key = `${h.prefix}:ready`;
      await h.admin.set(`${key}:seq`, String(2 ** 42 - 200));
      const ids = Array.from({ length: 60 }, (_, i) => `z${String(99 - i).padStart(2, '0')}`);
      for (const [i, id] of ids.entries()) await h.queue.put({ taskId: id, priority: i < 30 ? 0 : 1000 });
      const popped = await h.queue.getMany(100);
      expect(popped).toEqual([...ids.slice(30), ...ids.slice(0, 30)]);
    } finally {
      await h.close();
    }
  });

  it('refuses to go past the sequence bound instead of losing order', async () => {
    const h = await redisHarness();
    try {
      await h.admin.set(`${h.prefix}:ready:seq`, String(2 ** 42 - 1));
      await expect(h.queue.put({ taskId: 'over', priority: 1 })).rejects.toMatchObject({
        code: 'ERR_SERVICE_UNAVAILABLE',
      });
      expect(await h.queue.size()).toBe(0);
    } finally {
      await h.close();
    }
  });

  it('the swap step refuses a staging set that lost entries, leaving the queue as it was', async () => {
    const h = await redisHarness();
    try {
      const key = `${h.prefix}:ready`;
      const staging = `${key}:rebuild:manual`;
      await h.queue.putMany([{ taskId: 'kept', priority: 1 }]);
      const redis = withCommands(h.admin, ['orchQueuePut', 'orchQueueSwap']);
      await redis.orchQueuePut(staging, `${key}:seq`, 'n1', 1, 'n2', 1);
      await expect(redis.orchQueueSwap(staging, key, 3)).rejects.toThrow(/holds 2 ids, expected 3/);
      expect(await h.admin.exists(staging)).toBe(0);
      expect(await h.queue.getMany(10)).toEqual(['kept']);
    } finally {
      await h.close();
    }
  });

  it('leaves only its sorted set and sequence counter behind, and nothing after cleanup', async () => {
    const h = await redisHarness();
    const admin = connectTestRedis('queue-check');
    try {
      await h.queue.putMany([{ taskId: 'a', priority: 1 }]);
      await h.queue.rebuild([{ taskId: 'b', priority: 2 }]);
      expect((await keysWithPrefix(admin, h.prefix)).sort()).toEqual([`${h.prefix}:ready`, `${h.prefix}:ready:seq`]);
      expect(await admin.ttl(`${h.prefix}:ready`)).toBe(-1);
      await h.close();
      expect(await keysWithPrefix(admin, h.prefix)).toEqual([]);
    } finally {
      await deleteKeysWithPrefix(admin, h.prefix);
      await closeClients([admin]);
      await h.close();
    }
  });
});
