import { afterEach, describe, expect, it } from 'vitest';
import type { TaskDispatch } from '../../../src/domain/messages.js';
import { allCompleted, completed, coreAgent, createDefectScope, createProject, eventually, startInstance } from '../../helpers/defects.js';
import { connectTestNats } from '../../helpers/nats.js';

/**
 * Issue 15, defect 2: while instance A runs a project, instance B starts. B must not send
 * again the dispatches of A's RUNNING tasks (today `start()` re-sends recent RUNNING
 * attempts, so an agent on a core subscription gets the same attempt twice).
 */
let cleanup: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const fn of cleanup.reverse()) await fn().catch(() => undefined);
  cleanup = [];
});

describe('defect 2: a starting instance re-sends a live instance dispatches', () => {
  it('each (task, attempt) reaches the agent exactly once when a second instance starts', async () => {
    const scope = await createDefectScope();
    cleanup.push(() => scope.cleanup());
    const agentNc = await connectTestNats(`agent-${scope.id}`, scope.natsUrl);
    cleanup.push(() => agentNc.close());
    // The agent holds every task until the test lets it answer.
    let answering = false;
    const held: TaskDispatch[] = [];
    const agent = coreAgent(agentNc, scope.subjectPrefix, (t) => {
      if (answering) return completed(t);
      held.push(t);
      return null;
    });
    await agentNc.flush();

    const a = await startInstance(scope, 'a');
    cleanup.push(() => a.stop());
    await createProject(a.orchestrator, 'prj_d2');
    const { taskIds } = await a.orchestrator.submitTasks('prj_d2', Array.from({ length: 4 }, () => ({ taskType: 'ANALYZE_BRIEF' as const })));
    await eventually(() => taskIds.every((id) => agent.count(id) >= 1), 'A dispatched the 4 tasks', () => `deliveries ${agent.deliveries.length}`);

    // B starts while A is alive and its tasks RUNNING.
    const b = await startInstance(scope, 'b');
    cleanup.push(() => b.stop());
    // Give a re-send every chance to arrive: wait until B has run scheduler passes (its
    // start is over) and a round trip on the agent's connection has been made.
    await new Promise((r) => setTimeout(r, 2_000));
    await agentNc.flush();

    answering = true;
    for (const t of held.splice(0)) agent.answer(completed(t));
    await allCompleted(a.raw, 'prj_d2', 4);
    const perAttempt = Object.fromEntries(taskIds.map((id) => [id, agent.count(id, 1)]));
    expect(perAttempt, 'deliveries of attempt 1 per task').toEqual(Object.fromEntries(taskIds.map((id) => [id, 1])));
  });
});
