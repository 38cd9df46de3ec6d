import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { migrate } from '../../src/adapters/postgres/migrate.js';
import { PostgresProjectStore } from '../../src/adapters/postgres/project-store.js';
import type { PgSqlClient } from '../../src/adapters/postgres/sql-client.js';
import { PostgresTaskStore } from '../../src/adapters/postgres/task-store.js';
import { BudgetExceededError } from '../../src/errors.js';
import type { TaskRecord } from '../../src/ports/task-store.js';
import { at, ids, newTask, write } from '../contract/task-store.fixtures.js';
import { createTestSchema, type TestSchema } from '../helpers/pg-schema.js';

/**
 * Budget reservations at the store level on the real server: two pools (two
 * "processes") race for one project's budget. The limit is enforced by the transition
 * statement itself, so no interleaving can overspend.
 */
describe('budget reservations across two pools (PostgreSQL)', () => {
  const PROJECT = 'prj-budget';
  const RESERVE = 0.1; // not exact in binary floating point: the sums are SQL numerics
  const SPENT = 2.5;
  const LIMIT = 12.5; // SPENT + 100 reservations, exactly
  let schema: TestSchema;
  let sampler: PgSqlClient;
  let projects: PostgresProjectStore;
  let pools: [PostgresTaskStore, PostgresTaskStore];

  beforeAll(async () => {
    schema = await createTestSchema();
    const a = schema.client({ max: 10 });
    await migrate(a);
    pools = [new PostgresTaskStore(a), new PostgresTaskStore(schema.client({ max: 10 }))];
    projects = new PostgresProjectStore(a);
    sampler = schema.client({ max: 1 });
  });
  afterAll(async () => {
    await schema?.drop();
  });

  beforeEach(async () => {
    await sampler.query('TRUNCATE tasks, task_transitions, projects, outbox, processed_events RESTART IDENTITY');
    const project = { projectId: PROJECT, title: 'Budget race', budgetLimit: LIMIT, checkpoints: null };
    await projects.ingestEvent({ eventId: 'created', eventType: 'PROJECT_CREATED', projectId: PROJECT, at: at(0), by: 'orch-a', project, tasks: [] });
    // Something already spent: the limit counts it.
    await pools[0].createTasks([newTask('spent', { projectId: PROJECT, status: 'RUNNING' })], 'orch-a');
    await pools[0].applyTransition(
      write('spent', { from: 'RUNNING', to: 'COMPLETED', budget: { projectId: PROJECT, spend: SPENT, enforce: false } }),
    );
  });

  /** Samples spent + reserved against the limit, on its own connection, until `done` settles. */
  async function sampleUntil<T>(done: Promise<T>): Promise<{ result: T; samples: number; over: unknown[] }> {
    let finished = false;
    const settled = done.finally(() => {
      finished = true;
    });
    const over: unknown[] = [];
    let samples = 0;
    do {
      const { rows } = await sampler.query<{ within: boolean; used: number }>(
        'SELECT spent + reserved <= budget_limit AS within, spent + reserved AS used FROM projects WHERE project_id = $1',
        [PROJECT],
      );
      samples++;
      if (!rows[0]?.within) over.push(rows[0]);
    } while (!finished);
    return { result: await settled, samples, over };
  }

  async function budget(): Promise<{ spent: number; reserved: number }> {
    const p = (await projects.getProject(PROJECT))!;
    return { spent: p.spent, reserved: p.reserved };
  }

  it('lets exactly the 100 reservations that fit through, out of 200 concurrent ones', async () => {
    const taskIds = ids(200, 'r');
    await pools[0].createTasks(taskIds.map((id) => newTask(id, { projectId: PROJECT })), 'orch-a');
    const before = new Map((await pools[0].getTasks(taskIds)).map((t) => [t.taskId, t]));

    const storm = Promise.allSettled(
      taskIds.map((id, i) =>
        pools[i % 2]!.applyTransition(
          write(id, { to: 'READY', by: `orch-${i % 2}`, budget: { projectId: PROJECT, reserve: RESERVE, enforce: true } }),
        ),
      ),
    );
    const { result: results, samples, over } = await sampleUntil(storm);

    expect(samples).toBeGreaterThan(0);
    expect(over).toStrictEqual([]); // never over the limit, while it ran
    const won = taskIds.filter((_, i) => results[i]!.status === 'fulfilled');
    const lost = taskIds.filter((_, i) => results[i]!.status === 'rejected');
    expect(won).toHaveLength(100);
    expect(lost).toHaveLength(100);
    for (const r of results) {
      if (r.status === 'fulfilled') expect(r.value).toBe(2);
      else {
        expect(r.reason).toBeInstanceOf(BudgetExceededError);
        expect(r.reason).toMatchObject({ projectId: PROJECT, requested: RESERVE, remaining: 0 });
      }
    }
    expect(await budget()).toStrictEqual({ spent: SPENT, reserved: 10 });

    // The refused transitions wrote nothing: the rows and their audit are as created.
    const after = new Map((await pools[1].getTasks(taskIds)).map((t) => [t.taskId, t]));
    for (const id of lost) {
      expect(after.get(id)).toStrictEqual(before.get(id));
      expect(await pools[1].listTransitions(id)).toHaveLength(1);
    }
    for (const id of won) {
      expect(after.get(id)).toMatchObject<Partial<TaskRecord>>({ status: 'READY', version: 2 });
      expect((await pools[1].listTransitions(id)).map((t) => t.toStatus)).toStrictEqual(['PENDING', 'READY']);
    }
    expect(await pools[0].countByStatus(PROJECT)).toStrictEqual({ READY: 100, PENDING: 100, COMPLETED: 1 });
  });

  it('keeps reserved equal to the live reservations when releases race with reservations', async () => {
    const held = ids(100, 'h');
    const waiting = ids(100, 'w');
    await pools[0].createTasks([...held, ...waiting].map((id) => newTask(id, { projectId: PROJECT })), 'orch-a');
    for (const id of held) {
      await pools[0].applyTransition(write(id, { to: 'READY', budget: { projectId: PROJECT, reserve: RESERVE, enforce: true } }));
    }
    expect(await budget()).toStrictEqual({ spent: SPENT, reserved: 10 }); // full

    // Half the holders give their reservation back while the waiting tasks try to reserve.
    const released = held.slice(0, 50);
    const storm = Promise.allSettled([
      ...released.map((id, i) =>
        pools[i % 2]!.applyTransition(
          write(id, { from: 'READY', to: 'CANCELLED', expectedVersion: 2, budget: { projectId: PROJECT, release: RESERVE, enforce: false } }),
        ),
      ),
      ...waiting.map((id, i) =>
        pools[(i + 1) % 2]!.applyTransition(write(id, { to: 'READY', budget: { projectId: PROJECT, reserve: RESERVE, enforce: true } })),
      ),
    ]);
    const { result: results, over } = await sampleUntil(storm);

    expect(over).toStrictEqual([]);
    expect(results.slice(0, 50).every((r) => r.status === 'fulfilled')).toBe(true);
    const reservations = results.slice(50);
    const refused = reservations.filter((r): r is PromiseRejectedResult => r.status === 'rejected');
    for (const r of refused) expect(r.reason).toBeInstanceOf(BudgetExceededError);
    const granted = reservations.length - refused.length;
    expect(granted).toBeLessThanOrEqual(50);

    const counts = await pools[0].countByStatus(PROJECT);
    expect(counts).toStrictEqual({ READY: 50 + granted, CANCELLED: 50, PENDING: refused.length, COMPLETED: 1 });
    const { spent, reserved } = await budget();
    expect(spent).toBe(SPENT);
    expect(reserved).toBe(Number(((50 + granted) * RESERVE).toFixed(4)));
  });
});
