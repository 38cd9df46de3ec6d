import { PostgresProjectStore } from '../../src/adapters/postgres/project-store.js';
import type { SqlClient } from '../../src/adapters/postgres/sql-client.js';
import { PostgresTaskStore } from '../../src/adapters/postgres/task-store.js';
import type { ProjectStoreHarness } from '../contract/project-store.contract.js';

/**
 * The project store contract's harness over a migrated SQL database. `peer` is a second
 * client on the same database (its own pool on a real server), or `sql` again (PGlite).
 */
export function sqlProjectStoreHarness(sql: SqlClient, peer: SqlClient, close: () => Promise<void>): ProjectStoreHarness {
  return {
    store: new PostgresProjectStore(sql),
    tasks: new PostgresTaskStore(sql),
    peer: { store: new PostgresProjectStore(peer), tasks: new PostgresTaskStore(peer) },
    separatePools: peer !== sql,
    reset: async () => {
      await sql.query(
        `TRUNCATE tasks, task_transitions, projects, outbox, dispatch_outbox, approvals, processed_events, dead_letters,
           cost_observations RESTART IDENTITY`,
      );
    },
    close,
  };
}
