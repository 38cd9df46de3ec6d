import { createEmbeddedBlackboard } from '../adapters/blackboards.js';
import { InProcessEventBus } from '../adapters/memory/event-bus.js';
import type { DemoEnvironment } from './demo.js';

/** The demo on the embedded adapters: PGlite, the in-memory queue and leases, the in-process bus. */
export async function embeddedEnvironment(): Promise<DemoEnvironment> {
  const blackboard = await createEmbeddedBlackboard();
  const bus = new InProcessEventBus();
  return {
    blackboard,
    bus,
    async startAgent(agent, handle) {
      const unregister = bus.registerAgent(agent, async (task) => {
        const result = await handle(task);
        await bus.sendResult(task.projectId, { taskId: task.taskId, fencingToken: task.fencingToken, ...result });
      });
      return async () => unregister();
    },
    async observe(listener) {
      const unsubscribe = bus.subscribe(listener);
      return async () => unsubscribe();
    },
    decide: (projectId, decision) => bus.sendDecision(projectId, decision),
    close: () => blackboard.close(),
  };
}
