import { describe, expect, it } from 'vitest';
import { InProcessEventBus } from '../../src/adapters/memory/event-bus.js';
import type { TaskDispatch } from '../../src/domain/messages.js';
import { silentLogger } from '../../src/logger.js';
import { OrchestratorFactory, type Blackboard } from '../../src/orchestrator/factory.js';
import type { Outbound } from '../../src/ports/event-bus.js';
import { embedded } from '../helpers/blackboards.js';
import { waitFor } from '../helpers/wait.js';

/** What a restart picks up again: dispatches that may not have left, open approval requests. */
async function orchestratorOn(blackboard: Blackboard, answer: boolean) {
  const bus = new InProcessEventBus();
  const dispatched: TaskDispatch[] = [];
  const published: Outbound[] = [];
  bus.subscribe((m) => published.push(m));
  bus.registerAgent('script_writer', (task) => {
    dispatched.push(task);
    if (answer) void bus.sendResult(task.projectId, { taskId: task.taskId, fencingToken: task.fencingToken, status: 'completed', output: { script: 'S' }, actualCost: 0.1 });
  });
  const orchestrator = await OrchestratorFactory.createAndStart(blackboard, bus, { instanceId: answer ? 'second' : 'first', scheduler: { intervalSeconds: 0.02 } }, { logger: silentLogger() });
  return { orchestrator, bus, dispatched, published };
}

describe('restart', () => {
  it('dispatches a recent RUNNING attempt again, announces open approvals again, and ignores late heartbeats', async () => {
    const { blackboard, dispose } = await embedded.create();
    try {
      // The first process dispatches WRITE_SCRIPT, then dies with the dispatch undelivered.
      const first = await orchestratorOn(blackboard, false);
      const { taskIds } = await first.orchestrator.handleEvent({
        id: 'rs-1', type: 'PROJECT_CREATED', projectId: 'prj_rs', payload: { title: 'R' }, occurredAt: new Date().toISOString(),
      });
      await waitFor(() => first.dispatched.length === 1);
      await first.orchestrator.stop();
      expect((await blackboard.tasks.getTask(taskIds[0]!))!.status).toBe('RUNNING');

      const second = await orchestratorOn(blackboard, true);
      await waitFor(async () => (await blackboard.tasks.getTask(taskIds[0]!))!.status === 'COMPLETED');
      expect(second.dispatched).toHaveLength(1);
      expect(second.dispatched[0]).toMatchObject({ taskId: taskIds[0], attempt: 1, fencingToken: first.dispatched[0]!.fencingToken });
      await waitFor(async () => (await blackboard.projects.listApprovals('prj_rs', 'pending')).length === 1);
      await second.orchestrator.stop();

      // A third start announces the pending SCENE_WRITTEN request again.
      const third = await orchestratorOn(blackboard, true);
      const [pending] = await blackboard.projects.listApprovals('prj_rs', 'pending');
      expect(third.published.some((m) => m.kind === 'approval_requested' && m.body.approvalId === pending!.approvalId)).toBe(true);
      // A heartbeat that arrives after the result changes nothing and is not an error.
      await third.bus.sendHeartbeat('prj_rs', { taskId: taskIds[0]!, fencingToken: first.dispatched[0]!.fencingToken });
      // The same decision delivered twice has one effect and no error.
      await third.bus.sendDecision('prj_rs', { approvalId: pending!.approvalId, decision: 'approved', by: 'rev' });
      await third.bus.sendDecision('prj_rs', { approvalId: pending!.approvalId, decision: 'approved', by: 'rev' });
      expect(third.published.filter((m) => m.kind === 'dlq')).toEqual([]);
      expect((await blackboard.tasks.listByProject('prj_rs')).filter((t) => t.taskType === 'PLAN_SHOTS')).toHaveLength(1);
      await third.orchestrator.stop();
    } finally {
      await dispose();
    }
  });
});
