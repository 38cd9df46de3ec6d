import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { loadMigrations, migrate } from '../../src/adapters/postgres/migrate.js';
import { PGliteSqlClient, type SqlClient } from '../../src/adapters/postgres/sql-client.js';
import { LIST_DEPENDENTS_OF } from '../../src/adapters/postgres/task-store.js';
import { AUDIT_SINCE } from '../../src/adapters/postgres/notice-ledger.js';
import { MigrationError } from '../../src/errors.js';
import { createTestSchema, type TestSchema } from '../helpers/pg-schema.js';

/** A scratch migrations directory; CREATE TABLE without IF NOT EXISTS, so applying twice fails. */
async function scratchDir(files: Record<string, string>): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'migrations-'));
  for (const [name, sql] of Object.entries(files)) await writeFile(join(dir, name), sql);
  return dir;
}

const tablesOf = async (sql: SqlClient): Promise<string[]> =>
  (
    await sql.query<{ table_name: string }>(
      `SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema() ORDER BY table_name`,
    )
  ).rows.map((r) => r.table_name);

const recorded = async (sql: SqlClient): Promise<number[]> =>
  (await sql.query<{ version: number }>('SELECT version FROM schema_migrations ORDER BY version')).rows.map(
    (r) => r.version,
  );

describe('migrate (PostgreSQL)', () => {
  const schemas: TestSchema[] = [];
  const dirs: string[] = [];
  const freshSchema = async () => {
    const s = await createTestSchema();
    schemas.push(s);
    return s;
  };
  afterEach(async () => {
    await Promise.all(dirs.splice(0).map((d) => rm(d, { recursive: true, force: true })));
  });
  afterAll(async () => {
    await Promise.all(schemas.map((s) => s.drop()));
  });

  it('applies the package migrations once; a second run is a no-op', async () => {
    const sql = (await freshSchema()).client();
    const all = await loadMigrations();
    expect(all.map((m) => m.version)).toContain(1);

    const first = await migrate(sql);
    expect(first).toStrictEqual(all.map(({ version, name }) => ({ version, name })));
    expect(await tablesOf(sql)).toEqual(
      expect.arrayContaining(['tasks', 'projects', 'approvals', 'processed_events', 'task_transitions',
        'dead_letters', 'cost_observations', 'outbox', 'schema_migrations']),
    );
    expect(await migrate(sql)).toStrictEqual([]);
    expect(await recorded(sql)).toStrictEqual(all.map((m) => m.version));
  });

  it('keeps the audit log append-only', async () => {
    const sql = (await freshSchema()).client();
    await migrate(sql);
    await sql.query(
      `INSERT INTO task_transitions (task_id, project_id, to_status, event, at, by_instance)
       VALUES ('t', 'p', 'PENDING', 'CREATED', '2025-01-01', 'me')`,
    );
    await expect(sql.query(`UPDATE task_transitions SET event = 'X'`)).rejects.toThrow(/append-only/);
    await expect(sql.query(`DELETE FROM task_transitions`)).rejects.toThrow(/append-only/);
  });

  it('serves the dependents lookup from the dependencies index, which holds only tasks with dependencies', async () => {
    const sql = (await freshSchema()).client();
    await migrate(sql);
    const plan = await sql.transaction(async (tx) => {
      await tx.query('SET LOCAL enable_seqscan = off');
      const { rows } = await tx.query<{ 'QUERY PLAN': string }>(
        `EXPLAIN ${LIST_DEPENDENTS_OF.replace('$1::jsonb', `'["t1", "t2"]'::jsonb`)}`,
      );
      return rows.map((r) => r['QUERY PLAN']).join('\n');
    });
    expect(plan).toContain('tasks_dependencies_idx');
    const { rows } = await sql.query<{ predicate: string | null }>(
      `SELECT pg_get_expr(indpred, indrelid) AS predicate FROM pg_index
       WHERE indexrelid = 'tasks_dependencies_idx'::regclass`,
    );
    expect(rows[0]?.predicate).toMatch(/dependencies <> '\[\]'::jsonb/);
  });

  it('finds a notice replay\'s range of audit ids through the BRIN index on id, not by reading the whole audit log', async () => {
    const sql = (await freshSchema()).client();
    await migrate(sql);
    // An audit log of 200 000 rows of three instances (the planner's choice depends on the table's size).
    await sql.query(
      `INSERT INTO task_transitions (task_id, project_id, from_status, to_status, event, at, by_instance)
       SELECT 'task_' || (g / 4), 'prj_' || (g / 400), 'READY', 'RUNNING', 'DISPATCH', '2025-01-01', 'orch-' || (g % 3)
       FROM generate_series(1, 200000) g`,
    );
    await sql.query('ANALYZE task_transitions');
    const plan = await sql.transaction(async (tx) => {
      const text = AUDIT_SINCE.replace('$1::text', `'orch-1'::text`).replaceAll('$2::bigint', '199000::bigint').replaceAll('$4::bigint', 'NULL::bigint').replace('$3::integer', '500');
      const { rows } = await tx.query<{ 'QUERY PLAN': string }>(`EXPLAIN ${text}`);
      return rows.map((r) => r['QUERY PLAN']).join('\n');
    });
    expect(plan, plan).toContain('task_transitions_id_brin');
    const { rows } = await sql.query<{ amname: string }>(
      `SELECT am.amname FROM pg_class c JOIN pg_am am ON am.oid = c.relam WHERE c.oid = 'task_transitions_id_brin'::regclass`,
    );
    expect(rows[0]?.amname, 'a BRIN index: next to nothing per audit row').toBe('brin');
  });

  it('lets two processes migrate a fresh schema at once, applying each migration once', async () => {
    const schema = await freshSchema();
    const a = schema.client({ max: 2 });
    const b = schema.client({ max: 2 });
    const dir = await scratchDir(
      Object.fromEntries(
        Array.from({ length: 6 }, (_, i) => [`00${i + 1}_step.sql`, `CREATE TABLE step_${i + 1} (id int);`]),
      ),
    );
    dirs.push(dir);

    const [ra, rb] = await Promise.all([migrate(a, { dir }), migrate(b, { dir })]);
    const applied = [...ra, ...rb].map((m) => m.version).sort((x, y) => x - y);
    expect(applied).toStrictEqual([1, 2, 3, 4, 5, 6]);
    expect(await recorded(a)).toStrictEqual([1, 2, 3, 4, 5, 6]);

    // The real migrations too, on another fresh schema.
    const other = await freshSchema();
    const [pa, pb] = await Promise.all([migrate(other.client()), migrate(other.client())]);
    expect([...pa, ...pb].map((m) => m.version).sort((x, y) => x - y)).toStrictEqual((await loadMigrations()).map((m) => m.version));
  });

  it('fails when an applied migration changed, before applying anything new', async () => {
    const sql = (await freshSchema()).client();
    const dir = await scratchDir({ '001_first.sql': 'CREATE TABLE first (id int);' });
    dirs.push(dir);
    expect(await migrate(sql, { dir })).toStrictEqual([{ version: 1, name: 'first' }]);

    await writeFile(join(dir, '001_first.sql'), 'CREATE TABLE first (id bigint);');
    await writeFile(join(dir, '002_second.sql'), 'CREATE TABLE second (id int);');
    const err = await migrate(sql, { dir }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(MigrationError);
    expect((err as Error).message).toMatch(/001_first\.sql was changed/);
    expect(await recorded(sql)).toStrictEqual([1]);
    expect(await tablesOf(sql)).not.toContain('second');
  });

  it('rolls back a failing migration and reports it', async () => {
    const sql = (await freshSchema()).client();
    const dir = await scratchDir({
      '001_ok.sql': 'CREATE TABLE ok (id int);',
      '002_bad.sql': 'CREATE TABLE half (id int);\nSELECT * FROM no_such_table;',
    });
    dirs.push(dir);
    const err = await migrate(sql, { dir }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(MigrationError);
    expect((err as Error).message).toMatch(/002_bad\.sql failed/);
    expect(await recorded(sql)).toStrictEqual([1]);
    expect(await tablesOf(sql)).not.toContain('half');
  });

  it('rejects badly named files', async () => {
    const dir = await scratchDir({ 'first.sql': 'SELECT 1;' });
    dirs.push(dir);
    await expect(loadMigrations(dir)).rejects.toBeInstanceOf(MigrationError);
  });
});

describe('migrate (PGlite)', () => {
  let sql: PGliteSqlClient;
  beforeAll(() => {
    sql = new PGliteSqlClient();
  });
  afterAll(async () => {
    await sql.close();
  });

  it('applies the package migrations once; a second run is a no-op', async () => {
    const all = await loadMigrations();
    expect((await migrate(sql)).map((m) => m.version)).toStrictEqual(all.map((m) => m.version));
    expect(await migrate(sql)).toStrictEqual([]);
    expect(await recorded(sql)).toStrictEqual(all.map((m) => m.version));
  });
});
