import type { TaskStatus } from '../domain/task.js';

/** The stored state in figures, across every instance (what an operator graphs). */
export interface StoredCounts {
  /** Tasks by status (every status present, 0 when none). */
  tasksByStatus: Record<TaskStatus, number>;
  /** Approval requests pending a decision. */
  approvalsPending: number;
  /** Budget spent and reserved, summed over every project. */
  budgetSpent: number;
  budgetReserved: number;
  /** Raised events not yet handled (the outbox). */
  outboxBacklog: number;
  /** Dispatches written RUNNING whose publish the bus has not confirmed (the dispatch outbox). */
  dispatchBacklog: number;
}

/** Reads the figures of the stored state in one statement (on a metrics scrape, never on the hot path). */
export interface OperatorStats {
  read(): Promise<StoredCounts>;
}
