import { afterEach, describe, expect, it } from 'vitest';
import { ValidationError } from '../../src/errors.js';
import { embedded } from '../helpers/blackboards.js';
import { startHarness, type HarnessOptions } from '../helpers/pipeline-harness.js';
import { waitFor } from '../helpers/wait.js';

/**
 * Tasks the scheduler can start at once are written RUNNING by the write that creates them
 * (Dispatcher.claim); an event of a project held active in memory is written
 * without reading the project first (EventIngest.onlyIfActive). Embedded blackboard.
 */
let cleanup: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const fn of cleanup.reverse()) await fn();
  cleanup = [];
});

const hold: HarnessOptions['agentOverride'] = () => null;

async function harness(scheduler: Record<string, unknown> = {}, options: HarnessOptions = {}) {
  const { blackboard, dispose } = await embedded.create();
  const h = await startHarness(blackboard, {
    config: { approval: { enabled: false }, scheduler: { intervalSeconds: 0.02, maxConcurrentTasks: 100, ...scheduler } },
    agentOverride: hold,
    ...options,
  });
  cleanup.push(dispose, () => h.stop());
  // The ids written to the queue (a task dispatched at creation never is).
  const queued: string[] = [];
  const queue = h.orchestrator.core.queue;
  const putMany = queue.putMany.bind(queue);
  queue.putMany = (entries) => {
    queued.push(...entries.map((e) => e.taskId));
    return putMany(entries);
  };
  return { blackboard, h, queued };
}

type Harness = Awaited<ReturnType<typeof harness>>['h'];

/** Creates the project and waits until its WRITE_SCRIPT is dispatched (it holds a slot from then on). */
async function project(h: Harness, projectId: string, payload: Record<string, unknown> = {}) {
  await h.orchestrator.handleEvent({ id: `c-${projectId}`, type: 'PROJECT_CREATED', projectId, payload: { title: 'T', ...payload }, occurredAt: new Date().toISOString() });
  await waitFor(() => h.dispatches.some((d) => d.projectId === projectId && d.taskType === 'WRITE_SCRIPT'), { what: 'WRITE_SCRIPT dispatched' });
}

const statusesOf = (h: Harness, taskId: string) =>
  h.messages.flatMap((m) => (m.kind === 'status' && m.body.taskId === taskId ? [`${m.body.from ?? 'null'}→${m.body.to}`] : []));

describe('dispatch at creation', () => {
  it('writes a task that can start at once RUNNING in the write that creates it, and dispatches it once', async () => {
    const { blackboard, h, queued } = await harness();
    await project(h, 'prj_direct');
    const { taskIds } = await h.orchestrator.submitTasks('prj_direct', [{ taskType: 'EDIT_IMAGE' }, { taskType: 'UPSCALE_IMAGE' }]);
    for (const taskId of taskIds) {
      const row = (await blackboard.tasks.getTask(taskId))!;
      expect(row).toMatchObject({ status: 'RUNNING', version: 3, attempts: 1 });
      expect(row.fencingToken).not.toBeNull();
      expect(row.startedAt).not.toBeNull();
      expect((await blackboard.tasks.listTransitions(taskId)).map((t) => [t.fromStatus, t.toStatus, t.event])).toEqual([
        [null, 'PENDING', 'CREATED'],
        ['PENDING', 'READY', 'DEPENDENCIES_MET'],
        ['READY', 'RUNNING', 'DISPATCH'],
      ]);
      const sent = h.dispatches.filter((d) => d.taskId === taskId);
      expect(sent).toHaveLength(1);
      expect(sent[0]).toMatchObject({ attempt: 1, fencingToken: row.fencingToken, deadline: row.deadline!.toISOString() });
      expect(statusesOf(h, taskId)).toEqual(['null→PENDING', 'PENDING→READY', 'READY→RUNNING']);
      // The lease is held (a scheduler elsewhere cannot take the task).
      expect(await h.orchestrator.core.locks.acquire(`task:${taskId}`, 1000)).toBeNull();
    }
    expect(queued.filter((id) => taskIds.includes(id))).toEqual([]);
    expect(h.orchestrator.scheduler.runningCount).toBe(3); // with the project's WRITE_SCRIPT
    // A scheduler pass sends nothing again; the result completes the task as usual.
    await h.orchestrator.dispatchTasks();
    expect(h.dispatches.filter((d) => taskIds.includes(d.taskId))).toHaveLength(2);
    const first = h.dispatches.find((d) => d.taskId === taskIds[0])!;
    await h.bus.sendResult('prj_direct', { taskId: first.taskId, fencingToken: first.fencingToken, status: 'completed', output: {}, actualCost: 0.01 });
    expect(await blackboard.tasks.getTask(first.taskId)).toMatchObject({ status: 'COMPLETED' });
    expect(h.orchestrator.scheduler.runningCount).toBe(2);
  });

  it('beyond the room, the highest priorities start at once; the rest wait in the queue and go in priority order', async () => {
    const { blackboard, h, queued } = await harness({ maxConcurrentTasks: 3 });
    await project(h, 'prj_room'); // its WRITE_SCRIPT takes one slot
    const { taskIds } = await h.orchestrator.submitTasks(
      'prj_room',
      [10, 900, 500, 700].map((priority) => ({ taskType: 'EDIT_IMAGE', priority })),
    );
    const [p10, p900, p500, p700] = taskIds as [string, string, string, string];
    const status = async (id: string) => (await blackboard.tasks.getTask(id))!.status;
    expect([await status(p900), await status(p700)]).toEqual(['RUNNING', 'RUNNING']);
    expect([await status(p500), await status(p10)]).toEqual(['READY', 'READY']);
    expect(queued.filter((id) => taskIds.includes(id)).sort()).toEqual([p10, p500].sort());
    const answer = async (id: string) => {
      const d = h.dispatches.find((x) => x.taskId === id)!;
      await h.bus.sendResult('prj_room', { taskId: id, fencingToken: d.fencingToken, status: 'completed', output: {}, actualCost: 0.01 });
    };
    await answer(p900);
    await waitFor(async () => (await status(p500)) === 'RUNNING', { what: 'the 500 dispatched' });
    expect(await status(p10)).toBe('READY');
    await answer(p700);
    await waitFor(async () => (await status(p10)) === 'RUNNING', { what: 'the 10 dispatched' });
  });

  it('goes through the queue while tasks wait there, and respects the agents\' limits', async () => {
    const { blackboard, h, queued } = await harness({ agentLimits: { image_generator: 1 } });
    await project(h, 'prj_limits');
    const first = await h.orchestrator.submitTasks('prj_limits', [{ taskType: 'EDIT_IMAGE' }, { taskType: 'EDIT_IMAGE' }]);
    const states = await blackboard.tasks.getTasks(first.taskIds);
    expect(states.map((t) => t.status).sort()).toEqual(['READY', 'RUNNING']);
    const waiting = states.find((t) => t.status === 'READY')!.taskId;
    expect(queued).toContain(waiting);
    // Another agent has room, but a task waits in the queue: the new one queues behind it.
    const { taskIds: [other] } = await h.orchestrator.submitTasks('prj_limits', [{ taskType: 'WRITE_SCRIPT' }]);
    expect(queued).toContain(other);
    await waitFor(async () => (await blackboard.tasks.getTask(other!))!.status === 'RUNNING', { what: 'dispatched by the scheduler' });
    expect(h.dispatches.filter((d) => d.taskId === other)).toHaveLength(1);
    expect((await blackboard.tasks.getTask(waiting))!.status).toBe('READY'); // its agent is still at its limit
  });

  it('gives the slots and leases back when the tasks are not written RUNNING (the reservation does not fit)', async () => {
    const { blackboard, h } = await harness();
    await project(h, 'prj_budget', { budget: 1 });
    const running = h.orchestrator.scheduler.runningCount;
    const { taskIds: [big] } = await h.orchestrator.submitTasks('prj_budget', [{ taskType: 'EDIT_IMAGE', estimatedCost: 5 }]);
    expect(await blackboard.tasks.getTask(big!)).toMatchObject({ status: 'PENDING', version: 1 });
    expect(h.dispatches.filter((d) => d.taskId === big)).toHaveLength(0);
    expect(h.orchestrator.scheduler.runningCount).toBe(running);
    expect(await h.orchestrator.core.locks.acquire(`task:${big}`, 1000)).not.toBeNull();
  });
});

describe('dispatch at creation, failures', () => {
  it('a task written RUNNING is dispatched, and the submission acknowledged, even when what follows the write fails', async () => {
    const { blackboard, h } = await harness();
    await project(h, 'prj_fail');
    const actors = h.orchestrator.core.projectActors;
    const load = actors.load.bind(actors);
    actors.load = async () => {
      actors.load = load;
      throw new Error('project actor unavailable');
    };
    const before = h.orchestrator.scheduler.runningCount;
    // The commit is durable: the follow-up's failure is the reaction's, not the submission's.
    await expect(h.orchestrator.submitTasks('prj_fail', [{ taskId: 'tsk_after_fail', taskType: 'EDIT_IMAGE' }])).resolves.toMatchObject({ taskIds: ['tsk_after_fail'] });
    expect(await blackboard.tasks.getTask('tsk_after_fail')).toMatchObject({ status: 'RUNNING', version: 3 });
    expect(h.dispatches.filter((d) => d.taskId === 'tsk_after_fail')).toHaveLength(1);
    expect(h.orchestrator.scheduler.runningCount).toBe(before + 1);
    // Its result is handled as any other (the actor is loaded from its row).
    const d = h.dispatches.find((x) => x.taskId === 'tsk_after_fail')!;
    await h.bus.sendResult('prj_fail', { taskId: d.taskId, fencingToken: d.fencingToken, status: 'completed', output: {}, actualCost: 0.01 });
    expect(await blackboard.tasks.getTask('tsk_after_fail')).toMatchObject({ status: 'COMPLETED' });
    expect(h.orchestrator.scheduler.runningCount).toBe(before);
  });
});

describe('events of a project held active in memory', () => {
  const scene = (projectId: string, id: string) => ({ id, type: 'SCENE_WRITTEN', projectId, payload: { script: 's' }, occurredAt: new Date().toISOString() });

  it('a project paused or completed behind this process\'s back: the event is written as the stored state says', async () => {
    const { blackboard, h } = await harness();
    await project(h, 'prj_elsewhere');
    await project(h, 'prj_done');
    expect(h.orchestrator.core.projectActors.get('prj_elsewhere')?.record.state).toBe('active');
    // Another process pauses one project and completes the other.
    const at = new Date();
    await blackboard.projects.setProjectState('prj_elsewhere', 'paused', ['active'], 'by another process', at);
    await blackboard.projects.setProjectState('prj_done', 'completed', ['active'], null, at);

    const { taskIds } = await h.orchestrator.handleEvent(scene('prj_elsewhere', 'sc-1'));
    expect(await blackboard.tasks.getTasks(taskIds)).toMatchObject([{ taskType: 'PLAN_SHOTS', status: 'PENDING' }]);
    expect(h.dispatches.filter((d) => d.taskId === taskIds[0])).toHaveLength(0);
    expect(h.orchestrator.core.projectActors.get('prj_elsewhere')?.record.state).toBe('paused'); // learnt
    expect(await blackboard.projects.isEventProcessed('sc-1')).toBe(true);

    await expect(h.orchestrator.handleEvent(scene('prj_done', 'sc-2'))).rejects.toBeInstanceOf(ValidationError);
    expect(await blackboard.projects.isEventProcessed('sc-2')).toBe(false);
    expect((await blackboard.tasks.listByProject('prj_done')).map((t) => t.taskType)).toEqual(['WRITE_SCRIPT']);
    // Redelivered, a handled event is a duplicate either way.
    expect(await h.orchestrator.handleEvent(scene('prj_elsewhere', 'sc-1'))).toMatchObject({ duplicate: true });
  });
});
