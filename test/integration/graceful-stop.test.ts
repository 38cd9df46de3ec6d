import { afterEach, expect, it } from 'vitest';
import { InProcessEventBus } from '../../src/adapters/memory/event-bus.js';
import type { TaskDispatch } from '../../src/domain/messages.js';
import { silentLogger } from '../../src/logger.js';
import { OrchestratorFactory } from '../../src/orchestrator/factory.js';
import { embedded } from '../helpers/blackboards.js';
import { waitFor } from '../helpers/wait.js';

/** The in-process bus, but dispatches of EDIT_IMAGE are handed over only when the test opens the gate. */
class GatedBus extends InProcessEventBus {
  readonly held: TaskDispatch[] = [];
  private open!: () => void;
  private readonly gate = new Promise<void>((resolve) => (this.open = resolve));

  override async dispatchTask(agent: string, task: TaskDispatch): Promise<void> {
    if (task.taskType === 'EDIT_IMAGE') {
      this.held.push(task);
      await this.gate;
    }
    return super.dispatchTask(agent, task);
  }

  release(): void {
    this.open();
  }
}

let cleanup: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const fn of cleanup.reverse()) await fn();
  cleanup = [];
});

it('stop() waits for the dispatches a scheduler pass handed to the bus, which no longer holds the pass up', async () => {
  const { blackboard, dispose } = await embedded.create();
  cleanup.push(dispose);
  const bus = new GatedBus();
  const orchestrator = await OrchestratorFactory.createAndStart(
    blackboard,
    bus,
    { instanceId: 'graceful', scheduler: { intervalSeconds: 0.02 }, approval: { enabled: false } },
    { logger: silentLogger() },
  );
  let stopped = false;
  cleanup.push(async () => {
    bus.release();
    if (!stopped) await orchestrator.stop();
  });
  await orchestrator.handleEvent({
    id: 'evt-graceful',
    type: 'PROJECT_CREATED',
    projectId: 'prj_graceful',
    payload: { title: 'T', brief: 'a brief', budget: 100 },
    occurredAt: new Date().toISOString(),
  });
  // Created while the project is paused: PENDING; the resume promotes them to READY and a
  // scheduler pass (not the dispatch at creation) writes them RUNNING and dispatches them.
  await orchestrator.pauseProject('prj_graceful');
  const { taskIds } = await orchestrator.submitTasks('prj_graceful', [{ taskType: 'EDIT_IMAGE' }, { taskType: 'EDIT_IMAGE' }]);
  await orchestrator.resumeProject('prj_graceful');
  await waitFor(() => bus.held.length === 2, { what: 'both dispatches handed to the bus' });
  // RUNNING is durable before the dispatch: the pass went on (another pass runs) while the bus holds them.
  const rows = await blackboard.tasks.getTasks(taskIds);
  expect(rows.map((r) => r.status)).toEqual(['RUNNING', 'RUNNING']);
  expect(await orchestrator.dispatchTasks()).toBe(0);

  const stopping = orchestrator.stop().then(() => (stopped = true));
  await new Promise((resolve) => setTimeout(resolve, 100));
  expect(stopped).toBe(false);
  bus.release();
  await stopping;
  expect(stopped).toBe(true);
});
