import type { Commit } from './commit.js';
import type { CostStatsStore } from './cost-stats-store.js';
import type { DeadLetterStore } from './dead-letter-store.js';
import type { HealthCheck } from './health.js';
import type { LockManager } from './lock-manager.js';
import type { NoticeLedger } from './notice-ledger.js';
import type { OperatorStats } from './operator-stats.js';
import type { ProjectStore } from './project-store.js';
import type { TaskQueue } from './task-queue.js';
import type { TaskStore } from './task-store.js';

/**
 * The blackboard: the project and task state (PostgreSQL or the embedded PGlite store),
 * one port per aggregate plus the one port that writes several together (`commit`), and
 * what Redis holds (the ready queue and the leases), or their in-memory twins.
 * Built by `adapters/blackboards.ts`, handed to `OrchestratorFactory.create`.
 */
export interface Blackboard {
  tasks: TaskStore;
  projects: ProjectStore;
  /** Task transitions with their budget effects and raised events; event ingests. */
  commit: Commit;
  deadLetters: DeadLetterStore;
  costs: CostStatsStore;
  /** The instances' notice watermarks into the audit log (status and budget notices are at least once). */
  notices: NoticeLedger;
  queue: TaskQueue;
  locks: LockManager;
  /** The stored state in figures, for the operator's metrics (read on a scrape). */
  stats?: OperatorStats;
  /** Readiness of what the blackboard runs on (PostgreSQL and its migrations, Redis): see `/readyz`. */
  checks?: readonly HealthCheck[];
  close(): Promise<void>;
}
