import { afterEach, describe, expect, it } from 'vitest';
import type { TaskDispatch } from '../../../src/domain/messages.js';
import {
  FOLLOW_UP_PIPELINE,
  allCompleted,
  completed,
  coreAgent,
  createDefectScope,
  createProject,
  eventually,
  refuseApprovalsOf,
  startInstance,
} from '../../helpers/defects.js';
import { connectTestNats } from '../../helpers/nats.js';

/**
 * Issue 15, defect 3: one failing follow-up fails other projects. Project P1's completed
 * task raises a checkpoint event whose approval request cannot be published (an event bus
 * that refuses P1's approval_requested, as NATS refuses a message over max_payload).
 * Project P2's result, handled in the same batch, must complete, its dependent be
 * promoted and its raised event be handled, without a restart. (Today the one failure
 * rejects the whole batch; P2's result counts as applied when retried, its raised event
 * stays in the outbox and its dependent PENDING.)
 */
let cleanup: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const fn of cleanup.reverse()) await fn().catch(() => undefined);
  cleanup = [];
});

describe('defect 3: a failing follow-up of one project in a results batch', () => {
  it("another project's result in the same batch completes and its follow-ups run", async () => {
    const scope = await createDefectScope();
    cleanup.push(() => scope.cleanup());
    const agentNc = await connectTestNats(`agent-${scope.id}`, scope.natsUrl);
    cleanup.push(() => agentNc.close());
    let answering = false;
    const held: TaskDispatch[] = [];
    const agent = coreAgent(agentNc, scope.subjectPrefix, (t) => {
      if (answering) return completed(t);
      held.push(t);
      return null;
    });
    await agentNc.flush();

    const a = await startInstance(scope, 'a', { pipeline: FOLLOW_UP_PIPELINE, wrapBus: refuseApprovalsOf('prj_d3_p1') });
    cleanup.push(() => a.stop());
    await createProject(a.orchestrator, 'prj_d3_p1', { checkpoints: ['STEP_DONE'] });
    await createProject(a.orchestrator, 'prj_d3_p2');
    const [t1] = (await a.orchestrator.submitTasks('prj_d3_p1', [{ taskType: 'ANALYZE_BRIEF' }])).taskIds;
    const p2 = await a.orchestrator.submitTasks('prj_d3_p2', [
      { taskId: 'tsk_d3p2first', taskType: 'ANALYZE_BRIEF' },
      { taskId: 'tsk_d3p2second', taskType: 'WRITE_SCRIPT', dependencies: ['tsk_d3p2first'] },
    ]);
    expect(p2.taskIds).toHaveLength(2);
    await eventually(() => held.some((d) => d.taskId === t1) && held.some((d) => d.taskId === 'tsk_d3p2first'), 'both first tasks dispatched');

    // The two results in one batch, P1's first.
    answering = true;
    const d1 = held.find((d) => d.taskId === t1)!;
    const d2 = held.find((d) => d.taskId === 'tsk_d3p2first')!;
    const outcomes = await Promise.allSettled([
      a.orchestrator.handleResult('prj_d3_p1', completed(d1)),
      a.orchestrator.handleResult('prj_d3_p2', completed(d2)),
    ]);
    // P2: its first task, its dependent and the follow-up its raised STEP_DONE created, all complete.
    const rows = await allCompleted(a.raw, 'prj_d3_p2', 3, 30_000, async () => `outbox ${(await a.raw.tasks.listOutbox(100)).map((e) => `${e.projectId}:${e.eventType}`).join(',') || 'empty'}`);
    expect(rows.map((r) => r.taskType).sort()).toEqual(['ANALYZE_BRIEF', 'WRITE_SCRIPT', 'WRITE_VOICEOVER_SCRIPT']);
    expect(agent.count('tsk_d3p2second')).toBeGreaterThanOrEqual(1);
    // P2's result was not refused for P1's sake.
    expect(outcomes[1]!.status === 'rejected' ? String((outcomes[1] as PromiseRejectedResult).reason) : 'fulfilled').toBe('fulfilled');
  });
});
