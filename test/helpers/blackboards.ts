import { createEmbeddedBlackboard, sqlStores } from '../../src/adapters/blackboards.js';
import { RedisLockManager } from '../../src/adapters/redis/lock-manager.js';
import { RedisTaskQueue } from '../../src/adapters/redis/task-queue.js';
import type { Blackboard } from '../../src/orchestrator/factory.js';
import { connectTestRedis, deleteKeysWithPrefix, randomPrefix } from './redis.js';
import { postgresDatabase } from './stores.js';

export interface BlackboardKind {
  name: string;
  /** A fresh, isolated blackboard; `dispose` removes everything it made. */
  create(): Promise<{ blackboard: Blackboard; dispose(): Promise<void> }>;
}

/** PGlite + in-memory queue and leases: the embedded default. */
export const embedded: BlackboardKind = {
  name: 'embedded (PGlite, memory queue and locks)',
  async create() {
    const blackboard = await createEmbeddedBlackboard();
    return { blackboard, dispose: () => blackboard.close() };
  },
};

/** The real servers: an own PostgreSQL schema and an own Redis key prefix. */
export const servers: BlackboardKind = {
  name: 'servers (PostgreSQL, Redis)',
  async create() {
    const db = await postgresDatabase();
    const redis = connectTestRedis('blackboard');
    const prefix = randomPrefix('orch');
    const blackboard: Blackboard = {
      ...sqlStores(db.sql),
      queue: new RedisTaskQueue({ redis, key: `${prefix}:queue` }),
      locks: new RedisLockManager({ redis, prefix }),
      close: async () => undefined,
    };
    return {
      blackboard,
      async dispose() {
        await deleteKeysWithPrefix(redis, prefix);
        redis.disconnect();
        await db.close();
      },
    };
  },
};
