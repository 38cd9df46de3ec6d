import type { Logger } from 'pino';
import type { OrchestratorConfig } from '../config/config.js';
import type { TaskTypeCatalog } from '../domain/task-types.js';
import type { Clock } from '../ports/clock.js';
import type { EventBus } from '../ports/event-bus.js';
import type { LockManager } from '../ports/lock-manager.js';
import type { Metrics } from '../ports/metrics.js';
import type { Commit } from '../ports/commit.js';
import type { CostStatsStore } from '../ports/cost-stats-store.js';
import type { DeadLetterStore } from '../ports/dead-letter-store.js';
import type { ProjectStore } from '../ports/project-store.js';
import type { TaskQueue } from '../ports/task-queue.js';
import type { TaskStore } from '../ports/task-store.js';
import type { TaskRegistry } from '../actors/task-registry.js';
import type { ProjectActors } from '../actors/project-actors.js';
import type { ActorSystem } from '../actors/system.js';
import type { EventMapper } from '../pipeline/event-mapper.js';
import type { NoticeTracker } from '../reactions/notices.js';

/**
 * The context every use case is built with: the parsed config, the clock and logger, the
 * ports, the task registry and the project actors. Only data and ports: the behaviour
 * lives in the use-case folders (ingest, dispatch, results, approvals, retries, control).
 */
export interface Core {
  config: OrchestratorConfig;
  clock: Clock;
  logger: Logger;
  instanceId: string;
  tasks: TaskStore;
  projects: ProjectStore;
  /** The one way to write several aggregates together: transitions with their budget effects, event ingests. */
  commit: Commit;
  deadLetters: DeadLetterStore;
  costs: CostStatsStore;
  queue: TaskQueue;
  locks: LockManager;
  bus: EventBus;
  /** Status and budget notices, at least once: the watermark into the audit log, the retries, the replays. */
  notices: NoticeTracker;
  registry: TaskRegistry;
  /** Live project actors, each supervising its project's live task actors. */
  projectActors: ProjectActors;
  mapper: EventMapper;
  catalog: TaskTypeCatalog;
  /** The one actor system: the root, the scheduler and project actors, activated task actors (and the inspection). */
  system: ActorSystem;
  /** What is reported for the operator's metrics as it happens (noMetrics by default). */
  metrics: Metrics;
}
