import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sqlStores } from '../../src/adapters/blackboards.js';
import { TransactionConflictError } from '../../src/errors.js';
import { migrate } from '../../src/adapters/postgres/migrate.js';
import type { SqlClient } from '../../src/adapters/postgres/sql-client.js';
import { at, newTask, write } from '../contract/task-store.fixtures.js';
import { createTestSchema, type TestSchema } from '../helpers/pg-schema.js';

/**
 * The dispatch outbox's rows are locked in task id order by every writer, so two of them
 * never deadlock (PostgreSQL's 40P01 aborts one: a results batch retried a second later,
 * its notices replayed). Found by the benchmark's fan-in: a results batch ending attempts
 * against a confirmation of dispatches. Here the confirmation is a transaction of the
 * test taking the rows in key order, as CONFIRM_DISPATCHES does, with a batch ending the
 * same attempts in between.
 */

let schema: TestSchema;
let sql: SqlClient;

beforeAll(async () => {
  schema = await createTestSchema();
  sql = schema.client({ max: 4 });
  await migrate(sql);
}, 60_000);

afterAll(async () => {
  await schema?.drop();
});

const records = async () => (await sql.query<{ task_id: string }>('SELECT task_id FROM dispatch_outbox ORDER BY task_id')).rows.map((r) => r.task_id);

describe('the dispatch outbox under a results batch and a confirmation at once', () => {
  it('does not deadlock: the batch waits for the confirmation, then ends both attempts', async () => {
    const stores = sqlStores(sql);
    await sql.query(`INSERT INTO projects (project_id, title, state, budget_limit, spent, reserved, created_at, updated_at) VALUES ('prj-1', 'p', 'active', 100, 0, 0, now(), now())`);
    // Created RUNNING, b first: its outbox row comes first in the table.
    await stores.tasks.createTasks([newTask('o-b', { status: 'RUNNING', fencingToken: 3, attempts: 1, deadline: at(600) })], 'orch-a');
    await stores.tasks.createTasks([newTask('o-a', { status: 'RUNNING', fencingToken: 4, attempts: 1, deadline: at(600) })], 'orch-a');
    expect(await records()).toEqual(['o-a', 'o-b']);
    const complete = (taskId: string, token: number) =>
      write(taskId, { from: 'RUNNING', to: 'COMPLETED', event: 'RESULT', fencingToken: token, patch: { status: 'COMPLETED', completedAt: at(70), deadline: null }, at: at(70) });

    let batch: Promise<unknown[]> | null = null;
    // The confirmation: a transaction of its own, taking o-a's row, then o-b's.
    await sql.transaction(async (tx) => {
      await tx.query("SELECT task_id FROM dispatch_outbox WHERE task_id = 'o-a' FOR UPDATE");
      // The batch ends both attempts (b first) and waits on a row the confirmation holds.
      batch = stores.commit.applyTransitions([complete('o-b', 3), complete('o-a', 4)]).then((outcomes) => outcomes.map((o) => o.ok));
      for (let i = 0; ; i++) {
        const { rows } = await tx.query<{ n: string }>("SELECT count(*) AS n FROM pg_locks WHERE NOT granted AND locktype = 'transactionid' AND pid <> pg_backend_pid()");
        if (Number(rows[0]!.n) > 0) break;
        if (i > 2_000) throw new Error('the batch never waited for the confirmation');
        await new Promise((r) => setTimeout(r, 5));
      }
      // In key order, o-b next: the batch must not be holding it (a deadlock otherwise).
      await tx.query("SELECT task_id FROM dispatch_outbox WHERE task_id = 'o-b' FOR UPDATE");
      await tx.query("DELETE FROM dispatch_outbox WHERE task_id IN ('o-a', 'o-b')");
    });
    expect(await batch!).toEqual([true, true]);
    expect((await stores.tasks.getTasks(['o-a', 'o-b'])).map((t) => t.status)).toEqual(['COMPLETED', 'COMPLETED']);
    expect(await records()).toEqual([]);
  }, 60_000);

  it("does not deadlock the recovery sweep's removal of ended attempts against a confirmation", async () => {
    const stores = sqlStores(sql);
    // Two attempts that ended unconfirmed (their tasks COMPLETED, their rows old), b's row first in the table.
    await stores.tasks.createTasks([newTask('s-b', { status: 'COMPLETED', completedAt: at(50) }), newTask('s-a', { status: 'COMPLETED', completedAt: at(50) })], 'orch-a');
    await sql.query(`INSERT INTO dispatch_outbox (task_id, fencing_token, at) VALUES ('s-b', 7, $1::timestamp)`, [at(10).toISOString()]);
    await sql.query(`INSERT INTO dispatch_outbox (task_id, fencing_token, at) VALUES ('s-a', 8, $1::timestamp)`, [at(10).toISOString()]);
    let sweep: Promise<unknown> | null = null;
    await sql.transaction(async (tx) => {
      await tx.query("SELECT task_id FROM dispatch_outbox WHERE task_id = 's-a' FOR UPDATE");
      sweep = stores.tasks.listUnconfirmedDispatches({ before: at(100), limit: 10 });
      // The sweep either waits on s-a (the old statement, holding s-b) or has passed it by.
      for (let i = 0; i < 40; i++) {
        const { rows } = await tx.query<{ n: string }>("SELECT count(*) AS n FROM pg_locks WHERE NOT granted AND locktype = 'transactionid' AND pid <> pg_backend_pid()");
        if (Number(rows[0]!.n) > 0) break;
        await new Promise((r) => setTimeout(r, 5));
      }
      await tx.query("SELECT task_id FROM dispatch_outbox WHERE task_id = 's-b' FOR UPDATE");
      await tx.query("DELETE FROM dispatch_outbox WHERE task_id = 's-a'");
    });
    expect(await sweep!).toEqual([]);
    expect((await records()).filter((id) => id.startsWith('s-'))).toEqual([]);
  }, 60_000);

  it('a deadlock PostgreSQL breaks is a TransactionConflictError: retryable, nothing of it written', async () => {
    await sql.query("CREATE TABLE lock_pair (id text PRIMARY KEY, n int NOT NULL DEFAULT 0)");
    await sql.query("INSERT INTO lock_pair (id) VALUES ('x'), ('y')");
    let first: () => void = () => undefined;
    const tookX = new Promise<void>((r) => (first = r));
    let second: () => void = () => undefined;
    const tookY = new Promise<void>((r) => (second = r));
    // Two transactions taking x and y in opposite orders: the server aborts one of them.
    const one = sql.transaction(async (tx) => {
      await tx.query("UPDATE lock_pair SET n = n + 1 WHERE id = 'x'");
      first();
      await tookY;
      await tx.query("UPDATE lock_pair SET n = n + 1 WHERE id = 'y'");
    });
    const two = sql.transaction(async (tx) => {
      await tookX;
      await tx.query("UPDATE lock_pair SET n = n + 10 WHERE id = 'y'");
      second();
      await tx.query("UPDATE lock_pair SET n = n + 10 WHERE id = 'x'");
    });
    const outcomes = await Promise.allSettled([one, two]);
    const failed = outcomes.filter((o): o is PromiseRejectedResult => o.status === 'rejected');
    expect(failed).toHaveLength(1);
    expect(failed[0]!.reason).toBeInstanceOf(TransactionConflictError);
    expect(failed[0]!.reason).toMatchObject({ code: 'ERR_TRANSACTION_CONFLICT', retryable: true });
    expect((failed[0]!.reason as Error).message).toMatch(/deadlock detected, 40P01\): nothing of it was written/);
    // The aborted one wrote nothing: only the other's increments are there.
    const { rows } = await sql.query<{ id: string; n: number }>('SELECT id, n FROM lock_pair ORDER BY id');
    const winner = outcomes[0]!.status === 'fulfilled' ? 1 : 10;
    expect(rows).toEqual([{ id: 'x', n: winner }, { id: 'y', n: winner }]);
  }, 60_000);
});
