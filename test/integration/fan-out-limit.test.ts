import { afterEach, describe, expect, it } from 'vitest';
import type { NatsConnection } from '@nats-io/transport-node';
import type { ConfigOverrides } from '../../src/config/config.js';
import type { ApprovalRequested, DeadLetterMessage } from '../../src/domain/messages.js';
import { TaskTypeCatalog } from '../../src/domain/task-types.js';
import { SimulatedAgents } from '../../src/demo/simulated-agents.js';
import { VIDEO_PIPELINE } from '../../src/pipeline/video-pipeline.js';
import { coreAgent, createDefectScope, createProject, eventually, startInstance, summarize, type DefectScope, type Instance } from '../helpers/defects.js';
import { connectTestNats } from '../helpers/nats.js';

/**
 * Issue 16, "a huge fan-out breaks the checkpoint and stalls other projects", on the real
 * servers: an event that would create more than MAX_TASKS_PER_EVENT tasks is refused whole
 * and dead-lettered with the reason (from the bus, or raised by a completed task), and
 * nothing else changes; at the limit, a fan-out of 4 999 shots (10 000 tasks) is
 * requested for approval in a message of a few KiB — counts and a bounded summary, not
 * every id — and the project's status is as small.
 */
let cleanup: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const fn of cleanup.reverse()) await fn().catch(() => undefined);
  cleanup = [];
});

async function setUp(config: ConfigOverrides): Promise<{ scope: DefectScope; a: Instance; nc: NatsConnection; letters: DeadLetterMessage[] }> {
  const scope = await createDefectScope();
  cleanup.push(() => scope.cleanup());
  const a = await startInstance(scope, 'a', { pipeline: VIDEO_PIPELINE, config });
  cleanup.push(() => a.stop());
  const nc = await connectTestNats(`wire-${scope.id}`, scope.natsUrl);
  cleanup.push(() => nc.close());
  const letters: DeadLetterMessage[] = [];
  const sub = nc.subscribe(`${scope.subjectPrefix}.dlq`, { callback: (err, msg) => void (err || letters.push(msg.json<DeadLetterMessage>())) });
  cleanup.push(async () => sub.unsubscribe());
  await nc.flush();
  return { scope, a, nc, letters };
}

const shotPlan = (n: number) => Array.from({ length: n }, (_, i) => ({ index: i, prompt: `shot ${i + 1}` }));

function shotPlanned(projectId: string, id: string, shots: number) {
  return { id, type: 'SHOT_PLANNED', projectId, payload: { shots: shotPlan(shots) }, occurredAt: new Date().toISOString() };
}

describe('MAX_TASKS_PER_EVENT', () => {
  it('an event from the bus over the limit is dead-lettered with the reason, and creates nothing', async () => {
    const { scope, a, nc, letters } = await setUp({ ingest: { maxTasksPerEvent: 50 } });
    const projectId = 'prj_fo_bus';
    await createProject(a.orchestrator, projectId, { checkpoints: [] });
    const before = await a.raw.tasks.listByProject(projectId);
    // 30 shots: 30 keyframes, 30 QAs, the consistency check and the preview = 62 tasks.
    const subject = `${scope.subjectPrefix}.events.${projectId}.SHOT_PLANNED`;
    nc.publish(subject, JSON.stringify(shotPlanned(projectId, 'evt-too-many', 30)));
    await eventually(() => letters.some((l) => l.subject === subject), 'the event dead-lettered');
    expect(letters.find((l) => l.subject === subject)!.reason).toMatch(
      /ERR_VALIDATION: event SHOT_PLANNED \(evt-too-many\) would create 62 tasks, more than MAX_TASKS_PER_EVENT \(50\): refused, nothing created/,
    );
    expect((await a.raw.tasks.listByProject(projectId)).map((t) => t.taskId)).toEqual(before.map((t) => t.taskId));
    expect(await a.raw.projects.isEventProcessed('evt-too-many')).toBe(false);

    // Within the limit, the same project goes on: 20 shots = 42 tasks.
    nc.publish(subject, JSON.stringify(shotPlanned(projectId, 'evt-fits', 20)));
    await eventually(async () => (await a.raw.tasks.listByProject(projectId)).length === before.length + 42, 'the 42 tasks of the event within the limit');
  }, 60_000);

  it('a raised event over the limit (a shot plan too big) is dead-lettered with the reason, creates nothing, and fails its project', async () => {
    const { scope, a, nc } = await setUp({ ingest: { maxTasksPerEvent: 50 } });
    const projectId = 'prj_fo_raised';
    const simulated = new SimulatedAgents(new TaskTypeCatalog(), { shots: 30, random: () => 0.5 });
    const agent = coreAgent(nc, scope.subjectPrefix, (task) => ({ taskId: task.taskId, fencingToken: task.fencingToken, status: 'completed', ...simulated.run(task) }));
    cleanup.push(async () => agent.close());
    await nc.flush();
    await createProject(a.orchestrator, projectId, { checkpoints: [] });
    await eventually(
      async () => (await a.raw.deadLetters.list(projectId)).length > 0,
      'the raised SHOT_PLANNED dead-lettered',
      async () => summarize(await a.raw.tasks.listByProject(projectId)),
    );
    const [letter] = await a.raw.deadLetters.list(projectId);
    expect(letter!.reason).toMatch(/raised event SHOT_PLANNED .* would create 62 tasks, more than MAX_TASKS_PER_EVENT \(50\)/);
    const tasks = await a.raw.tasks.listByProject(projectId);
    expect(tasks.map((t) => t.taskType).sort()).toEqual(['PLAN_SHOTS', 'WRITE_SCRIPT']);
    expect(await a.raw.tasks.listOutbox(100)).toEqual([]);
    // The stage it would have started never comes: the project is reported failed, with the reason.
    await eventually(async () => (await a.raw.projects.getProject(projectId))?.state === 'failed', 'the project reported failed');
    expect((await a.raw.projects.getProject(projectId))?.pausedReason).toBe(letter!.reason);
  }, 60_000);
});

describe('a large fan-out under the limit', () => {
  it('4 999 shots (10 000 tasks, the default limit): the approval request and the status are a few KiB, with the counts', async () => {
    const { scope, a, nc } = await setUp({});
    const projectId = 'prj_fo_large';
    const requests: { bytes: number; body: ApprovalRequested }[] = [];
    const sub = nc.subscribe(`${scope.subjectPrefix}.approvals.requested.${projectId}`, {
      callback: (err, msg) => void (err || requests.push({ bytes: msg.data.length, body: msg.json<ApprovalRequested>() })),
    });
    cleanup.push(async () => sub.unsubscribe());
    await nc.flush();
    await createProject(a.orchestrator, projectId, { checkpoints: ['SHOT_PLANNED'] });
    const { taskIds } = await a.orchestrator.handleEvent(shotPlanned(projectId, 'evt-large', 4_999));
    expect(taskIds).toHaveLength(10_000);
    await eventually(() => requests.length > 0, 'the approval request published');

    const [{ bytes, body }] = requests as [{ bytes: number; body: ApprovalRequested }];
    expect(bytes).toBeLessThan(64 * 1024);
    expect(body).toMatchObject({ projectId, checkpoint: 'SHOT_PLANNED', counts: { tasks: 10_000 }, summary: { shots: { count: 4_999 } } });
    expect(body).not.toHaveProperty('taskIds');
    const status = await a.orchestrator.getProjectStatus(projectId);
    expect(JSON.stringify(status).length).toBeLessThan(64 * 1024);
    expect(status.pendingApprovals).toEqual([expect.objectContaining({ approvalId: body.approvalId, counts: { tasks: 10_000 } })]);
  }, 120_000);
});
