import { TASK_STATUSES, type TaskStatus } from '../../domain/task.js';
import type { OperatorStats, StoredCounts } from '../../ports/operator-stats.js';
import type { SqlClient } from './sql-client.js';

/**
 * The stored state in figures, in one read-only statement (a metrics scrape): tasks by
 * status, pending approvals, the budget amounts summed over every project, the outbox and
 * dispatch outbox backlogs. It reads several aggregates' tables and writes none.
 */
const STATS = `
  SELECT 'task' AS kind, status AS key, count(*)::bigint AS n FROM tasks GROUP BY status
  UNION ALL SELECT 'approvals', NULL, count(*)::bigint FROM approvals WHERE status = 'pending'
  UNION ALL SELECT 'spent', NULL, coalesce(sum(spent), 0) FROM projects
  UNION ALL SELECT 'reserved', NULL, coalesce(sum(reserved), 0) FROM projects
  UNION ALL SELECT 'outbox', NULL, count(*)::bigint FROM outbox
  UNION ALL SELECT 'dispatch_outbox', NULL, count(*)::bigint FROM dispatch_outbox`;

export class PostgresOperatorStats implements OperatorStats {
  constructor(private readonly sql: SqlClient) {}

  async read(): Promise<StoredCounts> {
    const { rows } = await this.sql.query<{ kind: string; key: string | null; n: number | string }>(STATS);
    const tasksByStatus = Object.fromEntries(TASK_STATUSES.map((s) => [s, 0])) as Record<TaskStatus, number>;
    const counts: StoredCounts = { tasksByStatus, approvalsPending: 0, budgetSpent: 0, budgetReserved: 0, outboxBacklog: 0, dispatchBacklog: 0 };
    for (const r of rows) {
      const n = Number(r.n);
      switch (r.kind) {
        case 'task':
          if (r.key !== null && r.key in tasksByStatus) tasksByStatus[r.key as TaskStatus] = n;
          break;
        case 'approvals':
          counts.approvalsPending = n;
          break;
        case 'spent':
          counts.budgetSpent = n;
          break;
        case 'reserved':
          counts.budgetReserved = n;
          break;
        case 'outbox':
          counts.outboxBacklog = n;
          break;
        case 'dispatch_outbox':
          counts.dispatchBacklog = n;
          break;
      }
    }
    return counts;
  }
}
