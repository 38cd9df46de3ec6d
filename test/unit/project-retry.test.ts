import { describe, expect, it } from 'vitest';
import { copyIdOf, planRetry } from '../../src/retries/project-retry.js';
import type { TaskRecord } from '../../src/ports/task-store.js';
import type { TaskStatus } from '../../src/domain/task.js';

const at = new Date('2026-12-03T00:00:00Z');

function task(taskId: string, status: TaskStatus, dependencies: string[] = [], attempts = status === 'FAILED' ? 3 : 1): TaskRecord {
  return {
    taskId,
    projectId: 'p',
    taskType: 'GENERATE_KEYFRAME',
    assignedTo: 'image_generator',
    status,
    priority: 10,
    input: { shotIndex: 0, of: taskId },
    output: null,
    dependencies,
    estimatedCost: 0.08,
    actualCost: null,
    createdAt: at,
    startedAt: null,
    completedAt: null,
    attempts,
    maxAttempts: 3,
    lastError: status === 'FAILED' ? 'boom' : null,
    deadline: null,
    notBefore: null,
    fencingToken: null,
    timeoutMs: 60_000,
    snapshot: null,
    machineVersion: '1',
    version: 1,
    updatedAt: at,
  };
}

describe('planRetry: what a retry of a failed project plans', () => {
  it('copies a task that failed for good and its cancelled dependents, rewiring their dependencies to the copies', () => {
    // a (done) → f (failed for good) → q (cancelled) → join (cancelled) ← g (done)
    const tasks = [task('a', 'COMPLETED'), task('f', 'FAILED', ['a']), task('q', 'CANCELLED', ['f']), task('g', 'COMPLETED'), task('join', 'CANCELLED', ['q', 'g'])];
    const plan = planRetry('p', tasks);
    expect(plan.failed).toEqual(['f']);
    const byOriginal = new Map(plan.tasks.map((t) => [t.input.of, t]));
    expect([...byOriginal.keys()]).toEqual(['f', 'q', 'join']);
    expect(byOriginal.get('f')).toMatchObject({ taskId: copyIdOf('f'), dependencies: ['a'], maxAttempts: 3, taskType: 'GENERATE_KEYFRAME' });
    expect(byOriginal.get('q')!.dependencies).toEqual([copyIdOf('f')]);
    expect(byOriginal.get('join')!.dependencies).toEqual([copyIdOf('q'), 'g']);
  });

  it('a dependent shared by two failed tasks is copied once, depending on both copies', () => {
    const tasks = [task('f1', 'FAILED'), task('f2', 'FAILED'), task('join', 'CANCELLED', ['f1', 'f2'])];
    const plan = planRetry('p', tasks);
    expect(plan.failed).toEqual(['f1', 'f2']);
    expect(plan.tasks.map((t) => t.input.of)).toEqual(['f1', 'join', 'f2']);
    expect(plan.tasks.find((t) => t.input.of === 'join')!.dependencies).toEqual([copyIdOf('f1'), copyIdOf('f2')]);
  });

  it('a task with attempts left, or one already copied, is not planned again; the same plan has the same event id', () => {
    const first = [task('f', 'FAILED'), task('q', 'CANCELLED', ['f']), task('r', 'FAILED', [], 1)];
    const plan = planRetry('p', first);
    expect(plan.failed).toEqual(['f']);
    expect(planRetry('p', [...first]).eventId).toBe(plan.eventId);
    // Once copied, nothing is left to plan; a copy that failed for good in turn is planned, with a new event id.
    const copied = [...first, task(copyIdOf('f'), 'COMPLETED'), task(copyIdOf('q'), 'COMPLETED', [copyIdOf('f')])];
    expect(planRetry('p', copied).tasks).toEqual([]);
    const copyFailed = [...first, task(copyIdOf('f'), 'FAILED'), task(copyIdOf('q'), 'CANCELLED', [copyIdOf('f')])];
    const second = planRetry('p', copyFailed);
    expect(second.failed).toEqual([copyIdOf('f')]);
    expect(second.tasks.map((t) => t.taskId)).toEqual([copyIdOf(copyIdOf('f')), copyIdOf(copyIdOf('q'))]);
    expect(second.eventId).not.toBe(plan.eventId);
  });

  it('copy ids are valid task ids (no dots: they are NATS subject tokens)', () => {
    expect(copyIdOf('tsk_abc')).toMatch(/^tsk_[0-9a-f]{32}$/);
  });
});
