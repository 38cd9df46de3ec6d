import { isOrchestratorError } from '../errors.js';
import type { TaskStatusMessage } from '../domain/messages.js';
import type { Outbound } from '../ports/event-bus.js';
import type { SendOptions, TaskTransition } from '../actors/task-actor.js';
import type { TaskEvent } from '../machines/task-machine.js';
import type { Core } from '../orchestrator/core.js';

/**
 * Status publishes: every committed task transition is announced on the status subject,
 * after its commit. Never throws: a publish the bus refuses is tried again, bounded, then
 * logged (see publishNotice; the audit log, in PostgreSQL, keeps every transition).
 */
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
export async function publishNotice(core: Pick<Core, 'bus' | 'clock' | 'logger'>, message: Exclude<Outbound, { kind: 'dlq' }>): Promise<boolean> {
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

/** One task event, decided on the row and committed (TaskRegistry.send), then announced. */
export async function sendAndPublish(core: Core, taskId: string, event: TaskEvent, options?: SendOptions): Promise<TaskTransition> {
  const t = await core.registry.send(taskId, event, options);
  await publishTransitions(core, [t]);
  return t;
}
