import { describe, expect, it } from 'vitest';
import { lineageOf } from '../../src/console/lineage.js';
import { budgetHistoryOf, timelineOf } from '../../src/console/review-console.js';
import { Pipeline } from '../../src/domain/pipeline.js';
import type { BudgetStatus } from '../../src/domain/messages.js';
import type { TaskStatus } from '../../src/domain/task.js';
import { VIDEO_PIPELINE } from '../../src/pipeline/video-pipeline.js';
import type { ApprovalRecord } from '../../src/ports/project-store.js';
import type { TaskRecord } from '../../src/ports/task-store.js';

/** The console's reading of a project's rows: which task's event made which, the stages, the budget over time. */

const pipeline = Pipeline.parse(VIDEO_PIPELINE);
const t0 = Date.parse('2026-12-01T10:00:00Z');
const at = (s: number) => new Date(t0 + s * 1000);

function task(taskId: string, taskType: string, created: number, extra: Partial<TaskRecord> = {}): TaskRecord {
  return {
    taskId,
    projectId: 'p1',
    taskType,
    assignedTo: 'agent',
    status: 'COMPLETED' as TaskStatus,
    priority: 500,
    input: {},
    output: {},
    dependencies: [],
    estimatedCost: 1,
    actualCost: 1,
    createdAt: at(created),
    startedAt: at(created + 1),
    completedAt: at(created + 2),
    attempts: 1,
    maxAttempts: 3,
    lastError: null,
    deadline: null,
    notBefore: null,
    fencingToken: 1,
    timeoutMs: 1000,
    snapshot: null,
    machineVersion: '1',
    version: 3,
    updatedAt: at(created + 2),
    ...extra,
  };
}

function approval(approvalId: string, checkpoint: string, raisedBy: string, taskIds: string[], requested: number, decided: { status: 'approved' | 'rejected' | 'pending'; at?: number }): ApprovalRecord {
  return {
    approvalId,
    projectId: 'p1',
    checkpoint,
    status: decided.status,
    eventId: `${raisedBy}:${checkpoint}`,
    summary: {},
    taskIds,
    comment: null,
    decidedBy: decided.status === 'pending' ? null : 'ann',
    requestedAt: at(requested),
    expiresAt: null,
    decidedAt: decided.at === undefined ? null : at(decided.at),
  };
}

describe('lineageOf', () => {
  const tasks = [
    task('w', 'WRITE_SCRIPT', 0),
    task('r', 'REVISE_SCRIPT', 10),
    task('plan', 'PLAN_SHOTS', 5, { status: 'CANCELLED', startedAt: null, completedAt: null }),
    task('plan2', 'PLAN_SHOTS', 15),
    task('k0', 'GENERATE_KEYFRAME', 20, { input: { shotIndex: 0 } }),
    task('q0', 'RUN_VISUAL_QA', 20, { input: { shotIndex: 0 }, dependencies: ['k0'], output: { passed: false } }),
    task('e0', 'EDIT_IMAGE', 30, { input: { shotIndex: 0, issues: ['fingers'] } }),
    task('q0b', 'RUN_VISUAL_QA', 30, { input: { shotIndex: 0 }, dependencies: ['e0'] }),
  ];
  const approvals = [
    approval('a1', 'SCENE_WRITTEN', 'w', ['plan'], 3, { status: 'rejected', at: 8 }),
    approval('a2', 'SCENE_WRITTEN', 'r', ['plan2'], 13, { status: 'approved', at: 14 }),
    approval('a3', 'SHOT_PLANNED', 'plan2', ['k0', 'q0'], 18, { status: 'approved', at: 19 }),
  ];
  const lineage = lineageOf(tasks, approvals, pipeline);

  it("links a checkpoint's follow-ups to the task that raised it, only those that wait for none of them", () => {
    expect(lineage.get('plan')?.triggers).toEqual(['w']);
    expect(lineage.get('plan2')?.triggers).toEqual(['r']);
    expect(lineage.get('k0')?.triggers).toEqual(['plan2']);
    expect(lineage.get('q0')?.triggers).toEqual([]);
  });

  it("links a rejection's revision to the rejected task, as a revision", () => {
    expect(lineage.get('r')).toEqual({ triggers: ['w'], origin: 'revision' });
  });

  it("links a failed QA's repair to that QA, as repairs", () => {
    expect(lineage.get('e0')).toEqual({ triggers: ['q0'], origin: 'repair' });
    expect(lineage.get('q0b')).toEqual({ triggers: [], origin: 'repair' });
    // The first QA came with the shot plan: work, not a repair.
    expect(lineage.get('q0')?.origin).toBeUndefined();
  });
});

describe('timelineOf and budgetHistoryOf', () => {
  const budget = (spent: number, reserved: number, total: number): BudgetStatus =>
    ({ projectId: 'p1', limit: 10, spent, reserved, remaining: 10 - spent - reserved, ratio: (spent + reserved) / 10, level: 'ok', forecast: { remainingCost: total - spent - reserved, total, exceedsBudget: false } }) as BudgetStatus;

  it('spans each task type from its first start to its last end, open while one has not ended', () => {
    const stages = timelineOf([task('a', 'WRITE_SCRIPT', 0), task('b', 'GENERATE_KEYFRAME', 5), task('c', 'GENERATE_KEYFRAME', 6, { status: 'RUNNING', completedAt: null })]);
    expect(stages.map((s) => s.taskType)).toEqual(['WRITE_SCRIPT', 'GENERATE_KEYFRAME']);
    expect(stages[0]).toMatchObject({ tasks: 1, startedAt: at(1).toISOString(), endedAt: at(2).toISOString() });
    expect(stages[1]).toMatchObject({ tasks: 2, startedAt: at(6).toISOString(), endedAt: null, statuses: { COMPLETED: 1, RUNNING: 1 } });
  });

  it('reserves an estimate from a start to the end, spends the actual cost then, and ends on the budget now', () => {
    const points = budgetHistoryOf([task('a', 'WRITE_SCRIPT', 0, { estimatedCost: 2, actualCost: 1.5 }), task('b', 'PLAN_SHOTS', 10, { estimatedCost: 1, status: 'PENDING', startedAt: null, completedAt: null })], budget(1.5, 0, 2.5));
    expect(points[0]).toEqual({ at: at(0).toISOString(), spent: 0, reserved: 0, forecast: 2 });
    expect(points[1]).toEqual({ at: at(1).toISOString(), spent: 0, reserved: 2, forecast: 2 });
    expect(points[2]).toEqual({ at: at(2).toISOString(), spent: 1.5, reserved: 0, forecast: 1.5 });
    expect(points[3]).toEqual({ at: at(10).toISOString(), spent: 1.5, reserved: 0, forecast: 2.5 });
    expect(points.at(-1)).toMatchObject({ spent: 1.5, reserved: 0, forecast: 2.5 });
  });
});
