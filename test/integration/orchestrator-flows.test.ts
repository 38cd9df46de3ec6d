import { afterEach, describe, expect, it } from 'vitest';
import { embedded } from '../helpers/blackboards.js';
import { startHarness, type HarnessOptions } from '../helpers/pipeline-harness.js';
import type { Blackboard } from '../../src/orchestrator/factory.js';
import { ApprovalError } from '../../src/errors.js';
import type { TaskDispatch } from '../../src/domain/messages.js';

/** Revision loops, QA repairs, retries and dead letters, approvals — on the embedded blackboard. */
let cleanup: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const fn of cleanup.reverse()) await fn();
  cleanup = [];
});

async function harness(options: HarnessOptions = {}): Promise<{ blackboard: Blackboard; h: Awaited<ReturnType<typeof startHarness>> }> {
  const { blackboard, dispose } = await embedded.create();
  const h = await startHarness(blackboard, options);
  cleanup.push(dispose, () => h.stop());
  return { blackboard, h };
}

const created = (projectId: string, payload: Record<string, unknown> = {}) => ({
  id: `evt-${projectId}`,
  type: 'PROJECT_CREATED',
  projectId,
  payload: { title: 'T', brief: 'a brief', budget: 100, ...payload },
  occurredAt: new Date().toISOString(),
});

describe('revision loops', () => {
  it('a rejection at SCENE_WRITTEN leads to REVISE_SCRIPT and a second approval request; a failed QA to EDIT_IMAGE and a new QA', async () => {
    const { blackboard, h } = await harness({
      reviewer: (req, n) =>
        req.checkpoint === 'SCENE_WRITTEN' && n === 1
          ? { decision: 'rejected', comment: 'make the ending darker', by: 'director' }
          : { decision: 'approved', by: 'director' },
      simulation: { failQaOnce: [1] },
    });
    await h.orchestrator.handleEvent(created('prj_rev'));
    await h.waitForProjectState('prj_rev', 'completed');

    const approvals = await blackboard.projects.listApprovals('prj_rev');
    expect(approvals.map((a) => `${a.checkpoint}:${a.status}`)).toEqual([
      'SCENE_WRITTEN:rejected',
      'SCENE_WRITTEN:approved',
      'SHOT_PLANNED:approved',
      'PREVIEW_VIDEO_READY:approved',
      'FINAL_VIDEO_READY:approved',
    ]);
    const tasks = await blackboard.tasks.listByProject('prj_rev');
    const of = (type: string) => tasks.filter((t) => t.taskType === type);
    const [revise] = of('REVISE_SCRIPT');
    expect(revise).toMatchObject({ status: 'COMPLETED', input: { comment: 'make the ending darker' } });
    // The PLAN_SHOTS of the rejected scene was cancelled; the one after the revision ran.
    expect(of('PLAN_SHOTS').map((t) => t.status).sort()).toEqual(['CANCELLED', 'COMPLETED']);
    // Shot 1 failed its first QA: EDIT_IMAGE, then a new QA that took the old one's place.
    const [edit] = of('EDIT_IMAGE');
    expect(edit).toMatchObject({ status: 'COMPLETED', input: { shotIndex: 1 } });
    const qas = of('RUN_VISUAL_QA');
    expect(qas).toHaveLength(4);
    const redo = qas.find((q) => q.dependencies.includes(edit!.taskId))!;
    const [consistency] = of('CHECK_CONSISTENCY');
    expect(consistency!.dependencies).toContain(redo.taskId);
    expect(consistency!.startedAt!.getTime()).toBeGreaterThanOrEqual(redo.completedAt!.getTime());
    expect(tasks.filter((t) => t.status !== 'CANCELLED').every((t) => t.status === 'COMPLETED')).toBe(true);
  });
});

describe('approvals', () => {
  it('a double approval has one effect; a decision on an unknown or decided request is refused', async () => {
    const { blackboard, h } = await harness({ reviewer: () => null });
    await h.orchestrator.handleEvent(created('prj_apr'));
    let pending: { approvalId: string }[] = [];
    await waitUntil(async () => (pending = await blackboard.projects.listApprovals('prj_apr', 'pending')).length === 1);
    const approvalId = pending[0]!.approvalId;
    const results = await Promise.allSettled([
      h.orchestrator.decide('prj_apr', { approvalId, decision: 'approved', by: 'a' }),
      h.orchestrator.decide('prj_apr', { approvalId, decision: 'rejected', comment: 'no', by: 'b' }),
    ]);
    expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
    const refused = results.find((r) => r.status === 'rejected') as PromiseRejectedResult;
    expect(refused.reason).toBeInstanceOf(ApprovalError);
    await expect(h.orchestrator.decide('prj_apr', { approvalId: 'apr_nope', decision: 'approved', by: 'a' })).rejects.toThrow(/does not exist/);
    await expect(h.orchestrator.decide('prj_apr', { approvalId, decision: 'approved', by: 'c' })).rejects.toThrow(/already/);
    const tasks = await blackboard.tasks.listByProject('prj_apr');
    expect(tasks.filter((t) => t.taskType === 'PLAN_SHOTS' || t.taskType === 'REVISE_SCRIPT')).toHaveLength(1);
  });

  it('an expired request follows the timeout policy and is announced', async () => {
    const { blackboard, h } = await harness({
      reviewer: () => null,
      config: { approval: { timeoutMinutes: 0.0005, timeoutPolicy: 'reject' }, scheduler: { intervalSeconds: 0.02, retryBackoffSeconds: 0.005 } },
    });
    await h.orchestrator.handleEvent(created('prj_exp'));
    await waitUntil(() => h.messages.some((m) => m.kind === 'approval_expired'));
    const [first] = await blackboard.projects.listApprovals('prj_exp');
    expect(first).toMatchObject({ checkpoint: 'SCENE_WRITTEN', status: 'rejected', decidedBy: 'orchestrator:timeout' });
    await waitUntil(async () => (await blackboard.tasks.listByProject('prj_exp')).some((t) => t.taskType === 'REVISE_SCRIPT'));
  });
});

describe('approvals and results racing', () => {
  it('a task approved while its dependency\'s result is handled goes on (checked again after its write)', async () => {
    // The keyframe's result is held back and handed in by the test, at the worst moment:
    // after the QA's approval read the keyframe's state, before it wrote the QA PENDING.
    const { blackboard, h } = await harness({ reviewer: () => null, agentOverride: (task) => (task.taskType === 'GENERATE_KEYFRAME' ? null : undefined) });
    await h.orchestrator.handleEvent(created('prj_race', { budget: 100 }));
    await h.orchestrator.decide('prj_race', { approvalId: (await waitForPending(blackboard, 'prj_race'))[0]!.approvalId, decision: 'approved', by: 'a' });
    await waitUntil(async () => (await blackboard.tasks.listByProject('prj_race')).some((t) => t.taskType === 'PLAN_SHOTS' && t.status === 'COMPLETED'));
    await h.orchestrator.handleEvent({ id: 'shots-1', type: 'SHOT_PLANNED', projectId: 'prj_race', payload: { shots: ['a lighthouse'] }, occurredAt: new Date().toISOString() });
    const [request] = await waitForPending(blackboard, 'prj_race');
    const tasks = await blackboard.tasks.getTasks(request!.taskIds);
    const keyframe = tasks.find((t) => t.taskType === 'GENERATE_KEYFRAME')!;
    const qa = tasks.find((t) => t.taskType === 'RUN_VISUAL_QA')!;

    // The approval reads the QA's dependencies (the keyframe: not completed yet), then the
    // keyframe's result is handled in full, then the approval writes the QA.
    // The approval's read of the dependencies is the store's getLinks: the result goes in
    // right after it returns.
    const store = h.orchestrator.core.tasks;
    const getLinks = store.getLinks.bind(store);
    let deciding = false;
    let raced = false;
    store.getLinks = async (ids) => {
      const links = await getLinks(ids);
      if (deciding && !raced && ids.includes(keyframe.taskId)) {
        raced = true;
        await waitUntil(() => h.dispatches.some((d) => d.taskId === keyframe.taskId));
        const d = h.dispatches.find((x) => x.taskId === keyframe.taskId)!;
        await h.orchestrator.handleResult('prj_race', { taskId: d.taskId, fencingToken: d.fencingToken, status: 'completed', output: { image: 'k.png' }, actualCost: 0.01 });
      }
      return links;
    };
    deciding = true;
    await h.orchestrator.decide('prj_race', { approvalId: request!.approvalId, decision: 'approved', by: 'a' });
    expect(raced).toBe(true);
    expect((await blackboard.tasks.getTask(keyframe.taskId))!.status).toBe('COMPLETED');
    await waitUntil(() => h.dispatches.some((d) => d.taskId === qa.taskId));
    expect((await blackboard.tasks.getTask(qa.taskId))!.status).not.toBe('PENDING');
  });
});

async function waitForPending(blackboard: Blackboard, projectId: string) {
  let pending: Awaited<ReturnType<Blackboard['projects']['listApprovals']>> = [];
  await waitUntil(async () => (pending = await blackboard.projects.listApprovals(projectId, 'pending')).length > 0);
  return pending;
}

describe('approval expiry policies', () => {
  const expiring = (policy: 'remind' | 'approve' | 'reject', intervalSeconds = 0.02) => ({
    reviewer: () => null,
    config: { approval: { timeoutMinutes: 0.001, timeoutPolicy: policy }, scheduler: { intervalSeconds, retryBackoffSeconds: 0.005 } },
  });

  it('remind: the request keeps waiting, is published again, and the expiry is announced', async () => {
    const { blackboard, h } = await harness(expiring('remind'));
    await h.orchestrator.handleEvent(created('prj_remind'));
    await waitUntil(() => h.messages.some((m) => m.kind === 'approval_requested' && m.body.reminder === true));
    const [approval] = await blackboard.projects.listApprovals('prj_remind');
    expect(approval!.status).toBe('pending');
    expect(h.messages.some((m) => m.kind === 'approval_expired' && m.body.policy === 'remind')).toBe(true);
    // Still decidable by a human afterwards.
    await h.orchestrator.decide('prj_remind', { approvalId: approval!.approvalId, decision: 'approved', by: 'late reviewer' });
    expect((await blackboard.projects.getApproval(approval!.approvalId))!.status).toBe('approved');
  });

  it('approve: an expired request is approved and the project goes on', async () => {
    const { blackboard, h } = await harness(expiring('approve'));
    await h.orchestrator.handleEvent(created('prj_autoapprove'));
    await waitUntil(async () => (await blackboard.tasks.listByProject('prj_autoapprove')).some((t) => t.taskType === 'PLAN_SHOTS' && t.status === 'COMPLETED'));
    const [first] = await blackboard.projects.listApprovals('prj_autoapprove');
    expect(first).toMatchObject({ checkpoint: 'SCENE_WRITTEN', status: 'approved', decidedBy: 'orchestrator:timeout' });
  });

  it('a decision racing the timeout has exactly one outcome', async () => {
    // A long interval: no pass of the scheduler sweeps on its own while the test races.
    const { blackboard, h } = await harness(expiring('reject', 3600));
    await h.orchestrator.handleEvent(created('prj_race'));
    let approvalId = '';
    await waitUntil(async () => {
      const [a] = await blackboard.projects.listApprovals('prj_race', 'pending');
      approvalId = a?.approvalId ?? '';
      return a !== undefined && a.expiresAt!.getTime() < Date.now();
    });
    const results = await Promise.allSettled([
      h.orchestrator.decide('prj_race', { approvalId, decision: 'approved', by: 'human' }),
      h.orchestrator.approvals.sweepExpired(),
    ]);
    const approval = (await blackboard.projects.getApproval(approvalId))!;
    const tasks = await blackboard.tasks.listByProject('prj_race');
    if (approval.status === 'approved') {
      expect(results[0]!.status).toBe('fulfilled');
      expect(tasks.some((t) => t.taskType === 'REVISE_SCRIPT')).toBe(false);
      expect(tasks.find((t) => t.taskType === 'PLAN_SHOTS')!.status).not.toBe('CANCELLED');
    } else {
      expect(approval).toMatchObject({ status: 'rejected', decidedBy: 'orchestrator:timeout' });
      expect(results[0]!.status).toBe('rejected');
      expect(tasks.filter((t) => t.taskType === 'REVISE_SCRIPT')).toHaveLength(1);
      expect(tasks.find((t) => t.taskType === 'PLAN_SHOTS')!.status).toBe('CANCELLED');
    }
  });
});

describe('retries and dead letters', () => {
  it('an always-failing task is tried maxAttempts times with growing delays and dead-lettered; the project is reported failed, and a retry finishes it', async () => {
    let broken = true;
    const poison = (task: TaskDispatch) => task.taskType === 'GENERATE_KEYFRAME' && task.input.shotIndex === 0;
    const { blackboard, h } = await harness({
      config: { approval: { enabled: false }, scheduler: { intervalSeconds: 0.02, retryBackoffSeconds: 0.02, maxAttempts: 4 } },
      agentOverride: (task) => (poison(task) && broken ? { status: 'failed', error: 'model overloaded' } : undefined),
    });
    await h.orchestrator.handleEvent(created('prj_fail'));
    await waitUntil(async () => (await blackboard.deadLetters.list('prj_fail')).length === 1);
    const [letter] = await blackboard.deadLetters.list('prj_fail');
    const failing = { taskId: letter!.taskId };
    expect(letter).toMatchObject({ attempts: 4, lastError: 'model overloaded' });
    // Its dependents are cancelled: the project cannot finish as planned. Reported failed, naming the task.
    await h.waitForProjectState('prj_fail', 'failed');
    const project = await blackboard.projects.getProject('prj_fail');
    expect(project?.state).toBe('failed');
    expect(project?.pausedReason).toBe(`task ${failing.taskId} (GENERATE_KEYFRAME) failed 4 of 4 attempts: model overloaded`);
    const announced = h.messages.filter((m) => m.kind === 'project' && m.body.projectId === 'prj_fail').at(-1);
    expect(announced?.body).toMatchObject({ state: 'failed', reason: project?.pausedReason });

    const row = await blackboard.tasks.getTask(failing!.taskId);
    expect(row).toMatchObject({ status: 'FAILED', attempts: 4, lastError: 'model overloaded' });
    const audit = await blackboard.tasks.listTransitions(failing!.taskId);
    const retries = audit.filter((t) => t.event === 'RETRY');
    expect(retries).toHaveLength(3);
    const delays = retries.map((t) => (t.detail!.notBefore as number) - t.at.getTime());
    for (let i = 1; i < delays.length; i++) expect(delays[i]!).toBeGreaterThanOrEqual(delays[i - 1]!);
    expect(delays[2]!).toBeGreaterThan(delays[0]!);
    const cancelled = (await blackboard.tasks.listByProject('prj_fail', ['CANCELLED'])).map((t) => t.taskType).sort();
    expect(cancelled).toContain('RUN_VISUAL_QA');

    // The agent is fixed: a retry runs a copy of the failed task and of each task cancelled after it; the project completes.
    broken = false;
    const outcome = await h.orchestrator.retryProject('prj_fail');
    expect(outcome.failed).toEqual([failing.taskId]);
    expect(outcome.taskIds).toHaveLength(1 + cancelled.length);
    await h.waitForProjectState('prj_fail', 'completed');
    const copies = await blackboard.tasks.getTasks(outcome.taskIds);
    expect(copies.map((t) => t.taskType).sort()).toEqual(['GENERATE_KEYFRAME', ...cancelled].sort());
    expect(copies.every((t) => t.status === 'COMPLETED')).toBe(true);
    // The originals stay as they ended: one terminal transition each, never undone.
    expect(await blackboard.tasks.getTask(failing.taskId)).toMatchObject({ status: 'FAILED', attempts: 4 });
    expect((await blackboard.tasks.listByProject('prj_fail', ['CANCELLED'])).length).toBe(cancelled.length);
    // A second retry has nothing left to do: a typed error, nothing changes.
    await expect(h.orchestrator.retryProject('prj_fail')).rejects.toThrow(/completed: nothing to retry/);
  });

  it('a task still retrying when its project completes runs to its end', async () => {
    let projectCompleted = false;
    const { blackboard, h } = await harness({
      config: { approval: { enabled: false }, scheduler: { intervalSeconds: 0.02, retryBackoffSeconds: 0.02, maxAttempts: 50 } },
      // Fails until the project has completed: at least one retry comes after the completion.
      agentOverride: (task) => (task.taskType === 'GENERATE_CHARACTER_SHEET' && !projectCompleted ? { status: 'failed', error: 'not yet' } : undefined),
    });
    await h.orchestrator.handleEvent(created('prj_late'));
    const { taskIds } = await h.orchestrator.submitTasks('prj_late', [{ taskType: 'GENERATE_CHARACTER_SHEET', maxAttempts: 50 }]);
    await h.waitForProjectState('prj_late', 'completed');
    projectCompleted = true;
    await waitUntil(async () => (await blackboard.tasks.getTask(taskIds[0]!))?.status === 'COMPLETED');
    const audit = await blackboard.tasks.listTransitions(taskIds[0]!);
    expect(audit.filter((t) => t.event === 'RETRY').length).toBeGreaterThan(0);
    expect(await blackboard.deadLetters.list('prj_late')).toStrictEqual([]);
  });
});

async function waitUntil(condition: () => boolean | Promise<boolean>): Promise<void> {
  const { waitFor } = await import('../helpers/wait.js');
  await waitFor(condition, { timeoutMs: 30_000 });
}
