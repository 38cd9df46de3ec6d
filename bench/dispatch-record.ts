/**
 * The durable "dispatch not yet confirmed" record, two designs side by side on the local
 * PostgreSQL (raw SQL, the shapes the store would run), per task through its lifecycle:
 * READY → RUNNING in batches of 500 (with its audit rows), then the record cleared for the
 * batch (one statement), then COMPLETED (with its audit rows):
 *
 *   - base:   no record (today);
 *   - column: a non-indexed column on `tasks`, set by the RUNNING update, cleared by a
 *             second UPDATE of the batch's rows (HOT-eligible: no indexed column changes);
 *   - table:  a small table `dispatch_outbox (task_id PK, fencing_token, at)`: a row
 *             inserted by the RUNNING statement, deleted by the clear.
 *
 * Reports wall time, the PostgreSQL backend's CPU time (from /proc, when the server runs
 * on this host) and WAL bytes per task (median of rounds, alternating order). Works
 * in its own schema, dropped at the end.   npx tsx bench/dispatch-record.ts
 *
 * With AUDIT_CURSOR=1, the audit log also gets the index a status publisher reading it with
 * a cursor (`WHERE id > $cursor ORDER BY id`) would need: one more index entry per audit
 * row, on every variant (compare `base` with and without it: the cost of durable statuses
 * read from the audit log).
 */
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import { migrate } from '../src/adapters/postgres/migrate.js';
import { PgSqlClient } from '../src/adapters/postgres/sql-client.js';

const DATABASE_URL = process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
const ROUNDS = Number(process.env.ROUNDS ?? 7);
const BATCH = 500;
const BATCHES = Number(process.env.BATCHES ?? 8);
type Variant = 'base' | 'column' | 'table';
const VARIANTS: Variant[] = ['base', 'column', 'table'];

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
};

/** CPU time (user + system, ms) of a PostgreSQL backend on this host, from /proc; null when not readable. */
function backendCpuMs(pid: number): number | null {
  try {
    const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
    return ((Number(fields[11]) + Number(fields[12])) * 1000) / 100; // utime, stime in clock ticks (USER_HZ = 100)
  } catch {
    return null;
  }
}

const SNAPSHOT = JSON.stringify({ status: 'active', value: 'READY', context: { note: 'x'.repeat(600) }, children: {}, historyValue: {} });

async function main(): Promise<void> {
  const schema = `bench_dr_${randomBytes(4).toString('hex')}`;
  const admin = new PgSqlClient({ connectionString: DATABASE_URL, max: 1 });
  await admin.query(`CREATE SCHEMA ${schema}`);
  const sql = new PgSqlClient({ connectionString: DATABASE_URL, schema, max: 1 });
  try {
    await migrate(sql);
    // `dispatch_outbox` is migration 005's; the column is this benchmark's.
    await sql.exec(`ALTER TABLE tasks ADD COLUMN dispatch_unconfirmed BOOLEAN NOT NULL DEFAULT false`);
    if (process.env.AUDIT_CURSOR === '1') await sql.exec('CREATE INDEX task_transitions_cursor_idx ON task_transitions (id)');
    const results: Record<Variant, { ms: number[]; wal: number[]; cpu: number[] }> = {
      base: { ms: [], wal: [], cpu: [] },
      column: { ms: [], wal: [], cpu: [] },
      table: { ms: [], wal: [], cpu: [] },
    };
    // One connection (max: 1): its backend's CPU is the statements'.
    const pid = (await sql.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0]!.pid;
    let seq = 0;
    for (let round = 0; round < ROUNDS; round++) {
      const order = round % 2 ? [...VARIANTS].reverse() : VARIANTS;
      for (const v of order) {
        // Fresh READY rows for this round and variant.
        const ids = Array.from({ length: BATCH * BATCHES }, () => `t${++seq}`);
        await sql.query(
          `INSERT INTO tasks (task_id, project_id, task_type, assigned_to, status, priority, input, dependencies, estimated_cost,
             created_at, attempts, max_attempts, timeout_ms, snapshot, machine_version, version, ready_at, updated_at)
           SELECT id, 'bench', 'RENDER_SHOT', 'video_generator', 'READY', 500, '{"shot":3,"prompt":"a lighthouse at dusk"}'::jsonb,
             '[]'::jsonb, 0.35, now(), 0, 3, 600000, $2::jsonb, '1', 1, now(), now()
           FROM jsonb_array_elements_text($1::jsonb) AS id`,
          [JSON.stringify(ids), SNAPSHOT],
        );
        const wal0 = (await sql.query<{ lsn: string }>('SELECT pg_current_wal_lsn()::text AS lsn')).rows[0]!.lsn;
        const cpu0 = backendCpuMs(pid);
        const t0 = performance.now();
        for (let b = 0; b < BATCHES; b++) {
          const batch = JSON.stringify(ids.slice(b * BATCH, (b + 1) * BATCH));
          const setCol = v === 'column' ? ', dispatch_unconfirmed = true' : '';
          const record = v === 'table'
            ? `, rec AS (INSERT INTO dispatch_outbox (task_id, fencing_token, at) SELECT task_id, fencing_token, now() FROM upd)`
            : '';
          await sql.query(
            `WITH ids AS (SELECT jsonb_array_elements_text($1::jsonb) AS id),
             upd AS (UPDATE tasks t SET status = 'RUNNING', attempts = t.attempts + 1, fencing_token = 7, deadline = now() + interval '10 min',
                       started_at = now(), snapshot = $2::jsonb, version = t.version + 1, updated_at = now()${setCol}
                     FROM ids WHERE t.task_id = ids.id AND t.status = 'READY' RETURNING t.task_id, t.project_id, t.fencing_token),
             audit AS (INSERT INTO task_transitions (task_id, project_id, from_status, to_status, event, detail, at, by_instance)
                       SELECT task_id, project_id, 'READY', 'RUNNING', 'DISPATCH', NULL, now(), 'bench' FROM upd)${record}
             SELECT count(*) FROM upd`,
            [batch, SNAPSHOT],
          );
          if (v === 'column') {
            await sql.query(
              `UPDATE tasks SET dispatch_unconfirmed = false
               WHERE task_id = ANY (ARRAY(SELECT jsonb_array_elements_text($1::jsonb))) AND status = 'RUNNING' AND fencing_token = 7 AND dispatch_unconfirmed`,
              [batch],
            );
          } else if (v === 'table') {
            await sql.query(
              `DELETE FROM dispatch_outbox d USING jsonb_to_recordset($1::jsonb) AS x(task_id text, fencing_token bigint)
               WHERE d.task_id = x.task_id AND d.fencing_token = x.fencing_token`,
              [JSON.stringify(ids.slice(b * BATCH, (b + 1) * BATCH).map((id) => ({ task_id: id, fencing_token: 7 })))],
            );
          }
          await sql.query(
            `WITH ids AS (SELECT jsonb_array_elements_text($1::jsonb) AS id),
             upd AS (UPDATE tasks t SET status = 'COMPLETED', completed_at = now(), output = '{"ok":true}'::jsonb, actual_cost = 0.3,
                       snapshot = $2::jsonb, version = t.version + 1, updated_at = now(), deadline = NULL
                     FROM ids WHERE t.task_id = ids.id AND t.status = 'RUNNING' RETURNING t.task_id, t.project_id),
             audit AS (INSERT INTO task_transitions (task_id, project_id, from_status, to_status, event, detail, at, by_instance)
                       SELECT task_id, project_id, 'RUNNING', 'COMPLETED', 'COMPLETE', NULL, now(), 'bench' FROM upd)
             SELECT count(*) FROM upd`,
            [batch, SNAPSHOT],
          );
        }
        const ms = performance.now() - t0;
        const cpu1 = backendCpuMs(pid);
        const wal1 = (await sql.query<{ lsn: string }>('SELECT pg_current_wal_lsn()::text AS lsn')).rows[0]!.lsn;
        const walBytes = Number((await sql.query<{ d: string }>(`SELECT pg_wal_lsn_diff($1::pg_lsn, $2::pg_lsn)::text AS d`, [wal1, wal0])).rows[0]!.d);
        const n = BATCH * BATCHES;
        results[v].ms.push((ms * 1000) / n);
        results[v].wal.push(walBytes / n);
        if (cpu0 !== null && cpu1 !== null) results[v].cpu.push(((cpu1 - cpu0) * 1000) / n);
      }
    }
    const size = await sql.query<{ t: string; o: string }>(`SELECT pg_total_relation_size('tasks')::text AS t, pg_total_relation_size('dispatch_outbox')::text AS o`);
    console.log('| variant | µs per task (RUNNING + clear + COMPLETED) | backend CPU µs per task | WAL bytes per task |');
    console.log('|---|---|---|---|');
    for (const v of VARIANTS) {
      const cpu = results[v].cpu.length ? median(results[v].cpu).toFixed(1) : 'n/a';
      console.log(`| ${v} | ${median(results[v].ms).toFixed(1)} | ${cpu} | ${median(results[v].wal).toFixed(0)} |`);
    }
    console.log(`tasks ${size.rows[0]!.t} bytes, dispatch_outbox ${size.rows[0]!.o} bytes after the run`);
  } finally {
    await sql.close();
    await admin.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
    await admin.close();
  }
}

await main();
