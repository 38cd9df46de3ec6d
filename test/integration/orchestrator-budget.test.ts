import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Redis } from 'ioredis';
import { InProcessEventBus } from '../../src/adapters/memory/event-bus.js';
import { sqlStores } from '../../src/adapters/blackboards.js';
import { RedisLockManager } from '../../src/adapters/redis/lock-manager.js';
import { RedisTaskQueue } from '../../src/adapters/redis/task-queue.js';
import type { TaskDispatch } from '../../src/domain/messages.js';
import { DEFAULT_TASK_TYPES } from '../../src/domain/task-types.js';
import { silentLogger } from '../../src/logger.js';
import { OrchestratorFactory, type Blackboard } from '../../src/orchestrator/factory.js';
import type { Orchestrator } from '../../src/orchestrator/orchestrator.js';
import { connectTestRedis, deleteKeysWithPrefix, randomPrefix } from '../helpers/redis.js';
import { createTestSchema, type TestSchema } from '../helpers/pg-schema.js';
import { migrate } from '../../src/adapters/postgres/migrate.js';
import { waitFor } from '../helpers/wait.js';

/**
 * Two orchestrator processes (own pools, own Redis connections, one schema and queue)
 * reserve budget for 200 tasks at once against a limit that fits 100.
 */
let schema: TestSchema;
let redis: Redis[] = [];
const prefix = randomPrefix('budget');

const pipeline = {
  name: 'batch',
  checkpoints: [],
  rules: [
    { on: 'PROJECT_CREATED', create: [] },
    { on: 'BATCH', create: [{ key: 'unit', type: 'RENDER_UNIT', forEach: '$payload.items', input: { item: '$item' } }] },
  ],
  emits: [],
};
const taskTypes = [...DEFAULT_TASK_TYPES, { name: 'RENDER_UNIT', description: 'one unit of work', agent: 'renderer', priority: 500, cost: { base: 1 } }];

async function orchestratorProcess(name: string, dispatched: TaskDispatch[]): Promise<{ orchestrator: Orchestrator; bus: InProcessEventBus }> {
  const sql = schema.client({ max: 8 });
  const r = connectTestRedis(name);
  redis.push(r);
  const blackboard: Blackboard = {
    ...sqlStores(sql),
    queue: new RedisTaskQueue({ redis: r, key: `${prefix}:queue` }),
    locks: new RedisLockManager({ redis: r, prefix }),
    close: async () => undefined,
  };
  const bus = new InProcessEventBus();
  // The agent takes the work and holds it: nothing completes, so reservations stay.
  bus.registerAgent('renderer', (task) => void dispatched.push(task));
  const orchestrator = await OrchestratorFactory.createAndStart(
    blackboard,
    bus,
    { instanceId: name, scheduler: { maxConcurrentTasks: 500, intervalSeconds: 0.05 }, approval: { enabled: false } },
    { logger: silentLogger(), pipeline, taskTypes },
  );
  return { orchestrator, bus };
}

beforeAll(async () => {
  schema = await createTestSchema();
  await migrate(schema.client({ max: 1 }));
});
afterAll(async () => {
  if (redis[0]) await deleteKeysWithPrefix(redis[0], prefix);
  for (const r of redis) r.disconnect();
  redis = [];
  await schema.drop();
});

describe('budget reservations under concurrency', () => {
  it('200 concurrent reservations against a limit for 100: exactly 100 run, the project pauses, raising the limit resumes the rest', async () => {
    const dispatched: TaskDispatch[] = [];
    const a = await orchestratorProcess('proc-a', dispatched);
    const b = await orchestratorProcess('proc-b', dispatched);
    const peaks: number[] = [];
    for (const p of [a, b]) p.bus.subscribe((m) => m.kind === 'budget' && peaks.push(m.body.spent + m.body.reserved));
    try {
      await a.orchestrator.handleEvent({ id: 'bud-created', type: 'PROJECT_CREATED', projectId: 'prj_bud', payload: { title: 'Batch', budget: 100 }, occurredAt: new Date().toISOString() });
      const items = (from: number) => Array.from({ length: 100 }, (_, i) => from + i);
      await Promise.all([
        a.orchestrator.handleEvent({ id: 'bud-a', type: 'BATCH', projectId: 'prj_bud', payload: { items: items(0) }, occurredAt: new Date().toISOString() }),
        b.orchestrator.handleEvent({ id: 'bud-b', type: 'BATCH', projectId: 'prj_bud', payload: { items: items(100) }, occurredAt: new Date().toISOString() }),
      ]);
      await waitFor(() => dispatched.length >= 100, { what: '100 dispatches' });
      const { projects } = sqlStores(schema.client({ max: 1 }));
      await waitFor(async () => (await projects.getProject('prj_bud'))!.state === 'paused', { what: 'pause' });
      // Give both schedulers more passes: nothing more may start.
      await a.orchestrator.dispatchTasks();
      await b.orchestrator.dispatchTasks();

      const project = (await projects.getProject('prj_bud'))!;
      expect(project).toMatchObject({ state: 'paused', pausedReason: 'budget_exhausted', spent: 0, reserved: 100 });
      expect(dispatched).toHaveLength(100);
      expect(new Set(dispatched.map((d) => d.taskId)).size).toBe(100);
      expect(Math.max(...peaks)).toBeLessThanOrEqual(100);
      const { tasks } = sqlStores(schema.client({ max: 1 }));
      const counts = await tasks.countByStatus('prj_bud');
      expect(counts).toMatchObject({ RUNNING: 100, PENDING: 100 });
      expect((await a.orchestrator.getBudgetStatus('prj_bud')).level).toBe('exhausted');

      await b.orchestrator.setBudget('prj_bud', 200);
      await waitFor(() => dispatched.length === 200, { what: '200 dispatches' });
      expect(new Set(dispatched.map((d) => d.taskId)).size).toBe(200);
      const after = (await projects.getProject('prj_bud'))!;
      expect(after).toMatchObject({ state: 'active', reserved: 200 });
    } finally {
      await a.orchestrator.stop();
      await b.orchestrator.stop();
    }
  });
});
