import { describe, expect, it } from 'vitest';
import { createActor, type AnyActorRef, type InspectionEvent } from 'xstate';
import { InProcessEventBus } from '../../src/adapters/memory/event-bus.js';
import { silentLogger } from '../../src/logger.js';
import { taskMachine } from '../../src/machines/task-machine.js';
import { OrchestratorFactory } from '../../src/orchestrator/factory.js';
import { servers } from '../helpers/blackboards.js';

/**
 * One actor system per orchestrator: a root whose children are the scheduler and the
 * project actors; task actors are passivated, and under their project's actor once
 * activated. Over real PostgreSQL and Redis.
 */
describe('the actor system of an orchestrator', () => {
  it('root → scheduler and root → project → task (activated), before and after a restart; a task actor error leaves its project running', async () => {
    const { blackboard, dispose } = await servers.create();
    const events: InspectionEvent[] = [];
    const make = () =>
      OrchestratorFactory.create(blackboard, new InProcessEventBus(), { instanceId: 'sup', approval: { enabled: true } }, {
        logger: silentLogger(),
        inspect: (e) => events.push(e),
      });
    let orchestrator = make();
    try {
      await orchestrator.start();
      const { taskIds } = await orchestrator.handleEvent({
        id: 'sup-1', type: 'PROJECT_CREATED', projectId: 'prj_sup', payload: { title: 'S' }, occurredAt: new Date().toISOString(),
      });
      const taskId = taskIds[0]!;
      let { system } = orchestrator.core;
      let root = system.root;
      expect(Object.keys(root.getSnapshot().children).sort()).toEqual(['project:prj_sup', 'scheduler']);
      expect(system.system.get('scheduler')!._parent).toBe(root);
      expect(system.system.get('scheduler')).toBe(orchestrator.scheduler.ref);
      const project = system.system.get('project:prj_sup')!;
      expect(project).toBe(orchestrator.core.projectActors.get('prj_sup')!.ref);
      expect(project._parent).toBe(root);

      // The task actor is passivated: no XState actor runs for it, until activated.
      expect(system.system.get(`task:${taskId}`)).toBeUndefined();
      const task = await orchestrator.core.registry.activate(taskId);
      expect(system.system.get(`task:${taskId}`)).toBe(task);
      expect(task._parent).toBe(project);
      const row = await blackboard.tasks.getTask(taskId);
      expect(task.getSnapshot().value).toBe(row!.status);
      // XState inspects the live actor under the same root as the project's.
      const projectRoot = events.find((e) => e.type === '@xstate.actor' && e.actorRef === project)!.rootId;
      expect(events.find((e) => e.type === '@xstate.actor' && e.actorRef === task)!.rootId).toBe(projectRoot);

      // The live actor takes every step committed from now on (no agent answers: it is RUNNING).
      expect(row!.status).toBe('RUNNING');
      await orchestrator.handleHeartbeat('prj_sup', { taskId, fencingToken: row!.fencingToken! });
      const beaten = await blackboard.tasks.getTask(taskId);
      expect(beaten!.deadline!.getTime()).toBeGreaterThan(row!.deadline!.getTime());
      expect(task.getSnapshot().context.deadline).toBe(beaten!.deadline!.getTime());
      await orchestrator.handleResult('prj_sup', { taskId, fencingToken: row!.fencingToken!, status: 'completed', output: { script: 'S' }, actualCost: 0.2 });
      expect(task.getSnapshot().value).toBe('COMPLETED');
      // A final task's live actor is done and gone from the system; its registry entry too.
      expect(system.system.get(`task:${taskId}`)).toBeUndefined();
      expect(system.activeTask(taskId)).toBeUndefined();

      // Restart: a new root; the project actor is again its child, and a task activated under it.
      await orchestrator.stop();
      expect(Object.keys(root.getSnapshot().children)).toEqual(['scheduler']);
      orchestrator = make();
      await orchestrator.start();
      ({ system } = orchestrator.core);
      expect(system.root).not.toBe(root);
      root = system.root;
      const restoredProject = system.system.get('project:prj_sup')!;
      expect(restoredProject._parent).toBe(root);
      const waiting = (await blackboard.tasks.listByProject('prj_sup', ['WAITING_APPROVAL']))[0]!;
      const restored = await orchestrator.core.registry.activate(waiting.taskId);
      expect(restored._parent).toBe(restoredProject);
      expect(restored.getSnapshot().value).toBe('WAITING_APPROVAL');

      // A task actor's error is its project's to record: neither the project nor the root goes down.
      restoredProject.send({ type: 'xstate.error.actor.x', error: new Error('boom') } as never);
      expect(restoredProject.getSnapshot().status).toBe('active');
      expect((restoredProject.getSnapshot().context as { lastChildError: string }).lastChildError).toContain('boom');
      expect(root.getSnapshot().status).toBe('active');
      // Released when its actor is evicted (here: the orchestrator stops).
      await orchestrator.stop();
      expect(restored.getSnapshot().status).toBe('stopped');
      expect(system.system.get(`task:${waiting.taskId}`)).toBeUndefined();
    } finally {
      await orchestrator.stop();
      await dispose();
    }
  });

  it("a project actor's error leaves the root and the orchestrator running; the project actor is loaded again from its row", async () => {
    const { blackboard, dispose } = await servers.create();
    const orchestrator = await OrchestratorFactory.createAndStart(blackboard, new InProcessEventBus(), { instanceId: 'sup3', approval: { enabled: true } }, {
      logger: silentLogger(),
    });
    try {
      await orchestrator.handleEvent({
        id: 'sup-3', type: 'PROJECT_CREATED', projectId: 'prj_sup3', payload: { title: 'S' }, occurredAt: new Date().toISOString(),
      });
      const { system } = orchestrator.core;
      const failing = system.system.get('project:prj_sup3')!;
      // A real failure inside the project actor: told to stop an actor that is not its child.
      const stranger = createActor(taskMachine, { input: { taskId: 'tsk_x', projectId: 'prj_x', taskType: 'WRITE_SCRIPT', maxAttempts: 1 } });
      failing.send({ type: 'RELEASE_TASK', ref: stranger });
      expect(failing.getSnapshot().status).toBe('error');
      expect(system.root.getSnapshot().status).toBe('active');
      expect(system.root.getSnapshot().context.lastChildError).toMatchObject({ child: 'project:prj_sup3' });
      // Dropped: out of the root and of the project actors.
      expect(Object.keys(system.root.getSnapshot().children)).toEqual(['scheduler']);
      expect(orchestrator.core.projectActors.get('prj_sup3')).toBeUndefined();

      // The next use loads it again, from its row, as a child of the same root.
      const paused = await orchestrator.pauseProject('prj_sup3', 'after the failure');
      expect(paused.state).toBe('paused');
      const reloaded = system.system.get('project:prj_sup3')!;
      expect(reloaded).not.toBe(failing);
      expect(reloaded._parent).toBe(system.root);
      expect(reloaded.getSnapshot().value).toMatchObject({ lifecycle: 'paused' });
      expect((await orchestrator.resumeProject('prj_sup3')).state).toBe('active');
      // The other children were not touched.
      expect(system.scheduler!.getSnapshot().status).toBe('active');
      expect(system.scheduler).toBe(orchestrator.scheduler.ref);
    } finally {
      await orchestrator.stop();
      await dispose();
    }
  });

  it('the hot path runs no XState actor per task and no inspection when inspection is off', async () => {
    const { blackboard, dispose } = await servers.create();
    const orchestrator = await OrchestratorFactory.createAndStart(blackboard, new InProcessEventBus(), { instanceId: 'sup2', approval: { enabled: false } }, {
      logger: silentLogger(),
    });
    try {
      const { taskIds } = await orchestrator.handleEvent({
        id: 'sup-2', type: 'PROJECT_CREATED', projectId: 'prj_sup2', payload: { title: 'S' }, occurredAt: new Date().toISOString(),
      });
      const { system } = orchestrator.core;
      expect(system.inspection).toBeUndefined();
      expect(taskIds.length).toBeGreaterThan(0);
      for (const id of taskIds) expect(system.system.get(`task:${id}`)).toBeUndefined();
      expect([...orchestrator.core.registry.liveActors()].some((a) => a.activated)).toBe(false);
      expect(Object.keys(system.root.getSnapshot().children as Record<string, AnyActorRef>).sort()).toEqual(['project:prj_sup2', 'scheduler']);
    } finally {
      await orchestrator.stop();
      await dispose();
    }
  });
});
