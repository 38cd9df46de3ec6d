import { afterEach, describe, expect, it } from 'vitest';
import type { NatsConnection, Subscription } from '@nats-io/transport-node';
import type { ConfigOverrides } from '../../src/config/config.js';
import type { ApprovalRequested, DeadLetterMessage } from '../../src/domain/messages.js';
import { TaskTypeCatalog } from '../../src/domain/task-types.js';
import { SimulatedAgents } from '../../src/demo/simulated-agents.js';
import { VIDEO_PIPELINE } from '../../src/pipeline/video-pipeline.js';
import { coreAgent, createDefectScope, createProject, eventually, startInstance, summarize, type DefectScope, type Instance } from '../helpers/defects.js';
import { connectTestNats } from '../helpers/nats.js';

/**
 * Issue 16, "a rejected preview without `shots` dead-ends the project": on the real path
 * (PostgreSQL, Redis, NATS; decisions published on the wire, agents answering over NATS),
 * a preview rejected without `shots` — by a reviewer, or by the `reject` timeout policy —
 * redoes every shot and a new preview, which is requested again; the project completes.
 * A decision naming a shot the preview does not have is refused before it is committed,
 * dead-lettered with the reason, and changes nothing.
 */
let cleanup: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const fn of cleanup.reverse()) await fn().catch(() => undefined);
  cleanup = [];
});

const SHOTS = 3;

/** A reviewer on the wire: `decide` answers each first announcement of a request (null: no answer). */
function reviewer(nc: NatsConnection, prefix: string, decide: (request: ApprovalRequested) => Record<string, unknown> | null) {
  const requests: ApprovalRequested[] = [];
  const sub: Subscription = nc.subscribe(`${prefix}.approvals.requested.>`, {
    callback: (err, msg) => {
      if (err) return;
      const request = msg.json<ApprovalRequested>();
      if (request.reminder || requests.some((r) => r.approvalId === request.approvalId)) return;
      requests.push(request);
      const decision = decide(request);
      if (decision) nc.publish(`${prefix}.approvals.decided.${request.projectId}`, JSON.stringify({ approvalId: request.approvalId, ...decision }));
    },
  });
  return { requests, close: () => sub.unsubscribe() };
}

async function setUp(config: ConfigOverrides = {}): Promise<{ scope: DefectScope; a: Instance; nc: NatsConnection }> {
  const scope = await createDefectScope();
  cleanup.push(() => scope.cleanup());
  const a = await startInstance(scope, 'a', { pipeline: VIDEO_PIPELINE, config: { scheduler: { maxConcurrentTasks: 20 }, ...config } });
  cleanup.push(() => a.stop());
  const nc = await connectTestNats(`wire-${scope.id}`, scope.natsUrl);
  cleanup.push(() => nc.close());
  const simulated = new SimulatedAgents(new TaskTypeCatalog(), { shots: SHOTS, random: () => 0.5 });
  const agent = coreAgent(nc, scope.subjectPrefix, (task) => ({ taskId: task.taskId, fencingToken: task.fencingToken, status: 'completed', ...simulated.run(task) }));
  cleanup.push(async () => agent.close());
  return { scope, a, nc };
}

async function completed(a: Instance, projectId: string): Promise<void> {
  await eventually(
    async () => (await a.raw.projects.getProject(projectId))?.state === 'completed',
    `project ${projectId} completed`,
    async () => {
      const approvals = await a.raw.projects.listApprovals(projectId);
      return `project ${(await a.raw.projects.getProject(projectId))?.state}; approvals ${approvals.map((x) => `${x.checkpoint}:${x.status}`).join(' ')}; ${summarize(await a.raw.tasks.listByProject(projectId))}; dead letters ${JSON.stringify(await a.raw.deadLetters.list(projectId))}`;
    },
    60_000,
  );
}

describe('a preview rejected without shots', () => {
  it("by a reviewer: every shot is redone, the preview requested again, and the project completes; shots it does not have are refused first", async () => {
    const { scope, a, nc } = await setUp();
    const projectId = 'prj_pr_reviewer';
    const letters: DeadLetterMessage[] = [];
    const dlq = nc.subscribe(`${scope.subjectPrefix}.dlq`, { callback: (err, msg) => void (err || letters.push(msg.json<DeadLetterMessage>())) });
    cleanup.push(async () => dlq.unsubscribe());
    let previews = 0;
    const r = reviewer(nc, scope.subjectPrefix, (request) => {
      if (request.checkpoint !== 'PREVIEW_VIDEO_READY' || ++previews > 1) return { decision: 'approved', by: 'director' };
      return null; // The first preview is decided by the test, below.
    });
    cleanup.push(async () => r.close());
    await nc.flush();

    await createProject(a.orchestrator, projectId);
    await eventually(() => r.requests.some((x) => x.checkpoint === 'PREVIEW_VIDEO_READY'), 'the preview requested');
    const preview = r.requests.find((x) => x.checkpoint === 'PREVIEW_VIDEO_READY')!;
    // The request says how many shots a rejection may name.
    expect(preview.counts).toEqual({ tasks: 5, shots: SHOTS });
    const decided = `${scope.subjectPrefix}.approvals.decided.${projectId}`;

    // Shot 7 of a 3-shot preview: refused before anything is committed, with the reason.
    nc.publish(decided, JSON.stringify({ approvalId: preview.approvalId, decision: 'rejected', by: 'director', comment: 'fix shot 7', shots: [7] }));
    await eventually(() => letters.some((l) => l.subject === decided), 'the bad decision dead-lettered');
    expect(letters.find((l) => l.subject === decided)!.reason).toMatch(/ERR_VALIDATION: .*refused, nothing changed.*7 is not among the 3 shots/);
    expect((await a.raw.projects.getApproval(preview.approvalId))?.status).toBe('pending');

    // Rejected without shots: every shot is redone.
    nc.publish(decided, JSON.stringify({ approvalId: preview.approvalId, decision: 'rejected', by: 'director', comment: 'warmer light' }));
    await completed(a, projectId);

    const approvals = await a.raw.projects.listApprovals(projectId);
    expect(approvals.filter((x) => x.checkpoint === 'PREVIEW_VIDEO_READY').map((x) => x.status)).toEqual(['rejected', 'approved']);
    const tasks = await a.raw.tasks.listByProject(projectId);
    const edits = tasks.filter((t) => t.taskType === 'EDIT_IMAGE');
    expect(edits.map((t) => t.input.shotIndex).sort()).toEqual([0, 1, 2]);
    expect(edits.every((t) => t.status === 'COMPLETED' && t.input.comment === 'warmer light')).toBe(true);
    expect(tasks.filter((t) => t.taskType === 'GENERATE_PREVIEW_VIDEO').map((t) => t.status).sort()).toEqual(['COMPLETED', 'COMPLETED']);
    expect(await a.raw.deadLetters.list(projectId)).toEqual([]);
  }, 120_000);

  it('by the reject timeout policy: the same, and the expiry is announced', async () => {
    // Requests expire after 3 s: the reviewer answers every other one at once.
    const { scope, a, nc } = await setUp({ approval: { timeoutMinutes: 0.05, timeoutPolicy: 'reject' } });
    const projectId = 'prj_pr_timeout';
    const expired: { approvalId: string; checkpoint: string; policy: string }[] = [];
    const sub = nc.subscribe(`${scope.subjectPrefix}.approvals.expired.>`, { callback: (err, msg) => void (err || expired.push(msg.json())) });
    cleanup.push(async () => sub.unsubscribe());
    let previews = 0;
    const r = reviewer(nc, scope.subjectPrefix, (request) =>
      request.checkpoint === 'PREVIEW_VIDEO_READY' && ++previews === 1 ? null : { decision: 'approved', by: 'director' },
    );
    cleanup.push(async () => r.close());
    await nc.flush();

    await createProject(a.orchestrator, projectId);
    await completed(a, projectId);

    const approvals = await a.raw.projects.listApprovals(projectId);
    const previewRequests = approvals.filter((x) => x.checkpoint === 'PREVIEW_VIDEO_READY');
    expect(previewRequests[0]).toMatchObject({ status: 'rejected', decidedBy: 'orchestrator:timeout' });
    expect(previewRequests.at(-1)).toMatchObject({ status: 'approved', decidedBy: 'director' });
    expect(expired).toContainEqual(expect.objectContaining({ approvalId: previewRequests[0]!.approvalId, checkpoint: 'PREVIEW_VIDEO_READY', policy: 'reject' }));
    const tasks = await a.raw.tasks.listByProject(projectId);
    const revisionEdits = tasks.filter((t) => t.taskType === 'EDIT_IMAGE' && t.input.comment === 'approval request expired');
    expect(revisionEdits.map((t) => t.input.shotIndex).sort()).toEqual([0, 1, 2]);
    expect(await a.raw.deadLetters.list(projectId)).toEqual([]);
  }, 120_000);
});
