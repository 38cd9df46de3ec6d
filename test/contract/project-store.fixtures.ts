import type { Commit, EventIngest } from '../../src/ports/commit.js';
import type { NewApproval, NewProject } from '../../src/ports/project-store.js';
import type { OutboxEvent, TaskStore } from '../../src/ports/task-store.js';
import { at, newTask, write } from './task-store.fixtures.js';

export { at, ids, newTask, write } from './task-store.fixtures.js';
export type { StoresHarness } from './stores.fixtures.js';

/** What each group of contract tests gets: the harness, once the suite has set it up. */
export type { StoresRef as ProjectHarnessRef } from './stores.fixtures.js';

export function newProject(projectId = 'prj-1', overrides: Partial<NewProject> = {}): NewProject {
  return { projectId, title: `Film ${projectId}`, budgetLimit: 25.5, checkpoints: null, ...overrides };
}

/** An event's effects; `tasks` empty unless given. */
export function ingest(eventId: string, overrides: Partial<EventIngest> = {}): EventIngest {
  return { eventId, eventType: 'SCRIPT_COMPLETED', projectId: 'prj-1', at: at(10), by: 'orch-a', tasks: [], ...overrides };
}

export function newApproval(approvalId: string, overrides: Partial<NewApproval> = {}): NewApproval {
  return {
    approvalId,
    projectId: 'prj-1',
    checkpoint: 'SCRIPT_COMPLETED',
    eventId: 'ev-checkpoint',
    summary: { scriptId: 's-1', scenes: [1, 2], note: 'é "quoted"' },
    taskIds: [],
    requestedAt: at(10),
    expiresAt: at(3600),
    ...overrides,
  };
}

/** Creates a project the way the orchestrator does: a PROJECT_CREATED event. */
export async function createProject(commit: Commit, projectId = 'prj-1', overrides: Partial<NewProject> = {}): Promise<void> {
  const written = await commit.ingestEvent(
    ingest(`created-${projectId}`, { eventType: 'PROJECT_CREATED', projectId, at: at(0), project: newProject(projectId, overrides) }),
  );
  if (!written.written) throw new Error(`project ${projectId} was not created`);
}

/** Moves a new task PENDING → READY with a reservation (not enforced): reserved += amount. */
export async function reserve(ports: { tasks: TaskStore; commit: Commit }, taskId: string, amount: number, projectId = 'prj-1'): Promise<void> {
  await ports.tasks.createTasks([newTask(taskId, { projectId })], 'orch-a');
  await ports.commit.applyTransition(write(taskId, { to: 'READY', budget: { projectId, reserve: amount, enforce: false } }));
}

/** Leaves an outbox row `eventId`, raised by a transition of a new task `taskId`. */
export async function raiseEvent(ports: { tasks: TaskStore; commit: Commit }, eventId: string, taskId: string): Promise<OutboxEvent> {
  const event: OutboxEvent = { eventId, eventType: 'SCRIPT_COMPLETED', projectId: 'prj-1', taskId, payload: { n: 1 }, at: at(5) };
  await ports.tasks.createTasks([newTask(taskId, { status: 'RUNNING' })], 'orch-a');
  await ports.commit.applyTransition(write(taskId, { from: 'RUNNING', to: 'COMPLETED', raise: [event] }));
  return event;
}
