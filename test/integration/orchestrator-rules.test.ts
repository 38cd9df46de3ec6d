import { afterEach, describe, expect, it } from 'vitest';
import { SimulatedClock } from 'xstate';
import { DependencyCycleError, UnknownDependencyError } from '../../src/errors.js';
import type { BudgetStatus } from '../../src/domain/messages.js';
import { embedded } from '../helpers/blackboards.js';
import { startHarness, type HarnessOptions } from '../helpers/pipeline-harness.js';
import { waitFor } from '../helpers/wait.js';

/** Dependencies, budget rules, cost prediction, checkpoints per project — embedded blackboard. */
let cleanup: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const fn of cleanup.reverse()) await fn();
  cleanup = [];
});

async function harness(options: HarnessOptions = {}) {
  const { blackboard, dispose } = await embedded.create();
  const h = await startHarness(blackboard, options);
  cleanup.push(dispose, () => h.stop());
  return { blackboard, h };
}

const hold: HarnessOptions['agentOverride'] = () => null;
const noApprovals = { approval: { enabled: false }, scheduler: { intervalSeconds: 0.02, retryBackoffSeconds: 0.005, maxConcurrentTasks: 100 } };

async function project(h: Awaited<ReturnType<typeof harness>>['h'], projectId: string, payload: Record<string, unknown>) {
  return h.orchestrator.handleEvent({ id: `c-${projectId}`, type: 'PROJECT_CREATED', projectId, payload: { title: 'T', ...payload }, occurredAt: new Date().toISOString() });
}

describe('dependencies', () => {
  it('refuses a cycle or an unknown dependency, writing nothing', async () => {
    const { blackboard, h } = await harness({ config: noApprovals, agentOverride: hold });
    await project(h, 'prj_dep', {});
    const before = (await blackboard.tasks.listByProject('prj_dep')).length;
    await expect(
      h.orchestrator.submitTasks('prj_dep', [
        { taskId: 'a1', taskType: 'EDIT_IMAGE', dependencies: ['b1'] },
        { taskId: 'b1', taskType: 'EDIT_IMAGE', dependencies: ['a1'] },
      ]),
    ).rejects.toBeInstanceOf(DependencyCycleError);
    await expect(h.orchestrator.submitTasks('prj_dep', [{ taskId: 'c1', taskType: 'EDIT_IMAGE', dependencies: ['nope'] }])).rejects.toBeInstanceOf(UnknownDependencyError);
    expect(await blackboard.tasks.listByProject('prj_dep')).toHaveLength(before);
  });
});

describe('budget', () => {
  it('publishes one warning per crossing of the threshold', async () => {
    const { h } = await harness({ config: noApprovals, agentOverride: hold });
    await project(h, 'prj_warn', { budget: 10 });
    const warnings = () => h.messages.filter((m) => m.kind === 'budget' && m.body.projectId === 'prj_warn' && m.body.level === 'warning');
    for (let i = 0; i < 9; i++) await h.orchestrator.submitTasks('prj_warn', [{ taskType: 'EDIT_IMAGE', estimatedCost: 1 }]);
    expect(warnings()).toHaveLength(1);
    expect((warnings()[0]!.body as BudgetStatus).ratio).toBeGreaterThanOrEqual(0.9);
    await h.orchestrator.submitTasks('prj_warn', [{ taskType: 'EDIT_IMAGE', estimatedCost: 0.5 }]);
    expect(warnings()).toHaveLength(1);
    // A larger limit goes back under the threshold; crossing it again warns again.
    await h.orchestrator.setBudget('prj_warn', 20);
    expect((await h.orchestrator.getBudgetStatus('prj_warn')).level).toBe('ok');
    for (let i = 0; i < 9; i++) await h.orchestrator.submitTasks('prj_warn', [{ taskType: 'EDIT_IMAGE', estimatedCost: 1 }]);
    expect(warnings()).toHaveLength(2);
  });

  it('refines estimates from observed costs and forecasts the rest of the pipeline', async () => {
    const { h } = await harness({
      config: noApprovals,
      agentOverride: (task) => (task.taskType === 'UPSCALE_IMAGE' ? { status: 'completed', output: {}, actualCost: 0.5 } : null),
    });
    await project(h, 'prj_cost', { budget: 0.2 });
    const status = await h.orchestrator.getBudgetStatus('prj_cost');
    // WRITE_SCRIPT is reserved; the stages not reached yet are forecast and do not fit.
    expect(status.forecast.remainingCost).toBeGreaterThan(1);
    expect(status.forecast.exceedsBudget).toBe(true);
    await h.orchestrator.setBudget('prj_cost', 100);
    const catalogEstimate = h.orchestrator.core.catalog.estimateCost('UPSCALE_IMAGE');
    expect(catalogEstimate).not.toBe(0.5);
    for (let i = 0; i < 3; i++) {
      const { taskIds } = await h.orchestrator.submitTasks('prj_cost', [{ taskType: 'UPSCALE_IMAGE' }]);
      await waitFor(async () => (await h.orchestrator.core.tasks.getTask(taskIds[0]!))?.status === 'COMPLETED');
    }
    const { taskIds } = await h.orchestrator.submitTasks('prj_cost', [{ taskType: 'UPSCALE_IMAGE' }]);
    expect((await h.orchestrator.core.tasks.getTask(taskIds[0]!))!.estimatedCost).toBe(0.5);
  });

  it('with BUDGET_CHECK_ENABLED=false tasks run past the limit and their costs are still recorded', async () => {
    const { blackboard, h } = await harness({ config: { ...noApprovals, budget: { checkEnabled: false } } });
    await project(h, 'prj_nocheck', { budget: 0.01 });
    await h.waitForProjectState('prj_nocheck', 'completed');
    const p = await blackboard.projects.getProject('prj_nocheck');
    expect(p!.spent).toBeGreaterThan(0.01);
    expect(p!.reserved).toBe(0);
  });

  it('stops at AGENT_CONCURRENCY for an agent', async () => {
    const { h } = await harness({ config: { ...noApprovals, scheduler: { ...noApprovals.scheduler, agentLimits: { image_generator: 2 } } }, agentOverride: hold });
    await project(h, 'prj_agents', {});
    await h.orchestrator.submitTasks('prj_agents', Array.from({ length: 6 }, () => ({ taskType: 'EDIT_IMAGE' })));
    await h.orchestrator.dispatchTasks();
    await h.orchestrator.dispatchTasks();
    const images = h.dispatches.filter((d) => d.taskType === 'EDIT_IMAGE');
    expect(images).toHaveLength(2);
    expect(await h.orchestrator.core.queue.size()).toBe(4);
  });
});

describe('checkpoints per project', () => {
  it('a project can name its own checkpoints', async () => {
    const { blackboard, h } = await harness();
    await project(h, 'prj_own', { budget: 50, checkpoints: ['FINAL_VIDEO_READY'] });
    await h.waitForProjectState('prj_own', 'completed');
    const approvals = await blackboard.projects.listApprovals('prj_own');
    expect(approvals.map((a) => a.checkpoint)).toEqual(['FINAL_VIDEO_READY']);
  });
});

describe('timeouts and heartbeats', () => {
  it('a silent attempt times out and is retried; heartbeats keep a long one alive', async () => {
    // Time moves by hand (a SimulatedClock): the deadlines are the orchestrator's clock's,
    // so a slow machine cannot make a heartbeat late.
    const clock = new SimulatedClock();
    clock.set(Date.now());
    const { blackboard, h } = await harness({
      clock,
      config: noApprovals,
      agentOverride: (task) => {
        // Both answered by the test below: the first attempt of the upscale never (it times out).
        if (task.taskType === 'CAST_VOICES' || task.taskType === 'UPSCALE_IMAGE') return null;
        return undefined;
      },
    });
    await project(h, 'prj_to', {});
    // A per-attempt timeout of 300 ms for both.
    const { taskIds } = await h.orchestrator.submitTasks('prj_to', [
      { taskType: 'UPSCALE_IMAGE', timeoutMs: 300 },
      { taskType: 'CAST_VOICES', timeoutMs: 300 },
    ]);
    const [silentId, beatingId] = taskIds as [string, string];
    await waitFor(() => [silentId, beatingId].every((id) => h.dispatches.some((d) => d.taskId === id)));
    const beating = h.dispatches.find((d) => d.taskId === beatingId)!;
    // The upscale's retry is answered before its clock moves on (at most 200 ms after its dispatch).
    let answered = false;
    const answerRetry = async () => {
      const retry = h.dispatches.find((d) => d.taskId === silentId && d.attempt === 2);
      if (!retry || answered) return;
      answered = true;
      await h.orchestrator.handleResult('prj_to', { taskId: silentId, fencingToken: retry.fencingToken, status: 'completed', output: {}, actualCost: 0.01 });
    };
    // Three timeouts' worth of work, a heartbeat every 200 ms; the silent one's deadline passes.
    for (let i = 0; i < 5; i++) {
      await answerRetry();
      await h.orchestrator.handleHeartbeat('prj_to', { taskId: beatingId, fencingToken: beating.fencingToken });
      clock.increment(200);
      await h.orchestrator.dispatchTasks();
    }
    await h.orchestrator.handleResult('prj_to', { taskId: beatingId, fencingToken: beating.fencingToken, status: 'completed', output: {}, actualCost: 0.01 });
    // The retry's back-off is on the same clock: time moves while it waits, and stands
    // still once the retry runs.
    await waitFor(async () => {
      await answerRetry();
      const silent = (await blackboard.tasks.getTask(silentId))!;
      if (silent.status === 'PENDING' || silent.status === 'FAILED') clock.increment(50);
      await h.orchestrator.dispatchTasks();
      return (await blackboard.tasks.getTasks(taskIds)).every((t) => t.status === 'COMPLETED');
    }, { timeoutMs: 30_000 });
    const [retried, beat] = await blackboard.tasks.getTasks(taskIds);
    expect(retried!.attempts).toBe(2);
    expect((await blackboard.tasks.listTransitions(retried!.taskId)).map((t) => t.event)).toContain('TIME_OUT');
    expect(beat!.attempts).toBe(1);
    expect((await blackboard.tasks.listTransitions(beat!.taskId)).filter((t) => t.event === 'HEARTBEAT').length).toBe(5);
  });
});
