/**
 * Task store throughput against the local PostgreSQL, next to the raw SQL it wraps:
 *   - applyTransition, one at a time (a CTE: guarded UPDATE + audit INSERT, autocommit)
 *     vs a raw single-row UPDATE of the same table, autocommit;
 *   - createTasks in batches of 100 (one statement: jsonb_to_recordset + audit rows)
 *     vs a raw 100-row multi-VALUES INSERT into the same table (no audit rows).
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
import { PostgresTaskStore } from '../src/adapters/postgres/task-store.js';
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
}

async function oneRound(sql: SqlClient, store: PostgresTaskStore, round: number, reverse: boolean): Promise<Round> {
  await sql.query('TRUNCATE tasks, task_transitions');
  const tIds = Array.from({ length: TRANSITIONS }, (_, i) => `tr${round}_${i}`);
  const uIds = Array.from({ length: TRANSITIONS }, (_, i) => `up${round}_${i}`);
  for (let i = 0; i < TRANSITIONS; i += BATCH) {
    await store.createTasks(tIds.slice(i, i + BATCH).map((id) => task(id)), 'bench');
    await store.createTasks(uIds.slice(i, i + BATCH).map((id) => task(id)), 'bench');
  }

  const transitions = async () => {
    const start = performance.now();
    for (const id of tIds) {
      await store.applyTransition({
        taskId: id, expectedVersion: 1, from: 'PENDING', to: 'READY', event: 'DEPENDENCIES_MET',
        patch: { status: 'READY' }, snapshot: { value: 'ready', context: { taskId: id } },
        machineVersion: '1', by: 'bench', at: new Date(),
      });
    }
    return TRANSITIONS / ((performance.now() - start) / 1000);
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

  const r: Partial<Round> = {};
  if (reverse) {
    r.rawUpdates = await rawUpdates();
    r.transitions = await transitions();
    r.rawRows = await rawInserts();
    r.batchRows = await batches();
  } else {
    r.transitions = await transitions();
    r.rawUpdates = await rawUpdates();
    r.batchRows = await batches();
    r.rawRows = await rawInserts();
  }
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
    await oneRound(sql, store, 0, false); // warm-up, not counted
    const rounds: Round[] = [];
    for (let i = 1; i <= ROUNDS; i++) rounds.push(await oneRound(sql, store, i, i % 2 === 0));

    const m = (k: keyof Round) => median(rounds.map((r) => r[k]));
    const fmt = (x: number) => Math.round(x).toLocaleString('en-US');
    const { rows } = await sql.query<{ v: string }>("SELECT current_setting('server_version') AS v");
    console.log(
      `\nPostgreSQL ${rows[0]?.v}, ${ROUNDS} rounds (alternating order) after a warm-up; medians; ` +
        `${TRANSITIONS} transitions and ${BATCHES}×${BATCH} rows per side per round.\n`,
    );
    console.log('| operation | store | raw SQL | store / raw |');
    console.log('|---|---:|---:|---:|');
    console.log(
      `| applyTransition one at a time vs single-row UPDATE (per s) | ${fmt(m('transitions'))} | ${fmt(m('rawUpdates'))} | ${(m('transitions') / m('rawUpdates')).toFixed(2)} |`,
    );
    console.log(
      `| createTasks ×100 vs 100-row multi-VALUES INSERT (rows/s) | ${fmt(m('batchRows'))} | ${fmt(m('rawRows'))} | ${(m('batchRows') / m('rawRows')).toFixed(2)} |`,
    );
  } finally {
    await sql.close();
    await admin.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
    await admin.close();
  }
}

await main();
