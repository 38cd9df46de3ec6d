import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/config.js';
import { InProcessEventBus } from '../../src/adapters/memory/event-bus.js';
import { OrchestratorFactory } from '../../src/orchestrator/factory.js';
import type { Orchestrator } from '../../src/orchestrator/orchestrator.js';
import type { TaskDispatch } from '../../src/domain/messages.js';
import { embedded } from '../helpers/blackboards.js';
import { waitFor } from '../helpers/wait.js';

/**
 * Regression (issue 16, "a user cannot shorten a built-in task type's timeout"): every
 * built-in type sets its own 5–60 minute timeout, so TASK_TIMEOUT never applied to them.
 * TASK_TIMEOUTS and TASK_TYPES_FILE replace a built-in type's timeout, attempts, priority
 * and cost model for the tasks an orchestrator creates — embedded blackboard, an agent
 * that never answers (a stalled one).
 */
let cleanup: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const fn of cleanup.reverse()) await fn();
  cleanup = [];
});

async function orchestratorWith(env: NodeJS.ProcessEnv): Promise<{ orchestrator: Orchestrator; dispatched: TaskDispatch[]; blackboard: Awaited<ReturnType<typeof embedded.create>>['blackboard'] }> {
  const { blackboard, dispose } = await embedded.create();
  cleanup.push(dispose);
  const bus = new InProcessEventBus();
  const dispatched: TaskDispatch[] = [];
  bus.registerAgent('script_writer', async (task) => void dispatched.push(task)); // stalls: never answers
  const config = loadConfig(env, { approval: { enabled: false }, scheduler: { intervalSeconds: 0.02, retryBackoffSeconds: 0.01 } });
  const orchestrator = await OrchestratorFactory.createAndStart(blackboard, bus, config);
  cleanup.push(() => orchestrator.stop());
  return { orchestrator, dispatched, blackboard };
}

const created = (projectId: string) => ({
  id: `${projectId}:created`,
  type: 'PROJECT_CREATED',
  projectId,
  payload: { title: 'T', brief: 'b', budget: 10 },
  occurredAt: new Date().toISOString(),
});

describe('task-type overrides from the environment', () => {
  it('TASK_TIMEOUTS shortens a built-in type\'s timeout: the stalled attempt times out and is retried', async () => {
    const { orchestrator, dispatched, blackboard } = await orchestratorWith({ TASK_TIMEOUTS: 'WRITE_SCRIPT=0.3' });
    await orchestrator.handleEvent(created('prj_short'));
    const [task] = await blackboard.tasks.listByProject('prj_short');
    expect(task!.taskType).toBe('WRITE_SCRIPT');
    expect(task!.timeoutMs).toBe(300); // the catalogue's own: 10 minutes
    // The agent never answers: the attempt times out and the task is dispatched again.
    await waitFor(() => dispatched.length >= 2, { timeoutMs: 30_000, what: 'the second attempt' });
    expect(dispatched[1]!.attempt).toBe(2);
    expect(dispatched[1]!.fencingToken).toBeGreaterThan(dispatched[0]!.fencingToken);
    const history = await blackboard.tasks.listTransitions(task!.taskId);
    expect(history.map((h) => h.event)).toContain('TIME_OUT');
  });

  it('TASK_TYPES_FILE sets timeout, attempts, priority and cost model; TASK_TIMEOUTS wins on the timeout', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'task-types-'));
    cleanup.push(() => rmSync(dir, { recursive: true, force: true }));
    const file = join(dir, 'task-types.json');
    writeFileSync(file, JSON.stringify({ WRITE_SCRIPT: { timeoutSeconds: 3600, maxAttempts: 2, priority: 123, cost: { base: 0.5 } } }));
    const { orchestrator, dispatched, blackboard } = await orchestratorWith({ TASK_TYPES_FILE: file, TASK_TIMEOUTS: 'WRITE_SCRIPT=0.2' });
    await orchestrator.handleEvent(created('prj_file'));
    const [task] = await blackboard.tasks.listByProject('prj_file');
    expect(task).toMatchObject({ taskType: 'WRITE_SCRIPT', timeoutMs: 200, maxAttempts: 2, priority: 123, estimatedCost: 0.5 });
    // Two attempts, both timed out: FAILED for good (the catalogue's default is 3 attempts).
    await waitFor(async () => (await blackboard.tasks.getTask(task!.taskId))?.status === 'FAILED' && dispatched.length === 2 && (await blackboard.tasks.getTask(task!.taskId))!.attempts === 2, { timeoutMs: 30_000, what: 'the task failed after two attempts' });
    const budget = await orchestrator.getBudgetStatus('prj_file');
    expect(budget.spent).toBe(0);
  });
});
