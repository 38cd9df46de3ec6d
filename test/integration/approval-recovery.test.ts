import { describe, expect, it } from 'vitest';
import { createEmbeddedBlackboard } from '../../src/adapters/blackboards.js';
import { InProcessEventBus } from '../../src/adapters/memory/event-bus.js';
import { TaskTypeCatalog } from '../../src/domain/task-types.js';
import { SimulatedAgents } from '../../src/demo/simulated-agents.js';
import { OrchestratorFactory } from '../../src/orchestrator/factory.js';
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
});
