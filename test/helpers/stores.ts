import { PGliteSqlClient, type SqlClient } from '../../src/adapters/postgres/sql-client.js';
import { migrate } from '../../src/adapters/postgres/migrate.js';
import { createTestSchema, TEST_DATABASE_URL } from './pg-schema.js';

export { TEST_DATABASE_URL };

export interface TestDatabase {
  sql: SqlClient;
  /** The schema on the shared server; null for PGlite. */
  schema: string | null;
  close(): Promise<void>;
}

/** An in-memory PGlite database with the migrations applied. */
export async function pgliteDatabase(): Promise<TestDatabase> {
  const sql = new PGliteSqlClient();
  await migrate(sql);
  return { sql, schema: null, close: () => sql.close() };
}

/** A fresh schema on the shared PostgreSQL server with the migrations applied; dropped (and only it) on close. */
export async function postgresDatabase(max = 10): Promise<TestDatabase> {
  const schema = await createTestSchema();
  const sql = schema.client({ max });
  await migrate(sql);
  return { sql, schema: schema.name, close: () => schema.drop() };
}
