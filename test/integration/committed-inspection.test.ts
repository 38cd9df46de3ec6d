import { describe, expect, it } from 'vitest';
import type { AnyActorRef, InspectionEvent } from 'xstate';
import { PassivatedTaskRef } from '../../src/inspect/committed-steps.js';
import { servers } from '../helpers/blackboards.js';
import { startHarness } from '../helpers/pipeline-harness.js';

/**
 * The inspector is fed from committed transitions: with every task actor passivated (no
 * XState actor runs for a task), an inspection observer still receives a snapshot for
 * every transition the audit log holds, in the same order, under the task's project.
 */
describe('inspection from committed transitions', () => {
  it('a whole project, with a rejection, a QA repair and a retry: one inspected step per audit row, for every task', async () => {
    const { blackboard, dispose } = await servers.create();
    const events: InspectionEvent[] = [];
    const failedOnce = new Set<string>();
    const h = await startHarness(blackboard, {
      inspect: (e) => events.push(e),
      reviewer: (req, n) =>
        req.checkpoint === 'SCENE_WRITTEN' && n === 1
          ? { decision: 'rejected', comment: 'darker', by: 'director' }
          : { decision: 'approved', by: 'director' },
      simulation: { failQaOnce: [1] },
      // The voice-over's first attempt fails: FAIL, then RETRY, DEPENDENCIES_MET, DISPATCH again.
      agentOverride: (task) => {
        if (task.taskType !== 'GENERATE_VOICEOVER' || failedOnce.has(task.taskId)) return undefined;
        failedOnce.add(task.taskId);
        return { status: 'failed', error: 'voice model overloaded' };
      },
    });
    try {
      const { system } = h.orchestrator.core;
      await h.orchestrator.handleEvent({
        id: 'evt-ci', type: 'PROJECT_CREATED', projectId: 'prj_ci',
        payload: { title: 'T', brief: 'a brief', budget: 100 }, occurredAt: new Date().toISOString(),
      });
      await h.waitForProjectState('prj_ci', 'completed');
      await h.stop();

      const tasks = await blackboard.tasks.listByProject('prj_ci');
      expect(tasks.length).toBeGreaterThan(15);
      expect(failedOnce.size).toBe(1);
      const isTask = (e: InspectionEvent) => e.actorRef instanceof PassivatedTaskRef;
      // Passivated throughout: every task machine the inspector saw is a stand-in, none a live actor.
      const liveTaskActors = events.filter((e) => e.type === '@xstate.actor' && !isTask(e) && (e.actorRef as AnyActorRef).id.startsWith('tsk_'));
      expect(liveTaskActors).toEqual([]);
      const project = events.find((e) => e.type === '@xstate.actor' && (e.actorRef as AnyActorRef).id === 'project:prj_ci')!.actorRef;

      let audited = 0;
      let inspected = 0;
      for (const task of tasks) {
        const audit = await blackboard.tasks.listTransitions(task.taskId);
        const mine = events.filter((e) => isTask(e) && (e.actorRef as PassivatedTaskRef).id === task.taskId);
        const announced = mine.filter((e) => e.type === '@xstate.actor');
        expect(announced, task.taskType).toHaveLength(1);
        // Under its project's actor, in the one system.
        expect((announced[0]!.actorRef as PassivatedTaskRef)._parent).toBe(project);
        expect(new Set(mine.map((e) => e.rootId))).toEqual(new Set([system.root.sessionId]));
        const steps = mine.flatMap((e) => (e.type === '@xstate.snapshot' ? [`${e.event.type}→${(e.snapshot as unknown as { value: string }).value}`] : []));
        const rows = audit.map((r) => `${r.event === 'CREATED' ? 'xstate.init' : r.event}→${r.toStatus}`);
        expect(steps, `${task.taskType} ${task.taskId}`).toEqual(rows);
        // Each snapshot follows the event that led to it.
        const kinds = mine.filter((e) => e.type !== '@xstate.actor').map((e) => e.type);
        expect(kinds).toEqual(rows.flatMap(() => ['@xstate.event', '@xstate.snapshot']));
        audited += audit.length;
        inspected += steps.length;
      }
      expect(inspected).toBe(audited);
      // The run took every kind of step.
      const stepTypes = new Set(events.filter((e) => isTask(e) && e.type === '@xstate.event').map((e) => (e as { event: { type: string } }).event.type));
      for (const type of ['xstate.init', 'DEPENDENCIES_MET', 'APPROVE', 'REJECT', 'DISPATCH', 'COMPLETE', 'FAIL', 'RETRY']) expect(stepTypes).toContain(type);
      // A final task is no longer followed (the inspection holds only live tasks).
      expect(system.inspection!.followed).toBe(tasks.filter((t) => t.status !== 'COMPLETED' && t.status !== 'CANCELLED').length);
    } finally {
      await h.stop();
      await dispose();
    }
  });
});
