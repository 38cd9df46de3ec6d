import type { TransitionWrite } from '../../src/ports/commit.js';
import type { NewTaskRecord } from '../../src/ports/task-store.js';
import type { StoresRef } from './stores.fixtures.js';

export type { SeedProject, StoresHarness } from './stores.fixtures.js';

/** What each group of contract tests gets: the harness, once the suite has set it up. */
export type HarnessRef = StoresRef;

const T0 = Date.parse('2025-03-04T05:06:07.089Z');
export const at = (seconds: number): Date => new Date(T0 + seconds * 1000);

export function newTask(taskId: string, overrides: Partial<NewTaskRecord> = {}): NewTaskRecord {
  return {
    taskId,
    projectId: 'prj-1',
    taskType: 'WRITE_SCRIPT',
    assignedTo: 'script_writer',
    status: 'PENDING',
    priority: 500,
    input: { brief: 'a short film' },
    output: null,
    dependencies: [],
    estimatedCost: 0.15,
    actualCost: null,
    createdAt: at(0),
    startedAt: null,
    completedAt: null,
    attempts: 0,
    maxAttempts: 3,
    lastError: null,
    deadline: null,
    notBefore: null,
    fencingToken: null,
    timeoutMs: 600_000,
    snapshot: { value: 'pending', context: { taskId } },
    machineVersion: '1',
    ...overrides,
  };
}

/** A transition from PENDING at version 1, unless overridden. */
export function write(taskId: string, w: Partial<TransitionWrite> & Pick<TransitionWrite, 'to'>): TransitionWrite {
  return {
    taskId,
    expectedVersion: 1,
    from: 'PENDING',
    event: 'TEST',
    patch: { status: w.to },
    snapshot: { value: w.to.toLowerCase() },
    machineVersion: '1',
    by: 'orch-a',
    at: at(60),
    ...w,
  };
}

/** Zero-padded lower-case ids: they sort the same under every collation. */
export const ids = (n: number, prefix: string): string[] =>
  Array.from({ length: n }, (_, i) => `${prefix}${String(i).padStart(4, '0')}`);
