import { afterEach, describe, expect, it } from 'vitest';
import type { PipelineInput } from '../../src/domain/pipeline.js';
import { ServiceUnavailableError } from '../../src/errors.js';
import type { ProjectStepWrite } from '../../src/ports/project-store.js';
import type { EventIngest } from '../../src/ports/commit.js';
import { coreAgent, createDefectScope, createProject, eventually, intercept, refuseApprovalsOf, startInstance, summarize, type Instance } from '../helpers/defects.js';
import { connectTestNats } from '../helpers/nats.js';

/**
 * Issue 16: the approvals sweep and the start, isolated per request and per project, on
 * the real servers. A completed ANALYZE_BRIEF raises STEP_DONE, a checkpoint whose
 * rejection creates a WRITE_VOICEOVER_SCRIPT with the comment; requests expire after
 * 0.6 s and the `reject` policy applies.
 * - One project's expiry failing every time (its project write refused) stops neither
 *   another project's expiry nor its revision.
 * - A rejection whose revision failed after the decision was committed is applied again
 *   by the sweep (no restart): the revision is created and completes.
 * - A pending request that cannot be published fails neither the start nor another project.
 */
let cleanup: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const fn of cleanup.reverse()) await fn().catch(() => undefined);
  cleanup = [];
});

const REVIEW_PIPELINE: PipelineInput = {
  name: 'review',
  checkpoints: ['STEP_DONE'],
  rules: [{ on: 'STEP_DONE', create: [{ key: 'follow', type: 'WRITE_VOICEOVER_SCRIPT', input: { of: '$payload.source' } }] }],
  emits: [{ taskTypes: ['ANALYZE_BRIEF'], event: 'STEP_DONE', payload: { source: '$task.id' } }],
  onReject: { STEP_DONE: [{ key: 'redo', type: 'WRITE_VOICEOVER_SCRIPT', input: { comment: '$comment' } }] },
};

const EXPIRING = { approval: { timeoutMinutes: 0.01, timeoutPolicy: 'reject' as const } };

async function agents(scope: Awaited<ReturnType<typeof createDefectScope>>) {
  const nc = await connectTestNats(`agents-${scope.id}`, scope.natsUrl);
  cleanup.push(() => nc.close());
  const agent = coreAgent(nc, scope.subjectPrefix);
  cleanup.push(async () => agent.close());
  await nc.flush();
}

/** Waits for the project's revision (the rejection's WRITE_VOICEOVER_SCRIPT) to complete. */
async function revisionCompleted(a: Instance, projectId: string): Promise<void> {
  await eventually(
    async () => (await a.raw.tasks.listByProject(projectId)).some((t) => t.input.comment === 'approval request expired' && t.status === 'COMPLETED'),
    `the revision of ${projectId} completed`,
    async () => `approvals ${(await a.raw.projects.listApprovals(projectId)).map((x) => `${x.checkpoint}:${x.status}`).join(' ')}; ${summarize(await a.raw.tasks.listByProject(projectId))}`,
  );
}

describe('the approvals sweep, one request at a time', () => {
  it("one project's expiry failing every time stops neither another project's expiry nor its revision", async () => {
    const scope = await createDefectScope();
    cleanup.push(() => scope.cleanup());
    const failing = 'prj_as_failing';
    const healthy = 'prj_as_healthy';
    const a = await startInstance(scope, 'a', {
      pipeline: REVIEW_PIPELINE,
      config: EXPIRING,
      // The failing project's steps that decide a request are refused (its database write fails).
      wrap: (raw) => ({
        projects: intercept(raw.projects, (method, args, next) => {
          const step = args[0] as ProjectStepWrite | undefined;
          if (method === 'commitProjectStep' && step?.projectId === failing && step.decisions?.length) {
            return Promise.reject(new ServiceUnavailableError('postgres', 'the project write failed (injected)'));
          }
          return next();
        }),
      }),
    });
    cleanup.push(() => a.stop());
    await agents(scope);
    // The failing project's request is made first, so it expires first.
    await createProject(a.orchestrator, failing);
    await a.orchestrator.submitTasks(failing, [{ taskType: 'ANALYZE_BRIEF' }]);
    await eventually(async () => (await a.raw.projects.listApprovals(failing)).length === 1, 'the failing project\'s request');
    await createProject(a.orchestrator, healthy);
    await a.orchestrator.submitTasks(healthy, [{ taskType: 'ANALYZE_BRIEF' }]);

    await revisionCompleted(a, healthy);
    expect((await a.raw.projects.listApprovals(healthy))[0]).toMatchObject({ status: 'rejected', decidedBy: 'orchestrator:timeout' });
    // The failing project's request is still open (its expiry will be tried again), not stranded.
    expect((await a.raw.projects.listApprovals(failing)).map((x) => x.status)).toEqual(['pending']);
  }, 90_000);

  it('a rejection whose revision failed after the commit is applied again by the sweep, without a restart', async () => {
    const scope = await createDefectScope();
    cleanup.push(() => scope.cleanup());
    const projectId = 'prj_as_reapplied';
    let refusals = 0;
    const a = await startInstance(scope, 'a', {
      pipeline: REVIEW_PIPELINE,
      config: EXPIRING,
      // The revision's first ingest fails (the database went away for a moment).
      wrap: (raw) => ({
        commit: intercept(raw.commit, (method, args, next) => {
          const write = args[0] as EventIngest | undefined;
          if (method === 'ingestEvent' && write?.eventId.endsWith(':rejected') && refusals++ === 0) {
            return Promise.reject(new ServiceUnavailableError('postgres', 'the revision write failed (injected)'));
          }
          return next();
        }),
      }),
    });
    cleanup.push(() => a.stop());
    await agents(scope);
    await createProject(a.orchestrator, projectId);
    await a.orchestrator.submitTasks(projectId, [{ taskType: 'ANALYZE_BRIEF' }]);

    await revisionCompleted(a, projectId);
    expect(refusals).toBeGreaterThanOrEqual(2);
    expect(await a.raw.deadLetters.list(projectId)).toEqual([]);
  }, 90_000);
});

describe('the start, one pending request at a time', () => {
  it("a pending request that cannot be published fails neither the start nor another project's work", async () => {
    const scope = await createDefectScope();
    cleanup.push(() => scope.cleanup());
    const refused = 'prj_as_refused';
    const other = 'prj_as_other';
    const first = await startInstance(scope, 'first', { pipeline: REVIEW_PIPELINE });
    cleanup.push(() => first.stop());
    await agents(scope);
    await createProject(first.orchestrator, refused);
    await first.orchestrator.submitTasks(refused, [{ taskType: 'ANALYZE_BRIEF' }]);
    await eventually(async () => (await first.raw.projects.listApprovals(refused, 'pending')).length === 1, 'the pending request');
    await createProject(first.orchestrator, other);
    await first.stop();

    // The next instance cannot publish that project's requests (as NATS refuses one over max_payload).
    const second = await startInstance(scope, 'second', { pipeline: REVIEW_PIPELINE, wrapBus: refuseApprovalsOf(refused) });
    cleanup.push(() => second.stop());
    await second.orchestrator.submitTasks(other, [{ taskType: 'WRITE_VOICEOVER_SCRIPT' }]);
    await eventually(
      async () => (await second.raw.tasks.listByProject(other)).some((t) => t.status === 'COMPLETED'),
      "the other project's task completed",
      async () => summarize(await second.raw.tasks.listByProject(other)),
    );
    // The request stays pending, and is shown in the project's status.
    expect((await second.orchestrator.getProjectStatus(refused)).pendingApprovals).toHaveLength(1);
  }, 90_000);
});
