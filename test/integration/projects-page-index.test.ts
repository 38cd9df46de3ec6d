import { afterAll, describe, expect, it } from 'vitest';
import { migrate } from '../../src/adapters/postgres/migrate.js';
import { createTestSchema, type TestSchema } from '../helpers/pg-schema.js';

let schema: TestSchema | undefined;
afterAll(async () => {
  await schema?.drop();
});

describe('the projects query pages newest first on an index (migration 009)', () => {
  it('ORDER BY created_at DESC, project_id DESC with the keyset cursor is read from projects_created_at_idx, not sorted', async () => {
    schema = await createTestSchema();
    const sql = schema.client({ max: 1 });
    await migrate(sql);
    // One connection: the planner settings hold for the EXPLAIN (an empty table would be scanned and sorted otherwise).
    await sql.query('SET enable_seqscan = off');
    await sql.query('SET enable_bitmapscan = off');
    const { rows } = await sql.query<{ 'QUERY PLAN': string }>(
      `EXPLAIN SELECT project_id FROM projects
        WHERE (created_at, project_id) < ('2026-12-03T00:00:00'::timestamp, 'prj_x')
        ORDER BY created_at DESC, project_id DESC LIMIT 50`,
    );
    const plan = rows.map((r) => r['QUERY PLAN']).join('\n');
    expect(plan).toMatch(/Index (Only )?Scan using projects_created_at_idx/);
    expect(plan).not.toMatch(/\bSort\b/);
  });
});
