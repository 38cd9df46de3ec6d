import { afterEach, describe, expect, it } from 'vitest';
import type { TaskDispatch } from '../../../src/domain/messages.js';
import { allCompleted, completed, coreAgent, createDefectScope, createProject, eventually, startInstance } from '../../helpers/defects.js';
import { connectTestNats } from '../../helpers/nats.js';
import { PrivateRedis } from '../../helpers/private-redis.js';

/**
 * Issue 15, defect 4: Redis (a private server) loses its data while the orchestrator keeps
 * running. Leases handed out afterwards must carry fencing tokens above the ones stored on
 * the tasks: a task retried after the loss is dispatched and completes. (Today the fencing
 * counter is lifted only at start(), so the retry's lease has a token the store refuses as
 * stale, and the task stays READY.)
 */
let cleanup: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const fn of cleanup.reverse()) await fn().catch(() => undefined);
  cleanup = [];
});

describe('defect 4: fencing tokens after Redis lost its data', () => {
  it('tasks retried and tasks created after the loss are dispatched and complete', async () => {
    const redis = await PrivateRedis.start();
    cleanup.push(() => redis.stop());
    const scope = await createDefectScope({ redisUrl: redis.url });
    cleanup.push(() => scope.cleanup());
    const agentNc = await connectTestNats(`agent-${scope.id}`, scope.natsUrl);
    cleanup.push(() => agentNc.close());
    const flaky = new Set<string>();
    const held: TaskDispatch[] = [];
    const agent = coreAgent(agentNc, scope.subjectPrefix, (t) => {
      if (flaky.has(t.taskId) && t.attempt === 1) {
        held.push(t);
        return null;
      }
      return completed(t);
    });
    await agentNc.flush();

    const a = await startInstance(scope, 'a');
    cleanup.push(() => a.stop());
    await createProject(a.orchestrator, 'prj_d4');
    // Warm-up: the fencing counter climbs.
    await a.orchestrator.submitTasks('prj_d4', Array.from({ length: 15 }, () => ({ taskType: 'ANALYZE_BRIEF' as const })));
    await allCompleted(a.raw, 'prj_d4', 15);
    // Three tasks RUNNING across the loss; their agent will fail attempt 1.
    const ids = ['tsk_d4flaky1', 'tsk_d4flaky2', 'tsk_d4flaky3'];
    ids.forEach((id) => flaky.add(id));
    await a.orchestrator.submitTasks('prj_d4', ids.map((taskId) => ({ taskId, taskType: 'ANALYZE_BRIEF' as const, maxAttempts: 3 })));
    await eventually(() => ids.every((id) => held.some((d) => d.taskId === id)), 'the three tasks dispatched');
    const stored = Math.max(...held.map((d) => d.fencingToken));

    await redis.restartEmpty();
    await eventually(async () => a.raw.queue.size().then(() => true, () => false), 'Redis reachable again');

    for (const d of held.splice(0)) agent.answer({ taskId: d.taskId, fencingToken: d.fencingToken, status: 'failed', error: 'model overloaded' });
    await a.orchestrator.submitTasks('prj_d4', Array.from({ length: 3 }, () => ({ taskType: 'ANALYZE_BRIEF' as const })));

    await allCompleted(a.raw, 'prj_d4', 21, 30_000, () => `tokens of attempt 2: ${agent.deliveries.filter((d) => d.attempt === 2).map((d) => d.fencingToken).join(',') || 'none'} (stored ${stored})`);
    for (const id of ids) expect(await a.raw.tasks.getTask(id)).toMatchObject({ status: 'COMPLETED', attempts: 2 });
    expect(Math.min(...agent.deliveries.filter((d) => d.attempt === 2).map((d) => d.fencingToken))).toBeGreaterThan(stored);
  });
});
