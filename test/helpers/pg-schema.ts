import { randomBytes } from 'node:crypto';
import { PgSqlClient } from '../../src/adapters/postgres/sql-client.js';

/** The shared test server (trust auth). Override with TEST_DATABASE_URL. */
export const TEST_DATABASE_URL = process.env.TEST_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test';

const OWN_SCHEMA = /^t_[a-z0-9]{12}$/;

export interface TestSchema {
  name: string;
  /** A client working in this schema (its own pool); closed by `drop`. */
  client(options?: { max?: number }): PgSqlClient;
  /** Closes the clients and drops this schema (and nothing else). */
  drop(): Promise<void>;
}

/**
 * A fresh schema `t_<random>` on the shared server. Each test file makes its own and
 * drops it at the end, so files can run side by side.
 */
export async function createTestSchema(): Promise<TestSchema> {
  const name = `t_${randomBytes(6).toString('hex')}`;
  const admin = new PgSqlClient({ connectionString: TEST_DATABASE_URL, max: 1 });
  await admin.query(`CREATE SCHEMA ${name}`);
  const clients: PgSqlClient[] = [];
  return {
    name,
    client(options = {}) {
      const c = new PgSqlClient({ connectionString: TEST_DATABASE_URL, schema: name, max: options.max ?? 4 });
      clients.push(c);
      return c;
    },
    async drop() {
      await Promise.all(clients.map((c) => c.close()));
      try {
        if (OWN_SCHEMA.test(name)) await admin.query(`DROP SCHEMA IF EXISTS ${name} CASCADE`);
      } finally {
        await admin.close();
      }
    },
  };
}
