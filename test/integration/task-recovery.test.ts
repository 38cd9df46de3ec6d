import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SimulatedClock } from 'xstate';
import { sqlStores } from '../../src/adapters/blackboards.js';
import type { SqlClient } from '../../src/adapters/postgres/sql-client.js';
import { PostgresTaskStore } from '../../src/adapters/postgres/task-store.js';
import { TaskRegistry } from '../../src/actors/task-registry.js';
import { snapshotForRecord } from '../../src/actors/task-snapshot.js';
import { TaskTypeCatalog } from '../../src/domain/task-types.js';
import { silentLogger } from '../../src/logger.js';
import type { TaskEvent } from '../../src/machines/task-machine.js';
import { PgSqlClient } from '../../src/adapters/postgres/sql-client.js';
import { T0, pathTo, SITUATIONS, statusOfSituation } from '../helpers/transition-table.js';
import { postgresDatabase, TEST_DATABASE_URL, type TestDatabase } from '../helpers/stores.js';

/** Restarting the task actors from PostgreSQL: every non-final task continues where it was. */
let db: TestDatabase;

function registryOn(sql: SqlClient, instanceId: string): TaskRegistry {
  const { tasks: store, commit } = sqlStores(sql);
  const clock = new SimulatedClock();
  clock.set(T0);
  return new TaskRegistry({ store, commit, instanceId, logger: silentLogger(), catalog: new TaskTypeCatalog(), clock, defaultTimeoutMs: 60_000 });
}

/** The events that take a task from its state to COMPLETED. */
function toCompletion(status: string, token: number): TaskEvent[] {
  const dispatch: TaskEvent = { type: 'DISPATCH', at: T0 + 10, fencingToken: token, deadline: T0 + 60_000 };
  const complete: TaskEvent = { type: 'COMPLETE', at: T0 + 20, actualCost: 0.1 };
  switch (status) {
    case 'PENDING':
      return [{ type: 'DEPENDENCIES_MET', at: T0 + 5 }, dispatch, complete];
    case 'WAITING_APPROVAL':
      return [{ type: 'APPROVE', at: T0 + 5, dependenciesMet: true }, dispatch, complete];
    case 'READY':
      return [dispatch, complete];
    case 'RUNNING':
      return [complete];
    case 'FAILED':
      return [{ type: 'RETRY', at: T0 + 5, notBefore: T0 + 6 }, { type: 'DEPENDENCIES_MET', at: T0 + 7 }, dispatch, complete];
    default:
      throw new Error(`no way on from ${status}`);
  }
}

beforeAll(async () => {
  db = await postgresDatabase();
});
afterAll(async () => db.close());

describe('task actors restored from PostgreSQL', () => {
  it('restores exactly the non-final tasks and continues each one to completion', async () => {
    const before = registryOn(db.sql, 'before-restart');
    const ids = new Map<string, string>();
    for (const situation of SITUATIONS) {
      const { maxAttempts, events } = pathTo(situation);
      const taskId = `r-${situation}`;
      await before.createTasks([{ taskId, projectId: 'prj_r', taskType: 'WRITE_SCRIPT', maxAttempts }]);
      for (const e of events) await before.send(taskId, e, { fencingToken: 1 });
      ids.set(situation, taskId);
    }
    before.stopAll();

    // A new process: its own pool, its own registry, nothing in memory.
    const sql = new PgSqlClient({ connectionString: TEST_DATABASE_URL, schema: db.schema!, max: 4 });
    try {
      const after = registryOn(sql, 'after-restart');
      const restored = await after.restore(3);
      const nonFinal = ['PENDING', 'WAITING_APPROVAL', 'READY', 'RUNNING', 'FAILED'] as const;
      expect(restored).toBe(nonFinal.length);
      expect(after.liveCount).toBe(nonFinal.length);
      for (const situation of nonFinal) {
        const actor = await after.get(ids.get(situation)!);
        expect(actor.status).toBe(statusOfSituation(situation));
        // A new attempt runs under token 2; the attempt still RUNNING is completed under its own, 1.
        const token = actor.status === 'RUNNING' ? 1 : 2;
        // An agent's result carries its attempt's token; the orchestrator's own steps carry none.
        for (const e of toCompletion(actor.status, token)) await after.send(actor.taskId, e, e.type === 'COMPLETE' ? { fencingToken: token } : {});
      }
      const rows = await new PostgresTaskStore(sql).listByProject('prj_r');
      const byId = new Map(rows.map((r) => [r.taskId, r.status]));
      for (const situation of nonFinal) expect(byId.get(ids.get(situation)!)).toBe('COMPLETED');
      expect(byId.get(ids.get('CANCELLED')!)).toBe('CANCELLED');
      expect(byId.get(ids.get('FAILED_EXHAUSTED')!)).toBe('FAILED');
      expect(after.liveCount).toBe(0);
    } finally {
      await sql.close();
    }
  });

  it('a snapshot written by another machine version is rebuilt from the row, not misread', async () => {
    const store = new PostgresTaskStore(db.sql);
    const reg = registryOn(db.sql, 'v-old');
    await reg.createTasks([{ taskId: 'v-1', projectId: 'prj_v', taskType: 'WRITE_SCRIPT' }]);
    await reg.send('v-1', { type: 'DEPENDENCIES_MET', at: T0 });
    reg.stopAll();
    await db.sql.query(`UPDATE tasks SET machine_version = '0', snapshot = '{"value":"SOMETHING_ELSE","context":{"x":1}}'::jsonb WHERE task_id = 'v-1'`);
    const fresh = registryOn(db.sql, 'v-new');
    const actor = await fresh.get('v-1');
    expect(actor.status).toBe('READY');
    const t = await fresh.send('v-1', { type: 'DISPATCH', at: T0, fencingToken: 3, deadline: T0 + 1 });
    expect(t.to).toBe('RUNNING');
    const row = await store.getTask('v-1');
    expect(row!.machineVersion).toBe('1');
    // The stale snapshot is gone: the columns are the state (no snapshot needed), and say RUNNING.
    expect(row!.snapshot).toBeNull();
    expect(snapshotForRecord(row!)).toMatchObject({ source: 'columns', persisted: { value: 'RUNNING' } });
  });

  it('100 000 completed tasks in the table cost no live actors', async () => {
    const nonFinalBefore = (await new PostgresTaskStore(db.sql).loadNonFinal({ limit: 1000 })).length;
    await db.sql.query(
      `INSERT INTO tasks (task_id, project_id, task_type, assigned_to, status, priority, input, dependencies,
                          created_at, completed_at, attempts, max_attempts, timeout_ms, snapshot, machine_version, updated_at)
       SELECT 'done-' || g, 'prj_bulk', 'WRITE_SCRIPT', 'script_writer', 'COMPLETED', 500, '{}'::jsonb, '[]'::jsonb,
              now(), now(), 1, 3, 60000, '{"value":"COMPLETED","context":{}}'::jsonb, '1', now()
       FROM generate_series(1, 100000) g`,
    );
    const reg = registryOn(db.sql, 'bulk');
    const restored = await reg.restore(1000);
    expect(restored).toBe(nonFinalBefore);
    expect(reg.liveCount).toBe(nonFinalBefore);
    const actor = await reg.get('done-77');
    expect(actor.status).toBe('COMPLETED');
    expect(reg.liveCount).toBe(nonFinalBefore);
  });
});
