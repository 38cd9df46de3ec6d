import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SimulatedClock } from 'xstate';
import { PostgresCommit } from '../../src/adapters/postgres/commit.js';
import { PostgresTaskStore } from '../../src/adapters/postgres/task-store.js';
import { TaskRegistry } from '../../src/actors/task-registry.js';
import { persistSnapshot, snapshotForRecord } from '../../src/actors/task-snapshot.js';
import { TaskTypeCatalog } from '../../src/domain/task-types.js';
import { IllegalTransitionError, StaleFencingTokenError, VersionConflictError } from '../../src/errors.js';
import { silentLogger } from '../../src/logger.js';
import { statusOf } from '../../src/machines/task-machine.js';
import { ALLOWED, EVENTS, SITUATIONS, T0, pathTo, statusOfSituation, type Situation } from '../helpers/transition-table.js';
import { pgliteDatabase, type TestDatabase } from '../helpers/stores.js';

/**
 * The persisted task actor against the real SQL store (PGlite, the same SQL as
 * PostgreSQL): every (state, event) pair, durability before acknowledgement, refusals
 * that change nothing.
 */
let db: TestDatabase;
let store: PostgresTaskStore;
let commit: PostgresCommit;
let seq = 0;

function registry(instanceId = 'test-1'): TaskRegistry {
  const clock = new SimulatedClock();
  clock.set(T0);
  return new TaskRegistry({ store, commit, instanceId, logger: silentLogger(), catalog: new TaskTypeCatalog(), clock, defaultTimeoutMs: 60_000 });
}

async function taskIn(reg: TaskRegistry, situation: Situation): Promise<string> {
  const { maxAttempts, events } = pathTo(situation);
  const taskId = `t${++seq}`;
  await reg.createTasks([{ taskId, projectId: 'prj_1', taskType: 'GENERATE_KEYFRAME', maxAttempts }]);
  for (const event of events) await reg.send(taskId, event, event.type === 'DISPATCH' ? {} : { fencingToken: 1 });
  return taskId;
}

beforeAll(async () => {
  db = await pgliteDatabase();
  store = new PostgresTaskStore(db.sql);
  commit = new PostgresCommit(db.sql);
});
afterAll(async () => db.close());

describe('TaskActor over the SQL store', () => {
  for (const situation of SITUATIONS) {
    for (const [key, event] of Object.entries(EVENTS)) {
      const expected = ALLOWED[situation][key];
      it(`${situation} + ${key}: ${expected ? `→ ${expected.to}, durable` : 'refused, nothing changes'}`, async () => {
        const reg = registry();
        const taskId = await taskIn(reg, situation);
        const actor = await reg.get(taskId);
        const before = await store.getTask(taskId);
        const snapshotBefore = actor.getSnapshot();
        const auditBefore = (await store.listTransitions(taskId)).length;
        const options = event.type === 'DISPATCH' ? {} : { fencingToken: snapshotBefore.context.fencingToken ?? undefined };
        if (expected) {
          const t = await reg.send(taskId, event, options);
          expect(t.to).toBe(expected.to);
          const after = await store.getTask(taskId);
          expect(after!.status).toBe(expected.to);
          expect(after!.version).toBe(before!.version + 1);
          // The row restores the very snapshot the actor holds (from its columns when it stores none).
          expect(snapshotForRecord(after!).persisted).toEqual(persistSnapshot(t.snapshot));
          const audit = await store.listTransitions(taskId);
          expect(audit).toHaveLength(auditBefore + 1);
          expect(audit.at(-1)).toMatchObject({ fromStatus: statusOfSituation(situation), toStatus: expected.to, event: event.type, by: 'test-1' });
          for (const [k, v] of Object.entries(expected.context)) {
            expect(t.snapshot.context[k as keyof typeof t.snapshot.context], k).toEqual(v);
          }
        } else {
          const err = await reg.send(taskId, event, options).catch((e: unknown) => e);
          expect(err).toBeInstanceOf(IllegalTransitionError);
          expect((err as IllegalTransitionError).state).toBe(statusOfSituation(situation));
          expect((err as IllegalTransitionError).event).toBe(event.type);
          expect((err as Error).message).toContain(event.type);
          expect(actor.getSnapshot()).toBe(snapshotBefore);
          expect(await store.getTask(taskId)).toEqual(before);
          expect(await store.listTransitions(taskId)).toHaveLength(auditBefore);
        }
      });
    }
  }

  it('refuses a result carrying an older fencing token, changing nothing', async () => {
    const reg = registry();
    const taskId = await taskIn(reg, 'READY');
    await reg.send(taskId, { type: 'DISPATCH', at: T0, fencingToken: 7, deadline: T0 + 1000 });
    const before = await store.getTask(taskId);
    const err = await reg.send(taskId, { type: 'COMPLETE', at: T0, actualCost: 1 }, { fencingToken: 6 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(StaleFencingTokenError);
    expect(await store.getTask(taskId)).toEqual(before);
    expect(statusOf((await reg.get(taskId)).getSnapshot())).toBe('RUNNING');
  });

  it('a transition computed from a stale copy is decided again on the row, never refused for the stale view', async () => {
    const a = registry('proc-a');
    const b = registry('proc-b');
    const taskId = await taskIn(a, 'PENDING');
    await b.send(taskId, { type: 'DEPENDENCIES_MET', at: T0 });
    // a holds the task as PENDING; the row is READY (version 2): CANCEL applies to the row.
    const t = await a.send(taskId, { type: 'CANCEL', at: T0, reason: 'x' });
    expect(t.from).toBe('READY');
    expect((await store.getTask(taskId))!.status).toBe('CANCELLED');
  });

  it('an event the stale copy refuses but the row accepts is applied; one the row refuses is refused with the row\'s state', async () => {
    const a = registry('proc-a');
    const b = registry('proc-b');
    const taskId = await taskIn(a, 'PENDING');
    await b.send(taskId, { type: 'DEPENDENCIES_MET', at: T0 });
    await b.send(taskId, { type: 'DISPATCH', at: T0, fencingToken: 7, deadline: T0 + 60_000 });
    // a still holds PENDING: COMPLETE is illegal there, legal on the RUNNING row.
    const done = await a.send(taskId, { type: 'COMPLETE', at: T0, actualCost: 0.1 }, { fencingToken: 7, output: {} });
    expect(done).toMatchObject({ from: 'RUNNING', to: 'COMPLETED' });
    const err = await b.send(taskId, { type: 'CANCEL', at: T0, reason: 'late' }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(IllegalTransitionError);
    expect(String(err)).toContain('COMPLETED');
    expect((await store.getTask(taskId))!.status).toBe('COMPLETED');
  });

  it('final tasks hold no live actor', async () => {
    const reg = registry();
    const taskId = await taskIn(reg, 'RUNNING');
    expect(reg.liveCount).toBe(1);
    await reg.send(taskId, { type: 'COMPLETE', at: T0, actualCost: 0.5 }, { fencingToken: 1, output: { image: 'k.png' } });
    expect(reg.liveCount).toBe(0);
    const row = await store.getTask(taskId);
    expect(row).toMatchObject({ status: 'COMPLETED', actualCost: 0.5, output: { image: 'k.png' } });
  });
});
