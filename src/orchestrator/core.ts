import type { Logger } from 'pino';
import type { InspectionEvent, Observer } from 'xstate';
import type { OrchestratorConfig } from '../config/config.js';
import type { TaskStatusMessage } from '../domain/messages.js';
import type { TaskTypeCatalog } from '../domain/task-types.js';
import type { Clock } from '../ports/clock.js';
import type { EventBus } from '../ports/event-bus.js';
import type { LockManager } from '../ports/lock-manager.js';
import type { Commit } from '../ports/commit.js';
import type { CostStatsStore } from '../ports/cost-stats-store.js';
import type { DeadLetterStore } from '../ports/dead-letter-store.js';
import type { ProjectStore } from '../ports/project-store.js';
import type { TaskQueue } from '../ports/task-queue.js';
import type { TaskStore } from '../ports/task-store.js';
import type { TaskRegistry } from '../actors/task-registry.js';
import type { ProjectActors } from '../actors/project-actors.js';
import type { TaskTransition } from '../actors/task-actor.js';
import type { EventMapper } from '../pipeline/event-mapper.js';

/** What every part of the orchestrator shares: the parsed config, the ports, the registry. */
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
  registry: TaskRegistry;
  /** Live project actors, each supervising its project's live task actors. */
  projectActors: ProjectActors;
  mapper: EventMapper;
  catalog: TaskTypeCatalog;
  /** Opt-in inspection of the actors (a Stately inspector); absent on the hot path. */
  inspect?: Observer<InspectionEvent> | ((event: InspectionEvent) => void);
}

export const BUDGET_EXHAUSTED = 'budget_exhausted';

/**
 * Whether a project's tasks may become READY: while it is active, and once it has
 * completed — its remaining tasks (an extra task, a retry under way) finish on their own.
 * Paused and cancelled projects start nothing new.
 */
export function acceptsWork(state: string | undefined): boolean {
  return state === 'active' || state === 'completed';
}

/** Publishes a durable transition on the status subject; never throws. */
export function publishTransition(core: Core, t: TaskTransition): Promise<void> {
  return publishTransitions(core, [t]);
}

/** Publishes durable transitions on the status subject; never throws. */
export function publishTransitions(core: Core, ts: readonly TaskTransition[]): Promise<void> {
  return publishStatuses(
    core,
    ts.map((t) => ({
      taskId: t.taskId,
      projectId: t.projectId,
      taskType: t.taskType,
      from: t.from,
      to: t.to,
      at: new Date(t.at).toISOString(),
      attempt: t.attempt,
    })),
  );
}

/**
 * Publishes status messages; never throws. Every message is handed to the bus before the
 * first await, so the NATS client writes them to its socket together (it flushes once per
 * microtask turn, not once per message).
 */
export async function publishStatuses(core: Core, bodies: readonly TaskStatusMessage[]): Promise<void> {
  await Promise.all(
    bodies.map((body) =>
      core.bus
        .publish({ kind: 'status', body })
        .catch((err: unknown) => core.logger.warn({ err, taskId: body.taskId }, 'could not publish a task status')),
    ),
  );
}

/** Exponential back-off with full jitter: base * 2^(attempt-1), jittered within [50%, 100%]. */
export function backoffMs(baseMs: number, attempt: number, random: () => number = Math.random): number {
  const ceiling = baseMs * 2 ** Math.max(0, attempt - 1);
  return Math.round(ceiling / 2 + (random() * ceiling) / 2);
}
