import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SimulatedClock } from 'xstate';
import type { Redis } from 'ioredis';
import { sqlStores } from '../../src/adapters/blackboards.js';
import { PostgresTaskStore } from '../../src/adapters/postgres/task-store.js';
import { PgSqlClient, type SqlClient } from '../../src/adapters/postgres/sql-client.js';
import { RedisLockManager } from '../../src/adapters/redis/lock-manager.js';
import { TaskRegistry } from '../../src/actors/task-registry.js';
import { TaskTypeCatalog } from '../../src/domain/task-types.js';
import { StaleFencingTokenError } from '../../src/errors.js';
import { silentLogger } from '../../src/logger.js';
import { connectTestRedis, deleteKeysWithPrefix, randomPrefix } from '../helpers/redis.js';
import { postgresDatabase, TEST_DATABASE_URL, type TestDatabase } from '../helpers/stores.js';
import { waitFor } from '../helpers/wait.js';

/**
 * The lock-expired-while-paused case on the real servers: holder A loses its Redis
 * connection mid-task, its lease expires, holder B takes the task over with a newer
 * fencing token, and A's late completion is refused by PostgreSQL.
 */
let db: TestDatabase;
let admin: Redis;
const prefix = randomPrefix('fencing');
const T0 = 1_700_000_000_000;

function registry(sql: SqlClient, instanceId: string): TaskRegistry {
  const { tasks: store, commit } = sqlStores(sql);
  const clock = new SimulatedClock();
  clock.set(T0);
  return new TaskRegistry({ store, commit, instanceId, logger: silentLogger(), catalog: new TaskTypeCatalog(), clock, defaultTimeoutMs: 60_000 });
}

beforeAll(async () => {
  db = await postgresDatabase();
  admin = connectTestRedis('fencing-admin');
});
afterAll(async () => {
  await deleteKeysWithPrefix(admin, prefix);
  admin.disconnect();
  await db.close();
});

describe('fencing across a lost lease', () => {
  it("refuses the first holder's late completion after a second holder took over", async () => {
    // Two orchestrator processes: each its own Redis connection and its own PostgreSQL pool.
    const redisA = connectTestRedis('holder-a');
    const redisB = connectTestRedis('holder-b');
    const sqlB = new PgSqlClient({ connectionString: TEST_DATABASE_URL, schema: db.schema!, max: 2 });
    try {
      const locksA = new RedisLockManager({ redis: redisA, prefix });
      const locksB = new RedisLockManager({ redis: redisB, prefix });
      const storeA = new PostgresTaskStore(db.sql);
      const a = registry(db.sql, 'proc-a');
      const b = registry(sqlB, 'proc-b');

      await a.createTasks([{ taskId: 'fence-1', projectId: 'prj_f', taskType: 'GENERATE_FINAL_VIDEO' }]);
      await a.send('fence-1', { type: 'DEPENDENCIES_MET', at: T0 });
      const leaseA = await locksA.acquire('task:fence-1', 300);
      expect(leaseA).not.toBeNull();
      await a.send('fence-1', { type: 'DISPATCH', at: T0, fencingToken: leaseA!.fencingToken, deadline: T0 + 1000 });

      // A is cut off from Redis (a paused process, a partition): it cannot extend its lease.
      redisA.disconnect(false);
      expect(await locksB.acquire('task:fence-1', 300)).toBeNull();
      await waitFor(async () => (await admin.exists(`${prefix}:lock:task:fence-1`)) === 0);

      // B sweeps the timed-out attempt, retries it and dispatches it under a newer token.
      await b.send('fence-1', { type: 'TIME_OUT', at: T0 + 2000 });
      await b.send('fence-1', { type: 'RETRY', at: T0 + 2000, notBefore: T0 + 2000 });
      await b.send('fence-1', { type: 'DEPENDENCIES_MET', at: T0 + 2001 });
      const leaseB = await locksB.acquire('task:fence-1', 60_000);
      expect(leaseB).not.toBeNull();
      expect(leaseB!.fencingToken).toBeGreaterThan(leaseA!.fencingToken);
      await b.send('fence-1', { type: 'DISPATCH', at: T0 + 2002, fencingToken: leaseB!.fencingToken, deadline: T0 + 62_002 });

      // A resumes and reports its (late) completion with its old token: refused, nothing changes.
      const before = await storeA.getTask('fence-1');
      const late = await a
        .send('fence-1', { type: 'COMPLETE', at: T0 + 3000, actualCost: 9.99 }, { fencingToken: leaseA!.fencingToken, output: { video: 'stale.mp4' } })
        .catch((e: unknown) => e);
      expect(late).toBeInstanceOf(StaleFencingTokenError);
      expect(await storeA.getTask('fence-1')).toEqual(before);
      // A's lease operations are refused too once it is back.
      redisA.connect().catch(() => undefined);
      expect(await locksA.release(leaseA!)).toBe(false);

      // B's completion, under the current token, is accepted.
      await b.send('fence-1', { type: 'COMPLETE', at: T0 + 4000, actualCost: 1.5 }, { fencingToken: leaseB!.fencingToken, output: { video: 'final.mp4' } });
      const row = await storeA.getTask('fence-1');
      expect(row).toMatchObject({ status: 'COMPLETED', actualCost: 1.5, output: { video: 'final.mp4' }, fencingToken: leaseB!.fencingToken, attempts: 2 });
      const audit = await storeA.listTransitions('fence-1');
      expect(audit.filter((t) => t.toStatus === 'COMPLETED')).toHaveLength(1);
      expect(audit.at(-1)!.by).toBe('proc-b');
    } finally {
      redisA.disconnect();
      redisB.disconnect();
      await sqlB.close();
    }
  });

  it('refuses a result or heartbeat under a token above the attempt\'s: no lease handed it to this task (issue 16, found by the fuzz)', async () => {
    const sqlB = new PgSqlClient({ connectionString: TEST_DATABASE_URL, schema: db.schema!, max: 2 });
    try {
      const store = new PostgresTaskStore(db.sql);
      const a = registry(db.sql, 'proc-a');
      await a.createTasks([{ taskId: 'fence-2', projectId: 'prj_f', taskType: 'GENERATE_FINAL_VIDEO' }]);
      await a.send('fence-2', { type: 'DEPENDENCIES_MET', at: T0 });
      await a.send('fence-2', { type: 'DISPATCH', at: T0, fencingToken: 40, deadline: T0 + 1000 });
      const before = await store.getTask('fence-2');

      // Another task's token, or one never handed out: refused, nothing changes.
      for (const token of [41, 1_000_000_000]) {
        const complete = await a
          .send('fence-2', { type: 'COMPLETE', at: T0 + 10, actualCost: 0.01 }, { fencingToken: token, output: { fuzz: 1 } })
          .catch((e: unknown) => e);
        expect(complete).toBeInstanceOf(StaleFencingTokenError);
        const fail = await a.send('fence-2', { type: 'FAIL', at: T0 + 10, error: 'not yours' }, { fencingToken: token }).catch((e: unknown) => e);
        expect(fail).toBeInstanceOf(StaleFencingTokenError);
        const heartbeat = await a.send('fence-2', { type: 'HEARTBEAT', at: T0 + 10, deadline: T0 + 999_999 }, { fencingToken: token }).catch((e: unknown) => e);
        expect(heartbeat).toBeInstanceOf(StaleFencingTokenError);
        expect((heartbeat as Error).message).toContain(`fencing token ${token} is not the current token 40`);
      }
      expect(await store.getTask('fence-2')).toEqual(before);

      // A held copy that is behind (another process dispatched the task again under a newer
      // token) does not refuse the current token: decided again on the row.
      const b = registry(sqlB, 'proc-b');
      await b.send('fence-2', { type: 'TIME_OUT', at: T0 + 2000 });
      await b.send('fence-2', { type: 'RETRY', at: T0 + 2000, notBefore: T0 + 2000 });
      await b.send('fence-2', { type: 'DEPENDENCIES_MET', at: T0 + 2001 });
      await b.send('fence-2', { type: 'DISPATCH', at: T0 + 2002, fencingToken: 50, deadline: T0 + 62_002 });
      await a.send('fence-2', { type: 'COMPLETE', at: T0 + 3000, actualCost: 1.5 }, { fencingToken: 50, output: { video: 'final.mp4' } });
      expect(await store.getTask('fence-2')).toMatchObject({ status: 'COMPLETED', fencingToken: 50, attempts: 2, output: { video: 'final.mp4' } });
    } finally {
      await sqlB.close();
    }
  });
});
