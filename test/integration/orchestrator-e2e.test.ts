import { describe, expect, it } from 'vitest';
import { roundMoney } from '../../src/domain/task-types.js';
import type { TaskRecord } from '../../src/ports/task-store.js';
import { embedded, servers } from '../helpers/blackboards.js';
import { startHarness } from '../helpers/pipeline-harness.js';

/** A whole 3-shot video project, PROJECT_CREATED to completion, with approvals given. */
for (const kind of [embedded, servers]) {
  describe(`a video project end to end — ${kind.name}`, () => {
    it('runs every task to COMPLETED in dependency order, and spends exactly the actual costs', async () => {
      const { blackboard, dispose } = await kind.create();
      const h = await startHarness(blackboard);
      try {
        await h.orchestrator.handleEvent({
          id: 'evt-created-1',
          type: 'PROJECT_CREATED',
          projectId: 'prj_e2e',
          payload: { title: 'The Keeper', brief: 'a lighthouse keeper finds a message', budget: 50 },
          occurredAt: new Date().toISOString(),
        });
        await h.waitForProjectState('prj_e2e', 'completed');

        const tasks = await blackboard.tasks.listByProject('prj_e2e');
        const count = (type: string) => tasks.filter((t) => t.taskType === type).length;
        expect(tasks.every((t) => t.status === 'COMPLETED')).toBe(true);
        expect(count('WRITE_SCRIPT')).toBe(1);
        expect(count('PLAN_SHOTS')).toBe(1);
        expect(count('GENERATE_KEYFRAME')).toBe(3);
        expect(count('RUN_VISUAL_QA')).toBe(3);
        expect(count('CHECK_CONSISTENCY')).toBe(1);
        expect(count('GENERATE_PREVIEW_VIDEO')).toBe(1);
        expect(count('GENERATE_FINAL_VIDEO')).toBe(1);
        assertDependencyOrder(tasks);

        const project = await blackboard.projects.getProject('prj_e2e');
        const actual = roundMoney(tasks.reduce((sum, t) => sum + (t.actualCost ?? 0), 0));
        expect(project!.spent).toBeCloseTo(actual, 4);
        expect(project!.reserved).toBe(0);
        expect(project!.state).toBe('completed');

        const approvals = await blackboard.projects.listApprovals('prj_e2e');
        expect(approvals.map((a) => [a.checkpoint, a.status])).toEqual([
          ['SCENE_WRITTEN', 'approved'],
          ['SHOT_PLANNED', 'approved'],
          ['PREVIEW_VIDEO_READY', 'approved'],
          ['FINAL_VIDEO_READY', 'approved'],
        ]);
        // Every transition was published once durable; each task was dispatched exactly once.
        const statuses = h.messages.filter((m) => m.kind === 'status');
        expect(statuses.filter((m) => m.body.to === 'COMPLETED')).toHaveLength(tasks.length);
        expect(new Set(h.dispatches.map((d) => d.taskId)).size).toBe(h.dispatches.length);
        // Replaying the creation event changes nothing.
        const replay = await h.orchestrator.handleEvent({
          id: 'evt-created-1', type: 'PROJECT_CREATED', projectId: 'prj_e2e', payload: {}, occurredAt: new Date().toISOString(),
        });
        expect(replay.duplicate).toBe(true);
      } finally {
        await h.stop();
        await dispose();
      }
    });
  });
}

function assertDependencyOrder(tasks: TaskRecord[]): void {
  const byId = new Map(tasks.map((t) => [t.taskId, t]));
  for (const t of tasks) {
    for (const depId of t.dependencies) {
      const dep = byId.get(depId)!;
      expect(dep.completedAt!.getTime(), `${t.taskType} started before its dependency ${dep.taskType} completed`).toBeLessThanOrEqual(t.startedAt!.getTime());
    }
  }
}
