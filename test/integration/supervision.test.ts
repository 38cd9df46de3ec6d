import { describe, expect, it } from 'vitest';
import type { AnyActorRef, InspectionEvent } from 'xstate';
import { InProcessEventBus } from '../../src/adapters/memory/event-bus.js';
import { silentLogger } from '../../src/logger.js';
import { OrchestratorFactory } from '../../src/orchestrator/factory.js';
import { embedded } from '../helpers/blackboards.js';

/** Project actors supervise their task actors: children in the project's actor system. */
describe('project actor supervision', () => {
  it('task actors are children of their project actor, before and after a restart, and visible to its inspector', async () => {
    const { blackboard, dispose } = await embedded.create();
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
      const project = orchestrator.core.projectActors.get('prj_sup')!;
      const task = await orchestrator.core.registry.get(taskIds[0]!);
      expect(task.supervisor).toBe(project.ref);
      expect(project.ref.system.get(`task:${taskIds[0]}`)).toBeDefined();
      // The task's inspection events come from the project's actor system (same root).
      const projectRoot = events.find((e) => e.type === '@xstate.actor' && e.actorRef === project.ref)!.rootId;
      const taskEvents = events.filter((e) => (e.actorRef as AnyActorRef).id === taskIds[0]);
      expect(taskEvents.length).toBeGreaterThan(0);
      expect(taskEvents.every((e) => e.rootId === projectRoot)).toBe(true);

      // Restart: the restored task actor is again a child of the (new) project actor.
      await orchestrator.stop();
      orchestrator = make();
      await orchestrator.start();
      const restoredProject = orchestrator.core.projectActors.get('prj_sup')!;
      const restored = await orchestrator.core.registry.get(taskIds[0]!);
      expect(restored.supervisor).toBe(restoredProject.ref);

      // A task actor that errors does not take its project actor down.
      restoredProject.ref.send({ type: 'xstate.error.actor.x', error: new Error('boom') } as never);
      expect(restoredProject.ref.getSnapshot().status).toBe('active');
      expect(restoredProject.ref.getSnapshot().context.lastChildError).toContain('boom');
    } finally {
      await orchestrator.stop();
      await dispose();
    }
  });
});
