import { afterEach, describe, expect, it } from 'vitest';
import { allCompleted, completed, coreAgent, createDefectScope, createProject, type CoreAgent, type DefectScope, type Instance, startInstance } from '../../helpers/defects.js';
import { connectTestNats } from '../../helpers/nats.js';
import { eventually } from '../../helpers/defects.js';

/**
 * Issue 15, defect 1: orchestrator A dispatches a task and stops; B times the attempt
 * out and retries it. The retry must be dispatched and complete (today it stays READY
 * with an empty queue: B pops it, cannot take the lease A kept, and drops it).
 */
let cleanup: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const fn of cleanup.reverse()) await fn().catch(() => undefined);
  cleanup = [];
});

describe('defect 1: a READY task stranded after another instance stopped', () => {
  it('the retry of an attempt A dispatched before stopping is dispatched again and completes', async () => {
    const scope: DefectScope = await createDefectScope();
    cleanup.push(() => scope.cleanup());
    const agentNc = await connectTestNats(`agent-${scope.id}`, scope.natsUrl);
    cleanup.push(() => agentNc.close());
    // The agent never answers attempt 1 (it was lost with A); it answers the retry.
    const agent: CoreAgent = coreAgent(agentNc, scope.subjectPrefix, (t) => (t.attempt >= 2 ? completed(t) : null));
    await agentNc.flush();

    const a: Instance = await startInstance(scope, 'a');
    cleanup.push(() => a.stop());
    await createProject(a.orchestrator, 'prj_d1');
    const { taskIds } = await a.orchestrator.submitTasks('prj_d1', [{ taskType: 'ANALYZE_BRIEF', timeoutMs: 1_500, maxAttempts: 3 }]);
    const taskId = taskIds[0]!;
    await eventually(async () => (await a.raw.tasks.getTask(taskId))?.status === 'RUNNING', 'A dispatched the task');
    await eventually(() => agent.count(taskId, 1) >= 1, 'the agent got attempt 1');
    await a.stop();

    const b = await startInstance(scope, 'b');
    cleanup.push(() => b.stop());
    // B times attempt 1 out (1.5 s) and retries it: attempt 2 must reach the agent and complete.
    await allCompleted(b.raw, 'prj_d1', 1, 40_000, () => `attempt-2 deliveries ${agent.count(taskId, 2)}`);
    const row = await b.raw.tasks.getTask(taskId);
    expect(row).toMatchObject({ status: 'COMPLETED', attempts: 2 });
  }, 90_000);
});
