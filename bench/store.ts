/**
 * Task store throughput against the local PostgreSQL, next to the raw SQL it wraps:
 *   - applyTransition, one at a time (a CTE: guarded UPDATE + audit INSERT, autocommit)
 *     vs a raw single-row UPDATE of the same table, autocommit;
 *   - createTasks in batches of 100 (one statement: jsonb_to_recordset + audit rows)
 *     vs a raw 100-row multi-VALUES INSERT into the same table (no audit rows);
 *   - applyTransitions in batches of 100 (one statement: row locks, checks, UPDATE, audit
 *     rows) vs applyTransition one at a time, the same transitions: without a budget effect
 *     (promotion to READY) and with an enforced reservation (dispatch).
 * Both sides use named prepared statements (the store prepares its hot statements).
 * Several rounds, alternating the order, medians reported. Works in its own schema,
 * dropped at the end.
 *
 *   npx tsx bench/store.ts            (DATABASE_URL overrides the server)
 */
import { randomBytes } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { migrate } from '../src/adapters/postgres/migrate.js';
import { PgSqlClient, type SqlClient } from '../src/adapters/postgres/sql-client.js';
import { PostgresCommit } from '../src/adapters/postgres/commit.js';
import { PostgresTaskStore } from '../src/adapters/postgres/task-store.js';
import type { TransitionWrite } from '../src/ports/commit.js';
import type { NewTaskRecord } from '../src/ports/task-store.js';

const DATABASE_URL = process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
const ROUNDS = 7;
const TRANSITIONS = 300; // per round and per side
const BATCHES = 10; // of 100 rows, per round and per side
const BATCH = 100;

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
};

function task(taskId: string, status: 'PENDING' | 'READY' = 'PENDING'): NewTaskRecord {
  const now = new Date();
  return {
    taskId, projectId: 'bench', taskType: 'RENDER_SHOT', assignedTo: 'video_generator', status,
    priority: 500, input: { shot: 3, prompt: 'a lighthouse at dusk, slow dolly in' }, output: null,
    dependencies: ['dep-1'], estimatedCost: 0.35, actualCost: null, createdAt: now, startedAt: null,
    completedAt: null, attempts: 0, maxAttempts: 3, lastError: null, deadline: null, notBefore: null,
    fencingToken: null, timeoutMs: 600_000, snapshot: { value: 'pending', context: { taskId } },
    machineVersion: '1',
  };
}

const RAW_COLUMNS = [
  'task_id', 'project_id', 'task_type', 'assigned_to', 'status', 'priority', 'input', 'dependencies',
  'estimated_cost', 'created_at', 'attempts', 'max_attempts', 'timeout_ms', 'snapshot', 'machine_version',
  'updated_at',
] as const;

function rawInsert(ids: string[]): { text: string; params: unknown[] } {
  const params: unknown[] = [];
  const rows = ids.map((id) => {
    const t = task(id);
    const now = t.createdAt.toISOString();
    const values = [id, t.projectId, t.taskType, t.assignedTo, t.status, t.priority, JSON.stringify(t.input),
      JSON.stringify(t.dependencies), t.estimatedCost, now, 0, 3, t.timeoutMs, JSON.stringify(t.snapshot), '1', now];
    const refs = values.map((v) => {
      params.push(v);
      return `$${params.length}`;
    });
    return `(${refs.join(', ')})`;
  });
  return { text: `INSERT INTO tasks (${RAW_COLUMNS.join(', ')}) VALUES ${rows.join(', ')}`, params };
}

interface Round {
  transitions: number; // per second
  rawUpdates: number;
  batchRows: number; // rows per second
  rawRows: number;
  batchedTransitions: number; // applyTransitions ×100, transitions per second
  batchedReservations: number; // the same with an enforced budget reservation each
  singleReservations: number; // applyTransition one at a time, with the reservation
  rawBatchUpdates: number; // a raw 100-row UPDATE ... FROM jsonb_to_recordset: no checks, no audit
}

/** PENDING → READY (promotion), or with `reserve` READY → RUNNING with an enforced reservation (dispatch). */
function transition(taskId: string, reserve: boolean): TransitionWrite {
  const base = {
    taskId, expectedVersion: 1, machineVersion: '1', by: 'bench', at: new Date(),
  };
  return reserve
    ? {
        ...base, from: 'READY', to: 'RUNNING', event: 'DISPATCH', fencingToken: 1,
        patch: { status: 'RUNNING', attempts: 1, startedAt: base.at, deadline: new Date(base.at.getTime() + 600_000), fencingToken: 1 },
        snapshot: { value: 'running', context: { taskId, attempt: 1 } },
        budget: { projectId: 'bench', reserve: 0.35, enforce: true },
      }
    : {
        ...base, from: 'PENDING', to: 'READY', event: 'DEPENDENCIES_MET',
        patch: { status: 'READY' }, snapshot: { value: 'ready', context: { taskId } },
      };
}

async function oneRound(sql: SqlClient, store: PostgresTaskStore, commit: PostgresCommit, round: number, reverse: boolean): Promise<Round> {
  await sql.query('TRUNCATE tasks, task_transitions, projects');
  await sql.query(
    `INSERT INTO projects (project_id, title, budget_limit, created_at, updated_at)
     VALUES ('bench', 'bench', 1000000, now(), now())`,
  );
  const tIds = Array.from({ length: TRANSITIONS }, (_, i) => `tr${round}_${i}`);
  const uIds = Array.from({ length: TRANSITIONS }, (_, i) => `up${round}_${i}`);
  const rIds = Array.from({ length: TRANSITIONS }, (_, i) => `rs${round}_${i}`);
  const btIds = Array.from({ length: BATCHES * BATCH }, (_, i) => `bt${round}_${i}`);
  const buIds = Array.from({ length: BATCHES * BATCH }, (_, i) => `bu${round}_${i}`);
  const brIds = Array.from({ length: BATCHES * BATCH }, (_, i) => `br${round}_${i}`);
  for (let i = 0; i < TRANSITIONS; i += BATCH) {
    await store.createTasks(tIds.slice(i, i + BATCH).map((id) => task(id)), 'bench');
    await store.createTasks(uIds.slice(i, i + BATCH).map((id) => task(id)), 'bench');
    await store.createTasks(rIds.slice(i, i + BATCH).map((id) => task(id, 'READY')), 'bench');
  }
  for (let i = 0; i < BATCHES * BATCH; i += BATCH) {
    await store.createTasks(btIds.slice(i, i + BATCH).map((id) => task(id)), 'bench');
    await store.createTasks(brIds.slice(i, i + BATCH).map((id) => task(id, 'READY')), 'bench');
    await store.createTasks(buIds.slice(i, i + BATCH).map((id) => task(id)), 'bench');
  }

  const transitions = async () => {
    const start = performance.now();
    for (const id of tIds) {
      await commit.applyTransition({
        taskId: id, expectedVersion: 1, from: 'PENDING', to: 'READY', event: 'DEPENDENCIES_MET',
        patch: { status: 'READY' }, snapshot: { value: 'ready', context: { taskId: id } },
        machineVersion: '1', by: 'bench', at: new Date(),
      });
    }
    return TRANSITIONS / ((performance.now() - start) / 1000);
  };
  const singleReservations = async () => {
    const start = performance.now();
    for (const id of rIds) await commit.applyTransition(transition(id, true));
    return TRANSITIONS / ((performance.now() - start) / 1000);
  };
  const batched = (taskIds: string[], reserve: boolean) => async () => {
    const start = performance.now();
    for (let b = 0; b < BATCHES; b++) {
      const outcomes = await commit.applyTransitions(taskIds.slice(b * BATCH, (b + 1) * BATCH).map((id) => transition(id, reserve)));
      if (!outcomes.every((o) => o.ok)) throw new Error('bench: a batched transition was refused');
    }
    return (BATCHES * BATCH) / ((performance.now() - start) / 1000);
  };
  const rawBatchUpdates = async () => {
    const start = performance.now();
    for (let b = 0; b < BATCHES; b++) {
      const rows = buIds.slice(b * BATCH, (b + 1) * BATCH).map((id) => ({
        task_id: id, snapshot: { value: 'ready', context: { taskId: id } }, at: new Date().toISOString(),
      }));
      await sql.query(
        `UPDATE tasks t SET status = 'READY', snapshot = x.snapshot, ready_at = x.at, updated_at = x.at, version = t.version + 1
         FROM jsonb_to_recordset($1::jsonb) AS x(task_id text, snapshot jsonb, at timestamp)
         WHERE t.task_id = x.task_id`,
        [JSON.stringify(rows)],
        { name: 'bench_raw_batch_update' },
      );
    }
    return (BATCHES * BATCH) / ((performance.now() - start) / 1000);
  };
  const rawUpdates = async () => {
    const start = performance.now();
    for (const id of uIds) {
      await sql.query(
        `UPDATE tasks SET status = 'READY', version = version + 1, updated_at = $2::timestamp WHERE task_id = $1`,
        [id, new Date().toISOString()],
        { name: 'bench_raw_update' },
      );
    }
    return TRANSITIONS / ((performance.now() - start) / 1000);
  };
  const batches = async () => {
    const start = performance.now();
    for (let b = 0; b < BATCHES; b++) {
      await store.createTasks(Array.from({ length: BATCH }, (_, i) => task(`cb${round}_${b}_${i}`)), 'bench');
    }
    return (BATCHES * BATCH) / ((performance.now() - start) / 1000);
  };
  const rawInserts = async () => {
    const start = performance.now();
    for (let b = 0; b < BATCHES; b++) {
      const { text, params } = rawInsert(Array.from({ length: BATCH }, (_, i) => `ri${round}_${b}_${i}`));
      await sql.query(text, params, { name: 'bench_raw_insert' });
    }
    return (BATCHES * BATCH) / ((performance.now() - start) / 1000);
  };

  const sides: [keyof Round, () => Promise<number>][] = [
    ['transitions', transitions],
    ['rawUpdates', rawUpdates],
    ['batchRows', batches],
    ['rawRows', rawInserts],
    ['batchedTransitions', batched(btIds, false)],
    ['singleReservations', singleReservations],
    ['batchedReservations', batched(brIds, true)],
    ['rawBatchUpdates', rawBatchUpdates],
  ];
  const r: Partial<Round> = {};
  for (const [key, run] of reverse ? sides.reverse() : sides) r[key] = await run();
  return r as Round;
}

async function main(): Promise<void> {
  const schema = `bench_${randomBytes(5).toString('hex')}`;
  const admin = new PgSqlClient({ connectionString: DATABASE_URL, max: 1 });
  await admin.query(`CREATE SCHEMA ${schema}`);
  const sql = new PgSqlClient({ connectionString: DATABASE_URL, schema, max: 2 });
  try {
    await migrate(sql);
    const store = new PostgresTaskStore(sql);
    const commit = new PostgresCommit(sql);
    await oneRound(sql, store, commit, 0, false); // warm-up, not counted
    const rounds: Round[] = [];
    for (let i = 1; i <= ROUNDS; i++) rounds.push(await oneRound(sql, store, commit, i, i % 2 === 0));

    const m = (k: keyof Round) => median(rounds.map((r) => r[k]));
    const fmt = (x: number) => Math.round(x).toLocaleString('en-US');
    const { rows } = await sql.query<{ v: string }>("SELECT current_setting('server_version') AS v");
    console.log(
      `\nPostgreSQL ${rows[0]?.v}, ${ROUNDS} rounds (alternating order) after a warm-up; medians; ` +
        `${TRANSITIONS} single transitions and ${BATCHES}×${BATCH} rows or batched transitions per side per round.\n`,
    );
    console.log('| operation | store | raw SQL | store / raw |');
    console.log('|---|---:|---:|---:|');
    console.log(
      `| applyTransition one at a time vs single-row UPDATE (per s) | ${fmt(m('transitions'))} | ${fmt(m('rawUpdates'))} | ${(m('transitions') / m('rawUpdates')).toFixed(2)} |`,
    );
    console.log(
      `| createTasks ×100 vs 100-row multi-VALUES INSERT (rows/s) | ${fmt(m('batchRows'))} | ${fmt(m('rawRows'))} | ${(m('batchRows') / m('rawRows')).toFixed(2)} |`,
    );
    console.log(
      '\n| transitions per second | applyTransitions ×100 | applyTransition one at a time | batched / single | raw 100-row UPDATE (no checks, no audit) |',
    );
    console.log('|---|---:|---:|---:|---:|');
    console.log(
      `| PENDING → READY, no budget effect | ${fmt(m('batchedTransitions'))} | ${fmt(m('transitions'))} | ${(m('batchedTransitions') / m('transitions')).toFixed(1)} | ${fmt(m('rawBatchUpdates'))} |`,
    );
    console.log(
      `| READY → RUNNING, enforced reservation | ${fmt(m('batchedReservations'))} | ${fmt(m('singleReservations'))} | ${(m('batchedReservations') / m('singleReservations')).toFixed(1)} | |`,
    );
  } finally {
    await sql.close();
    await admin.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
    await admin.close();
  }
}

await main();
