import { afterEach, describe, expect, it } from 'vitest';
import { embedded, servers } from '../helpers/blackboards.js';
import { startHarness } from '../helpers/pipeline-harness.js';
import { waitFor } from '../helpers/wait.js';
import type { TaskResult } from '../../src/domain/messages.js';
import { IllegalTransitionError } from '../../src/errors.js';

/**
 * An agent's result delivered again — the bus redelivers what was written but not yet
 * acknowledged when a process stopped, or two copies arrive at once — is applied
 * once: the second copy is acknowledged and changes nothing. A different outcome for the
 * same attempt is still an illegal transition.
 */
let cleanup: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const fn of cleanup.reverse()) await fn();
  cleanup = [];
});

describe.each([embedded, servers])('results delivered twice ($name)', (kind) => {
  it('a completion and a failure are each applied once, whether the copies come at once or later', async () => {
    const { blackboard, dispose } = await kind.create();
    // No simulated agent answers: the test hands in every result. A failed task waits a
    // minute before its retry (it stays with the failed attempt's token meanwhile).
    const h = await startHarness(blackboard, {
      config: { approval: { enabled: false }, scheduler: { intervalSeconds: 0.02, retryBackoffSeconds: 60 } },
      agentOverride: () => null,
    });
    cleanup.push(dispose, () => h.stop());
    const projectId = 'prj_dup';
    await h.orchestrator.handleEvent({
      id: 'evt-dup', type: 'PROJECT_CREATED', projectId, payload: { title: 'T', brief: 'b', budget: 100 }, occurredAt: new Date().toISOString(),
    });
    const { taskIds } = await h.orchestrator.submitTasks(projectId, [{ taskType: 'GENERATE_CHARACTER_SHEET', maxAttempts: 3 }]);
    const dispatchOf = async (pick: (taskType: string, taskId: string) => boolean) => {
      await waitFor(() => h.dispatches.some((d) => pick(d.taskType, d.taskId)), { timeoutMs: 30_000, what: 'a dispatch' });
      return h.dispatches.find((d) => pick(d.taskType, d.taskId))!;
    };
    const script = await dispatchOf((type) => type === 'WRITE_SCRIPT');
    const sheet = await dispatchOf((_, id) => id === taskIds[0]);

    // The completion: two copies at once (the second waits for the first), then a third later.
    const completed: TaskResult = { taskId: script.taskId, fencingToken: script.fencingToken, status: 'completed', output: { script: 's' }, actualCost: 0.05 };
    await Promise.all([h.orchestrator.handleResult(projectId, completed), h.orchestrator.handleResult(projectId, completed)]);
    const tasksAfter = (await blackboard.tasks.listByProject(projectId)).length;
    await h.orchestrator.handleResult(projectId, completed);
    const scriptAudit = await blackboard.tasks.listTransitions(script.taskId);
    expect(scriptAudit.filter((t) => t.event === 'COMPLETE')).toHaveLength(1);
    expect(await blackboard.tasks.getTask(script.taskId)).toMatchObject({ status: 'COMPLETED', output: { script: 's' } });
    // The SCENE_WRITTEN it raised was handled once: no task was created twice.
    expect(tasksAfter).toBeGreaterThan(2);
    expect((await blackboard.tasks.listByProject(projectId)).length).toBe(tasksAfter);
    expect((await blackboard.projects.getProject(projectId))!.spent).toBeCloseTo(0.05, 10);

    // Another outcome for the same attempt is refused, and changes nothing.
    const conflicts = [
      { ...completed, actualCost: 0.07 },
      { taskId: script.taskId, fencingToken: script.fencingToken, status: 'failed' as const, error: 'failed after all' },
    ];
    for (const conflict of conflicts) {
      await expect(h.orchestrator.handleResult(projectId, conflict)).rejects.toBeInstanceOf(IllegalTransitionError);
    }
    expect(await blackboard.tasks.listTransitions(script.taskId)).toEqual(scriptAudit);

    // The failure: two copies at once, then a third while the retry waits.
    const failed: TaskResult = { taskId: sheet.taskId, fencingToken: sheet.fencingToken, status: 'failed', error: 'model overloaded' };
    await Promise.all([h.orchestrator.handleResult(projectId, failed), h.orchestrator.handleResult(projectId, failed)]);
    await waitFor(async () => (await blackboard.tasks.getTask(sheet.taskId))?.status === 'PENDING', { timeoutMs: 30_000, what: 'the retry' });
    await h.orchestrator.handleResult(projectId, failed);
    const sheetAudit = await blackboard.tasks.listTransitions(sheet.taskId);
    expect(sheetAudit.map((t) => t.event)).toEqual(['CREATED', 'DEPENDENCIES_MET', 'DISPATCH', 'FAIL', 'RETRY']);
    expect(await blackboard.tasks.getTask(sheet.taskId)).toMatchObject({ status: 'PENDING', attempts: 1, lastError: 'model overloaded' });
    await expect(h.orchestrator.handleResult(projectId, { ...failed, error: 'another reason' })).rejects.toBeInstanceOf(IllegalTransitionError);
    expect(await blackboard.deadLetters.list(projectId)).toEqual([]);
  });
});
