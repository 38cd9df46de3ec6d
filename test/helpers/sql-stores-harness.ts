import { sqlStores } from '../../src/adapters/blackboards.js';
import { migrate } from '../../src/adapters/postgres/migrate.js';
import { PGliteSqlClient, type SqlClient } from '../../src/adapters/postgres/sql-client.js';
import type { PortName, StorePorts, StoresHarness } from '../contract/stores.fixtures.js';
import { countingSql } from './counting-sql.js';
import { createTestSchema } from './pg-schema.js';

/**
 * The tables each PostgreSQL adapter may write: its aggregate's. Only the commit adapter
 * writes several aggregates' (and nothing that is not an aggregate's of its calls).
 */
export const TABLES_OF: Readonly<Record<PortName, readonly string[]>> = {
  tasks: ['tasks', 'task_transitions', 'outbox', 'dispatch_outbox'],
  projects: ['projects', 'approvals'],
  deadLetters: ['dead_letters'],
  costs: ['cost_observations'],
  notices: ['instances'],
  // Read-only: it may write no table at all.
  stats: [],
  commit: ['tasks', 'task_transitions', 'outbox', 'dispatch_outbox', 'projects', 'approvals', 'processed_events'],
};

const EVERY_TABLE = 'tasks, task_transitions, projects, outbox, dispatch_outbox, approvals, processed_events, dead_letters, cost_observations, instances';

/**
 * A contract harness over migrated SQL clients: the port under test over `underTest` (its
 * round trips counted) and `underTestPeer`, the other ports over `sql` and `peer`.
 */
function harnessOver(
  port: PortName,
  clients: { sql: SqlClient; peer: SqlClient; underTest: SqlClient; underTestPeer: SqlClient },
  separatePools: boolean,
  close: () => Promise<void>,
): StoresHarness {
  const counted = countingSql(clients.underTest);
  const over = (base: SqlClient, own: SqlClient): StorePorts => ({ ...(sqlStores(base) as StorePorts), [port]: sqlStores(own)[port] });
  const { sql } = clients;
  return {
    ...over(sql, counted.sql),
    peer: over(clients.peer, clients.underTestPeer),
    separatePools,
    roundTrips: counted.count,
    reset: async () => {
      await sql.query(`TRUNCATE ${EVERY_TABLE} RESTART IDENTITY`);
    },
    close,
    seedProject: async (p) => {
      await sql.query(
        `INSERT INTO projects (project_id, title, state, budget_limit, spent, reserved, created_at, updated_at)
         VALUES ($1::text, $1::text, $2, $3, $4, $5, '2025-01-01', '2025-01-01')`,
        [p.projectId, p.state ?? 'active', p.budgetLimit, p.spent ?? 0, p.reserved ?? 0],
      );
    },
    dispatchRecords: async () => {
      const { rows } = await sql.query<{ task_id: string; fencing_token: number }>('SELECT task_id, fencing_token FROM dispatch_outbox ORDER BY task_id');
      return rows.map((r) => `${r.task_id}@${r.fencing_token}`);
    },
    readBudget: async (projectId) => {
      const { rows } = await sql.query<{ spent: number; reserved: number }>('SELECT spent, reserved FROM projects WHERE project_id = $1', [projectId]);
      return rows[0] ?? null;
    },
  };
}

/** The harness on PGlite: one in-memory database, one connection (the peer is the same client). */
export async function pgliteStoresHarness(port: PortName): Promise<StoresHarness> {
  const sql = new PGliteSqlClient();
  await migrate(sql);
  return harnessOver(port, { sql, peer: sql, underTest: sql, underTestPeer: sql }, false, () => sql.close());
}

/**
 * The harness on the shared PostgreSQL server, in an own schema, with two pools per side
 * (two "processes"). The port under test connects as a role that may write only its
 * aggregate's tables (TABLES_OF): a write to another table fails the contract with
 * "permission denied".
 */
export async function postgresStoresHarness(port: PortName): Promise<StoresHarness> {
  const schema = await createTestSchema();
  const sql = schema.client({ max: 4 });
  await migrate(sql);
  const writer = await schema.writerRole(TABLES_OF[port]);
  await expectOnlyWrites(sql, writer.role, TABLES_OF[port]);
  const clients = { sql, peer: schema.client({ max: 4 }), underTest: writer.client({ max: 4 }), underTestPeer: writer.client({ max: 4 }) };
  return harnessOver(port, clients, true, () => schema.drop());
}

/** Checks that `role` may write exactly `tables` of its schema (so the restriction is real). */
async function expectOnlyWrites(sql: SqlClient, role: string, tables: readonly string[]): Promise<void> {
  const { rows } = await sql.query<{ table_name: string; writable: boolean }>(
    `SELECT table_name::text,
            has_table_privilege($1::text, quote_ident(table_schema) || '.' || quote_ident(table_name), 'INSERT, UPDATE, DELETE') AS writable
     FROM information_schema.tables WHERE table_schema = current_schema() AND table_type = 'BASE TABLE'`,
    [role],
  );
  const writable = rows.filter((r) => r.writable).map((r) => r.table_name).sort();
  if (JSON.stringify(writable) !== JSON.stringify([...tables].sort())) {
    throw new Error(`role ${role} may write ${writable.join(', ')}, expected ${[...tables].sort().join(', ')}`);
  }
}
