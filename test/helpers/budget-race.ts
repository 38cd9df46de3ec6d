import { afterAll, beforeAll, beforeEach, expect } from 'vitest';
import { sqlStores, type SqlStores } from '../../src/adapters/blackboards.js';
import { migrate } from '../../src/adapters/postgres/migrate.js';
import type { PgSqlClient } from '../../src/adapters/postgres/sql-client.js';
import type { TaskRecord } from '../../src/ports/task-store.js';
import { at, newTask, write } from '../contract/task-store.fixtures.js';
import { createTestSchema, type TestSchema } from './pg-schema.js';

export const RESERVE = 0.1; // not exact in binary floating point: the sums are SQL numerics
export const SPENT = 2.5;
export const LIMIT = 12.5; // SPENT + 100 reservations, exactly

/**
 * The stage of a budget race on the real server, for a describe block: an own schema,
 * two pools (two "processes"), and before each test one project with SPENT already spent
 * and a limit that fits exactly 100 reservations of RESERVE.
 */
export function budgetRace(projectId: string, title: string) {
  let schema: TestSchema;
  let sampler: PgSqlClient;
  const stage = {
    /** The stores over each pool: `tasks` to set up and read, `commit` to race. */
    pools: undefined as unknown as [SqlStores, SqlStores],
    /** Samples spent + reserved against the limit, on its own connection, until `done` settles. */
    async sampleUntil<T>(done: Promise<T>): Promise<{ result: T; samples: number; over: unknown[] }> {
      let finished = false;
      const settled = done.finally(() => {
        finished = true;
      });
      const over: unknown[] = [];
      let samples = 0;
      do {
        const { rows } = await sampler.query<{ within: boolean; used: number }>(
          'SELECT spent + reserved <= budget_limit AS within, spent + reserved AS used FROM projects WHERE project_id = $1',
          [projectId],
        );
        samples++;
        if (!rows[0]?.within) over.push(rows[0]);
      } while (!finished);
      return { result: await settled, samples, over };
    },
    async budget(): Promise<{ spent: number; reserved: number }> {
      const p = (await stage.pools[0].projects.getProject(projectId))!;
      return { spent: p.spent, reserved: p.reserved };
    },
    /**
     * After a race of PENDING → READY reservations: the refused tasks wrote nothing (row and
     * audit as created, `before`), the accepted ones are READY at version 2 with the step audited.
     */
    async expectOnlyWinnersPromoted(won: readonly string[], lost: readonly string[], before: Map<string, TaskRecord>): Promise<void> {
      const after = new Map((await stage.pools[1].tasks.getTasks([...won, ...lost])).map((t) => [t.taskId, t]));
      for (const id of lost) {
        expect(after.get(id)).toStrictEqual(before.get(id));
        expect(await stage.pools[1].tasks.listTransitions(id)).toHaveLength(1);
      }
      for (const id of won) {
        expect(after.get(id)).toMatchObject<Partial<TaskRecord>>({ status: 'READY', version: 2 });
        expect((await stage.pools[1].tasks.listTransitions(id)).map((t) => t.toStatus)).toStrictEqual(['PENDING', 'READY']);
      }
    },
  };
  beforeAll(async () => {
    schema = await createTestSchema();
    const a = schema.client({ max: 10 });
    await migrate(a);
    stage.pools = [sqlStores(a), sqlStores(schema.client({ max: 10 }))];
    sampler = schema.client({ max: 1 });
  });
  afterAll(async () => {
    await schema?.drop();
  });
  beforeEach(async () => {
    await sampler.query('TRUNCATE tasks, task_transitions, projects, outbox, processed_events RESTART IDENTITY');
    const project = { projectId, title, budgetLimit: LIMIT, checkpoints: null };
    await stage.pools[0].commit.ingestEvent({ eventId: 'created', eventType: 'PROJECT_CREATED', projectId, at: at(0), by: 'orch-a', project, tasks: [] });
    // Something already spent: the limit counts it.
    await stage.pools[0].tasks.createTasks([newTask('spent', { projectId, status: 'RUNNING' })], 'orch-a');
    await stage.pools[0].commit.applyTransition(write('spent', { from: 'RUNNING', to: 'COMPLETED', budget: { projectId, spend: SPENT, enforce: false } }));
  });
  return stage;
}
