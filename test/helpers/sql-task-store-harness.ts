import type { SqlClient } from '../../src/adapters/postgres/sql-client.js';
import { PostgresTaskStore } from '../../src/adapters/postgres/task-store.js';
import type { TaskStoreHarness } from '../contract/task-store.fixtures.js';

/** The task store contract's harness over a migrated SQL database (PostgreSQL or PGlite). */
export function sqlTaskStoreHarness(sql: SqlClient, close: () => Promise<void>): TaskStoreHarness {
  return {
    store: new PostgresTaskStore(sql),
    reset: async () => {
      await sql.query('TRUNCATE tasks, task_transitions, projects, outbox, dispatch_outbox RESTART IDENTITY');
    },
    close,
    seedProject: async (p) => {
      await sql.query(
        `INSERT INTO projects (project_id, title, state, budget_limit, spent, reserved, created_at, updated_at)
         VALUES ($1::text, $1::text, $2, $3, $4, $5, '2025-01-01', '2025-01-01')`,
        [p.projectId, p.state ?? 'active', p.budgetLimit, p.spent ?? 0, p.reserved ?? 0],
      );
    },
    readBudget: async (projectId) => {
      const { rows } = await sql.query<{ spent: number; reserved: number }>(
        'SELECT spent, reserved FROM projects WHERE project_id = $1',
        [projectId],
      );
      return rows[0] ?? null;
    },
  };
}
