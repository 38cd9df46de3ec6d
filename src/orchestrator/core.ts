import type { Logger } from 'pino';
import type { InspectionEvent, Observer } from 'xstate';
import type { OrchestratorConfig } from '../config/config.js';
import { isOrchestratorError } from '../errors.js';
import type { TaskStatusMessage } from '../domain/messages.js';
import type { TaskTypeCatalog } from '../domain/task-types.js';
import type { Clock } from '../ports/clock.js';
import type { EventBus, Outbound } from '../ports/event-bus.js';
import type { LockManager } from '../ports/lock-manager.js';
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
 * Publishes status messages (see publishNotice); never throws. Every message is handed to
 * the bus before the first await, so the NATS client writes them to its socket together
 * (it flushes once per microtask turn, not once per message).
 */
export async function publishStatuses(core: Core, bodies: readonly TaskStatusMessage[]): Promise<void> {
  await Promise.all(bodies.map((body) => publishNotice(core, { kind: 'status', body })));
}

/** Tries of a notification the bus refuses retryably (100 ms, then 200 ms apart) before it is dropped. */
export const NOTICE_TRIES = 3;

/**
 * Publishes a notification (a task status, a budget status). Notifications are at most
 * once on the wire (NATS core publishes); the durable record is the store's — the audit
 * log (`task_transitions`) for statuses, the project row for budgets. A refusal of the bus
 * is not dropped silently: a retryable one is tried again, up to NOTICE_TRIES times with
 * back-off, and a notification still refused is logged as an error. Never throws; true
 * when the bus took it.
 */
export async function publishNotice(core: Core, message: Exclude<Outbound, { kind: 'dlq' }>): Promise<boolean> {
  for (let tries = 1; ; tries++) {
    try {
      await core.bus.publish(message);
      return true;
    } catch (err) {
      if (tries >= NOTICE_TRIES || (isOrchestratorError(err) && !err.retryable)) {
        const taskId = message.kind === 'status' ? message.body.taskId : undefined;
        core.logger.error({ err, kind: message.kind, projectId: message.body.projectId, taskId, tries }, 'notification not published; dropped');
        return false;
      }
      await new Promise<void>((resolve) => core.clock.setTimeout(resolve, 100 * 2 ** (tries - 1)));
    }
  }
}

/** Exponential back-off with full jitter: base * 2^(attempt-1), jittered within [50%, 100%]. */
export function backoffMs(baseMs: number, attempt: number, random: () => number = Math.random): number {
  const ceiling = baseMs * 2 ** Math.max(0, attempt - 1);
  return Math.round(ceiling / 2 + (random() * ceiling) / 2);
}
