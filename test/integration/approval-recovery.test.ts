import { describe, expect, it } from 'vitest';
import { createEmbeddedBlackboard } from '../../src/adapters/blackboards.js';
import { InProcessEventBus } from '../../src/adapters/memory/event-bus.js';
import { TaskTypeCatalog } from '../../src/domain/task-types.js';
import { SimulatedAgents } from '../../src/demo/simulated-agents.js';
import { OrchestratorFactory } from '../../src/orchestrator/factory.js';
import { ServiceUnavailableError } from '../../src/errors.js';
import type { EventIngest } from '../../src/ports/commit.js';
import { intercept } from '../helpers/defects.js';
import { waitFor } from '../helpers/wait.js';

/**
 * A crash between an approval's compare-and-set and its effect: the decision is durable,
 * the effect is re-applied by the next orchestrator's recovery. The final checkpoint
 * creates no tasks, so its effect (completing the project) must be recovered on its own.
 */
describe('approval effects recovered after a crash', () => {
  it('an approved FINAL_VIDEO_READY whose effect was interrupted completes the project on restart', async () => {
    const blackboard = await createEmbeddedBlackboard();
    const bus = new InProcessEventBus();
    const simulated = new SimulatedAgents(new TaskTypeCatalog());
    for (const agent of simulated.agents()) {
      bus.registerAgent(agent, async (task) => {
        await bus.sendResult(task.projectId, { taskId: task.taskId, fencingToken: task.fencingToken, status: 'completed', ...simulated.run(task) });
      });
    }
    const projectId = 'prj_recover_final';
    bus.subscribe((m) => {
      if (m.kind === 'approval_requested' && m.body.checkpoint !== 'FINAL_VIDEO_READY') {
        void bus.sendDecision(projectId, { approvalId: m.body.approvalId, decision: 'approved', by: 'test' });
      }
    });
    const config = { scheduler: { intervalSeconds: 0.02 } };
    const first = await OrchestratorFactory.createAndStart(blackboard, bus, config);
    try {
      await first.handleEvent({
        id: 'evt-created', type: 'PROJECT_CREATED', projectId, payload: { title: 'T', brief: 'b', budget: 50 }, occurredAt: new Date().toISOString(),
      });
      await waitFor(async () => (await blackboard.projects.listApprovals(projectId, 'pending')).some((a) => a.checkpoint === 'FINAL_VIDEO_READY'), {
        timeoutMs: 60_000,
        what: 'the FINAL_VIDEO_READY request',
      });
    } finally {
      await first.stop();
    }
    // The "crash": the decision's compare-and-set is durable, its effect never ran.
    const [finalApproval] = await blackboard.projects.listApprovals(projectId, 'pending');
    await blackboard.projects.decideApproval({ approvalId: finalApproval!.approvalId, status: 'approved', comment: null, by: 'test', at: new Date() });
    expect((await blackboard.projects.getProject(projectId))?.state).toBe('active');

    const second = await OrchestratorFactory.createAndStart(blackboard, bus, config);
    try {
      expect((await blackboard.projects.getProject(projectId))?.state).toBe('completed');
    } finally {
      await second.stop();
      await blackboard.close();
    }
  }, 90_000);

  it('a rejected preview whose revision was never created (its tasks cancelled) is revised on restart, and the project completes', async () => {
    const blackboard = await createEmbeddedBlackboard();
    const bus = new InProcessEventBus();
    const simulated = new SimulatedAgents(new TaskTypeCatalog());
    for (const agent of simulated.agents()) {
      bus.registerAgent(agent, async (task) => {
        await bus.sendResult(task.projectId, { taskId: task.taskId, fencingToken: task.fencingToken, status: 'completed', ...simulated.run(task) });
      });
    }
    const projectId = 'prj_recover_preview';
    let previews = 0;
    bus.subscribe((m) => {
      if (m.kind !== 'approval_requested' || m.body.reminder) return;
      // The first preview is rejected without shots; everything else is approved.
      const reject = m.body.checkpoint === 'PREVIEW_VIDEO_READY' && ++previews === 1;
      void bus.sendDecision(projectId, { approvalId: m.body.approvalId, decision: reject ? 'rejected' : 'approved', by: 'test', ...(reject ? { comment: 'again' } : {}) }).catch(() => undefined);
    });
    const config = { scheduler: { intervalSeconds: 0.02 } };
    // The first process never manages to write a revision (its database fails those writes).
    const failing = {
      ...blackboard,
      commit: intercept(blackboard.commit, (method, args, next) =>
        method === 'ingestEvent' && (args[0] as EventIngest).eventId.endsWith(':rejected')
          ? Promise.reject(new ServiceUnavailableError('postgres', 'revision write failed (injected)'))
          : next(),
      ),
    };
    const first = await OrchestratorFactory.createAndStart(failing, bus, config);
    try {
      await first.handleEvent({
        id: 'evt-created', type: 'PROJECT_CREATED', projectId, payload: { title: 'T', brief: 'b', budget: 50 }, occurredAt: new Date().toISOString(),
      });
      await waitFor(async () => (await blackboard.projects.listApprovals(projectId)).some((a) => a.checkpoint === 'PREVIEW_VIDEO_READY' && a.status === 'rejected'), {
        timeoutMs: 60_000,
        what: 'the preview rejected',
      });
      await waitFor(async () => (await blackboard.tasks.listByProject(projectId)).filter((t) => t.status === 'CANCELLED').length === 5, { what: 'its 5 tasks cancelled' });
    } finally {
      await first.stop();
    }
    expect((await blackboard.tasks.listByProject(projectId)).some((t) => t.taskType === 'EDIT_IMAGE')).toBe(false);

    const second = await OrchestratorFactory.createAndStart(blackboard, bus, config);
    try {
      await waitFor(async () => (await blackboard.projects.getProject(projectId))?.state === 'completed', { timeoutMs: 60_000, what: 'the project completed' });
      const edits = (await blackboard.tasks.listByProject(projectId)).filter((t) => t.taskType === 'EDIT_IMAGE');
      expect(edits.map((t) => t.input.shotIndex).sort()).toEqual([0, 1, 2]);
    } finally {
      await second.stop();
      await blackboard.close();
    }
  }, 120_000);
});
