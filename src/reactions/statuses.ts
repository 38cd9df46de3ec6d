import type { TaskStatusMessage } from '../domain/messages.js';
import type { SendOptions, TaskTransition } from '../actors/task-actor.js';
import type { TaskEvent } from '../machines/task-machine.js';
import type { Core } from '../orchestrator/core.js';

/**
 * Status publishes: every committed task transition is announced on the status subject,
 * after its commit. Never throws: a publish that fails is logged (the audit log, in
 * PostgreSQL, keeps every transition).
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

/** One task event, decided on the row and committed (TaskRegistry.send), then announced. */
export async function sendAndPublish(core: Core, taskId: string, event: TaskEvent, options?: SendOptions): Promise<TaskTransition> {
  const t = await core.registry.send(taskId, event, options);
  await publishTransitions(core, [t]);
  return t;
}
