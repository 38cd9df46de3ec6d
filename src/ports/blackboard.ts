import type { LockManager } from './lock-manager.js';
import type { ProjectStore } from './project-store.js';
import type { TaskQueue } from './task-queue.js';
import type { TaskStore } from './task-store.js';

/**
 * The blackboard: the project and task state (PostgreSQL or the embedded PGlite store)
 * and what Redis holds (the ready queue and the leases), or their in-memory twins.
 * Built by `adapters/blackboards.ts`, handed to `OrchestratorFactory.create`.
 */
export interface Blackboard {
  tasks: TaskStore;
  projects: ProjectStore;
  queue: TaskQueue;
  locks: LockManager;
  close(): Promise<void>;
}
