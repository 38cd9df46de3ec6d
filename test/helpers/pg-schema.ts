import { randomBytes } from 'node:crypto';
import { PgSqlClient } from '../../src/adapters/postgres/sql-client.js';

/** The shared test server (trust auth). Override with TEST_DATABASE_URL. */
export const TEST_DATABASE_URL = process.env.TEST_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test';

const OWN_SCHEMA = /^t_[a-z0-9]{12}$/;

export interface TestSchema {
  name: string;
  /** A client working in this schema (its own pool); closed by `drop`. */
  client(options?: { max?: number }): PgSqlClient;
  /**
   * A login role of this schema that may read every table of it but write (insert, update,
   * delete) only `tables`, and a way to open clients as it (own pools, closed by `drop`).
   * Run after the migrations: it is granted on the tables that exist then. Dropped by `drop`.
   */
  writerRole(tables: readonly string[]): Promise<{ role: string; client(options?: { max?: number }): PgSqlClient }>;
  /** Closes the clients and drops this schema and its roles (and nothing else). */
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
  const roles: string[] = [];
  const open = (connectionString: string, max = 4): PgSqlClient => {
    const c = new PgSqlClient({ connectionString, schema: name, max });
    clients.push(c);
    return c;
  };
  return {
    name,
    client(options = {}) {
      return open(TEST_DATABASE_URL, options.max);
    },
    async writerRole(tables) {
      const role = `${name}_w${roles.length}`;
      await admin.query(`CREATE ROLE ${role} LOGIN`);
      roles.push(role);
      await admin.query(`GRANT USAGE ON SCHEMA ${name} TO ${role}`);
      await admin.query(`GRANT SELECT ON ALL TABLES IN SCHEMA ${name} TO ${role}`);
      await admin.query(`GRANT USAGE ON ALL SEQUENCES IN SCHEMA ${name} TO ${role}`);
      if (tables.length) await admin.query(`GRANT INSERT, UPDATE, DELETE ON ${tables.map((t) => `${name}.${t}`).join(', ')} TO ${role}`);
      const url = new URL(TEST_DATABASE_URL);
      url.username = role;
      url.password = '';
      return { role, client: (options = {}) => open(url.toString(), options.max) };
    },
    async drop() {
      await Promise.all(clients.map((c) => c.close()));
      try {
        if (OWN_SCHEMA.test(name)) await admin.query(`DROP SCHEMA IF EXISTS ${name} CASCADE`);
        for (const role of roles) await admin.query(`DROP ROLE IF EXISTS ${role}`);
      } finally {
        await admin.close();
      }
    },
  };
}
