import type { TaskStatusMessage } from '../domain/messages.js';
import type { SendOptions, TaskTransition } from '../actors/task-actor.js';
import type { TaskEvent } from '../machines/task-machine.js';
import type { Core } from '../orchestrator/core.js';

/**
 * Status publishes: every committed task transition is announced on the status subject
 * (`<prefix>.status.<projectId>.<taskId>`), after its commit, at least once. The durable
 * record is the audit log (`task_transitions`): a status the bus refuses stays pending and
 * is retried until the bus takes it, and what this instance could not announce before it
 * died is announced from the audit log by another instance (see NoticeTracker in
 * notices.ts). A consumer may therefore see a status twice: (taskId, to, attempt, at)
 * identifies it. Never throws.
 */
export function publishTransitions(core: Pick<Core, 'notices'>, ts: readonly TaskTransition[]): Promise<void> {
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
 * Publishes status messages, at least once (see publishTransitions); never throws. Every
 * message is handed to the bus before the first await, so the NATS client writes them to
 * its socket together (it flushes once per microtask turn, not once per message).
 */
export function publishStatuses(core: Pick<Core, 'notices'>, bodies: readonly TaskStatusMessage[]): Promise<void> {
  return core.notices.publishStatuses(bodies);
}

/** One task event, decided on the row and committed (TaskRegistry.send), then announced. */
export async function sendAndPublish(core: Core, taskId: string, event: TaskEvent, options?: SendOptions): Promise<TaskTransition> {
  const t = await core.registry.send(taskId, event, options);
  await publishTransitions(core, [t]);
  return t;
}
