import { describe, expect, it } from 'vitest';
import { createServer } from 'node:net';
import { WebSocketServer } from 'ws';
import { InProcessEventBus } from '../../src/adapters/memory/event-bus.js';
import { connectStatelyInspector } from '../../src/inspect/stately.js';
import { silentLogger } from '../../src/logger.js';
import { OrchestratorFactory } from '../../src/orchestrator/factory.js';
import { embedded } from '../helpers/blackboards.js';
import { waitFor } from '../helpers/wait.js';

interface StatelyEvent {
  type: string;
  name?: string;
  sessionId: string;
  rootId?: string;
  snapshot?: { value?: unknown };
  definition?: string;
  event?: { type: string };
}

async function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const srv = createServer().listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as { port: number };
      srv.close(() => resolve(port));
    });
  });
}

describe('Stately inspector', () => {
  it('streams the Stately-format inspection events of running task machines to a local WebSocket server', async () => {
    const server = new WebSocketServer({ host: '127.0.0.1', port: 0 });
    await new Promise((r) => server.once('listening', r));
    const received: StatelyEvent[] = [];
    server.on('connection', (socket) => socket.on('message', (data) => received.push(JSON.parse(String(data)) as StatelyEvent)));
    const { port } = server.address() as { port: number };

    const inspection = await connectStatelyInspector({ url: `ws://127.0.0.1:${port}`, logger: silentLogger() });
    expect(inspection).not.toBeNull();
    const { blackboard, dispose } = await embedded.create();
    const bus = new InProcessEventBus();
    bus.registerAgent('script_writer', (task) =>
      void bus.sendResult(task.projectId, { taskId: task.taskId, fencingToken: task.fencingToken, status: 'completed', output: { script: 'S' }, actualCost: 0.2 }),
    );
    const orchestrator = await OrchestratorFactory.createAndStart(blackboard, bus, { instanceId: 'insp', scheduler: { intervalSeconds: 0.02 } }, {
      logger: silentLogger(),
      inspect: inspection!.observer,
    });
    try {
      const { taskIds } = await orchestrator.handleEvent({
        id: 'insp-1', type: 'PROJECT_CREATED', projectId: 'prj_insp', payload: { title: 'I', budget: 10 }, occurredAt: new Date().toISOString(),
      });
      const values = () => received.filter((e) => e.type === '@xstate.snapshot' && e.sessionId && e.snapshot).map((e) => e.snapshot!.value);
      await waitFor(() => values().includes('COMPLETED'), { what: 'a task snapshot COMPLETED' });

      const taskActor = received.find((e) => e.type === '@xstate.actor' && e.name === taskIds[0]);
      expect(taskActor).toBeDefined();
      // The definition travels with the actor, so the inspector can draw the task machine.
      expect(JSON.parse(taskActor!.definition!)).toMatchObject({ id: 'task', initial: 'PENDING' });
      const projectActor = received.find((e) => e.type === '@xstate.actor' && e.name === 'project:prj_insp');
      expect(projectActor).toBeDefined();
      // The task machine is inspected under its project's actor system.
      expect(taskActor!.rootId).toBe(projectActor!.rootId);
      expect(received.some((e) => e.type === '@xstate.actor' && e.name === 'scheduler')).toBe(true);
      const taskEvents = received.filter((e) => e.type === '@xstate.event' && e.sessionId === taskActor!.sessionId).map((e) => e.event!.type);
      expect(taskEvents).toEqual(expect.arrayContaining(['DEPENDENCIES_MET', 'DISPATCH', 'COMPLETE']));
      expect(values()).toEqual(expect.arrayContaining(['READY', 'RUNNING', 'COMPLETED']));
      expect(taskIds).toHaveLength(1);
    } finally {
      await orchestrator.stop();
      await inspection!.close();
      await dispose();
      await new Promise((r) => server.close(r));
    }
  });

  it('gives up cleanly when nothing listens', async () => {
    const port = await freePort();
    const inspection = await connectStatelyInspector({ url: `ws://127.0.0.1:${port}`, logger: silentLogger(), connectTimeoutMs: 2000 });
    expect(inspection).toBeNull();
  });

  it('refuses a URL that is not a WebSocket URL', async () => {
    await expect(connectStatelyInspector({ url: 'http://127.0.0.1:1', logger: silentLogger() })).rejects.toThrow(/ws:\/\//);
  });
});
