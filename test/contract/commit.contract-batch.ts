import { expect, it } from 'vitest';
import {
  BudgetExceededError,
  ProjectNotFoundError,
  StaleFencingTokenError,
  TaskNotFoundError,
  ValidationError,
  VersionConflictError,
} from '../../src/errors.js';
import type { BudgetEffect, TransitionOutcome, TransitionWrite } from '../../src/ports/commit.js';
import type { OutboxEvent } from '../../src/ports/task-store.js';
import { at, ids, newTask, write, type HarnessRef } from './task-store.fixtures.js';
import { prng } from '../helpers/prng.js';

const event = (eventId: string, taskId: string, seconds: number): OutboxEvent => ({
  eventId,
  eventType: 'SCRIPT_COMPLETED',
  projectId: 'prj-1',
  taskId,
  payload: { from: taskId },
  at: at(seconds),
});

/** An outcome reduced to what the tests compare: the version, or the error's class and fields. */
function summary(o: TransitionOutcome): unknown {
  if (o.ok) return { ok: true, version: o.version };
  return { ok: false, error: o.error.constructor.name, ...o.error };
}


/** applyTransitions: many writes in one call, each applied or refused on its own. */
export function batchContract(harness: HarnessRef): void {
  const tasks = () => harness().tasks;
  const commit = () => harness().commit;

  async function state(taskIds: readonly string[], projectIds: readonly string[] = ['prj-1']) {
    return {
      tasks: await tasks().getTasks(taskIds),
      audit: await Promise.all(taskIds.map((id) => tasks().listTransitions(id))),
      budgets: await Promise.all(projectIds.map((id) => harness().readBudget(id))),
      outbox: await tasks().listOutbox(1000),
    };
  }

  it('applies the writes that pass their checks and refuses the others, each with its own error', async () => {
    await harness().seedProject({ projectId: 'prj-1', budgetLimit: 100 });
    await tasks().createTasks(
      [
        newTask('m-ok1'),
        newTask('m-ok2', { status: 'RUNNING', fencingToken: 3 }),
        newTask('m-conflict'),
        newTask('m-stale', { status: 'RUNNING', fencingToken: 3 }),
        newTask('m-stale-and-conflict', { status: 'RUNNING', fencingToken: 3 }),
        newTask('m-ok3', { status: 'RUNNING', fencingToken: 3 }),
      ],
      'orch-a',
    );
    await commit().applyTransition(write('m-ok3', { from: 'RUNNING', to: 'RUNNING', event: 'HEARTBEAT' })); // now at version 2
    const refusedIds = ['m-conflict', 'm-stale', 'm-stale-and-conflict', 'm-unknown'];
    const before = await state(refusedIds);

    const outcomes = await commit().applyTransitions([
      write('m-ok1', { to: 'READY', event: 'DEPENDENCIES_MET', detail: { deps: 0 } }),
      write('m-conflict', {
        to: 'READY',
        expectedVersion: 4,
        raise: [event('ev-conflict', 'm-conflict', 1)],
        budget: { projectId: 'prj-1', spend: 1, enforce: false },
      }),
      write('m-ok2', {
        from: 'RUNNING',
        to: 'COMPLETED',
        event: 'RESULT',
        fencingToken: 3,
        patch: { status: 'COMPLETED', output: { url: 's3://out' }, actualCost: 0.25, completedAt: at(70), deadline: null },
        raise: [event('ev-ok2-b', 'm-ok2', 2), event('ev-ok2-a', 'm-ok2', 1)],
        budget: { projectId: 'prj-1', spend: 0.25, enforce: false },
        at: at(70),
      }),
      write('m-stale', { from: 'RUNNING', to: 'COMPLETED', fencingToken: 2, raise: [event('ev-stale', 'm-stale', 1)] }),
      write('m-unknown', { to: 'READY' }),
      // A newer token the write does not set is no lease's: refused as the older one is.
      write('m-stale-and-conflict', { from: 'RUNNING', to: 'FAILED', fencingToken: 4, expectedVersion: 9 }),
      write('m-ok3', { from: 'RUNNING', to: 'CANCELLED', expectedVersion: 2, fencingToken: 3 }),
    ]);

    expect(outcomes.map(summary)).toStrictEqual([
      { ok: true, version: 2 },
      { ok: false, error: 'VersionConflictError', ...new VersionConflictError('m-conflict', 4, 1) },
      { ok: true, version: 2 },
      { ok: false, error: 'StaleFencingTokenError', ...new StaleFencingTokenError('m-stale', 2, 3) },
      { ok: false, error: 'TaskNotFoundError', ...new TaskNotFoundError('m-unknown') },
      // Stale wins over a version mismatch, as in applyTransition.
      { ok: false, error: 'StaleFencingTokenError', ...new StaleFencingTokenError('m-stale-and-conflict', 4, 3) },
      { ok: true, version: 3 },
    ]);
    expect(outcomes[1]).toMatchObject({ ok: false, error: { taskId: 'm-conflict', expectedVersion: 4, actualVersion: 1 } });
    expect((outcomes[1] as { error: Error }).error).toBeInstanceOf(VersionConflictError);
    expect((outcomes[3] as { error: Error }).error).toBeInstanceOf(StaleFencingTokenError);
    expect((outcomes[4] as { error: Error }).error).toBeInstanceOf(TaskNotFoundError);
    // A written write with a budget effect carries its project after the statement (the
    // refused m-conflict's spend not in it); the others none.
    const budget = await harness().readBudget('prj-1');
    expect(outcomes[2]).toStrictEqual({
      ok: true,
      version: 2,
      project: { projectId: 'prj-1', state: 'active', pausedReason: null, budgetLimit: expect.any(Number), ...budget },
    });
    expect(outcomes[0]).toStrictEqual({ ok: true, version: 2 });
    expect(outcomes[6]).toStrictEqual({ ok: true, version: 3 });

    // The successful writes: columns, audit rows (in write order), outbox rows, budget.
    expect(await tasks().getTask('m-ok1')).toMatchObject({ status: 'READY', version: 2, updatedAt: at(60) });
    expect(await tasks().getTask('m-ok2')).toMatchObject({
      status: 'COMPLETED',
      output: { url: 's3://out' },
      actualCost: 0.25,
      completedAt: at(70),
      deadline: null,
      fencingToken: 3,
      version: 2,
      updatedAt: at(70),
    });
    expect(await tasks().getTask('m-ok3')).toMatchObject({ status: 'CANCELLED', version: 3, fencingToken: 3 });
    const ok1Audit = await tasks().listTransitions('m-ok1');
    expect(ok1Audit.map((a) => [a.fromStatus, a.toStatus, a.event, a.detail, a.by, a.at])).toStrictEqual([
      [null, 'PENDING', 'CREATED', null, 'orch-a', at(0)],
      ['PENDING', 'READY', 'DEPENDENCIES_MET', { deps: 0 }, 'orch-a', at(60)],
    ]);
    const ok2Audit = await tasks().listTransitions('m-ok2');
    expect(ok2Audit.map((a) => [a.fromStatus, a.toStatus, a.event])).toStrictEqual([
      [null, 'RUNNING', 'CREATED'],
      ['RUNNING', 'COMPLETED', 'RESULT'],
    ]);
    expect(ok1Audit[1]!.id).toBeLessThan(ok2Audit[1]!.id); // audit rows in the order of the writes
    expect((await tasks().listOutbox(100)).map((e) => e.eventId)).toStrictEqual(['ev-ok2-a', 'ev-ok2-b']);
    expect(await tasks().listOutbox(100)).toStrictEqual([event('ev-ok2-a', 'm-ok2', 1), event('ev-ok2-b', 'm-ok2', 2)]);
    expect(await harness().readBudget('prj-1')).toStrictEqual({ spent: 0.25, reserved: 0 });

    // The refused writes wrote nothing: rows, audit, no outbox row, no budget change from them.
    const after = await state(refusedIds);
    expect(after.tasks).toStrictEqual(before.tasks);
    expect(after.audit).toStrictEqual(before.audit);
  });

  it('writes exactly what applyTransition writes for the same write', async () => {
    await harness().seedProject({ projectId: 'prj-1', budgetLimit: 100 });
    const base = { status: 'READY' as const, lastError: 'before', output: { keep: true }, fencingToken: 4 };
    await tasks().createTasks([newTask('eq-single', base), newTask('eq-batch', base)], 'orch-a');
    const dispatch = (taskId: string): TransitionWrite =>
      write(taskId, {
        from: 'READY',
        to: 'RUNNING',
        event: 'DISPATCH',
        detail: { lease: 'l-1', note: 'é "q"' },
        patch: { status: 'RUNNING', attempts: 1, startedAt: at(61), deadline: at(661), fencingToken: 5, notBefore: null },
        fencingToken: 5,
        snapshot: { value: 'running', context: { taskId: 'same', list: [1, null] } },
        machineVersion: '3',
        by: 'orch-z',
        at: at(61),
        budget: { projectId: 'prj-1', reserve: 0.15, enforce: true },
      });
    const complete = (taskId: string): TransitionWrite =>
      write(taskId, {
        from: 'RUNNING',
        to: 'COMPLETED',
        expectedVersion: 2,
        event: 'RESULT',
        detail: null,
        patch: { status: 'COMPLETED', output: null, lastError: null, completedAt: at(90), actualCost: 0.1234 },
        fencingToken: 5,
        snapshot: null,
        at: at(90),
        budget: { projectId: 'prj-1', release: 0.15, spend: 0.1234, enforce: false },
      });
    expect(await commit().applyTransition(dispatch('eq-single'))).toBe(2);
    // With a budget effect, the outcome carries the project as the statement left it.
    const project = (spent: number, reserved: number) => ({ projectId: 'prj-1', state: 'active', pausedReason: null, budgetLimit: expect.any(Number), spent, reserved });
    // A dispatch's outcome also carries the task's input.
    expect(await commit().applyTransitions([dispatch('eq-batch')])).toStrictEqual([
      { ok: true, version: 2, project: project(0, 0.3), input: { brief: 'a short film' } },
    ]);
    expect(await harness().readBudget('prj-1')).toStrictEqual({ spent: 0, reserved: 0.3 });
    expect(await commit().applyTransition(complete('eq-single'))).toBe(3);
    expect(await commit().applyTransitions([complete('eq-batch')])).toStrictEqual([{ ok: true, version: 3, project: project(0.2468, 0) }]);
    expect(await harness().readBudget('prj-1')).toStrictEqual({ spent: 0.2468, reserved: 0 });

    const [single, batch] = await tasks().getTasks(['eq-single', 'eq-batch']);
    expect(single!.snapshot).toBeNull();
    expect({ ...batch, taskId: 'eq-single' }).toStrictEqual(single);
    const strip = (rows: Awaited<ReturnType<ReturnType<typeof tasks>['listTransitions']>>) =>
      rows.map(({ id: _id, taskId: _taskId, ...rest }) => rest);
    expect(strip(await tasks().listTransitions('eq-batch'))).toStrictEqual(strip(await tasks().listTransitions('eq-single')));
  });

  it('grants enforced reservations in write order on the running amounts of the accepted ones', async () => {
    await harness().seedProject({ projectId: 'prj-1', budgetLimit: 10, spent: 2, reserved: 1 }); // 7 left
    await harness().seedProject({ projectId: 'prj-2', budgetLimit: null });
    await harness().seedProject({ projectId: 'prj-3', budgetLimit: 50, state: 'paused' });
    const taskIds = ids(12, 'g');
    await tasks().createTasks(taskIds.map((id) => newTask(id, { status: 'READY' })), 'orch-a');
    const reserve = (projectId: string, amount: number): BudgetEffect => ({ projectId, reserve: amount, enforce: true });
    const dispatch = (i: number, budget: BudgetEffect, more: Partial<TransitionWrite> = {}) =>
      write(taskIds[i]!, { from: 'READY', to: 'RUNNING', budget, ...more });
    const before = await state(taskIds, ['prj-1', 'prj-2', 'prj-3']);

    const outcomes = await commit().applyTransitions([
      dispatch(0, reserve('prj-1', 3)), //                      fits: 6 used, 4 left
      dispatch(1, reserve('prj-1', 5)), //                      does not fit in 4
      dispatch(2, reserve('prj-1', 1), { expectedVersion: 7 }), // conflict: takes no budget
      dispatch(3, { projectId: 'prj-1', release: 1, spend: 1.5, enforce: false }), // not enforced: 6.5 used
      dispatch(4, reserve('prj-2', 1000)), //                   no limit
      dispatch(5, reserve('prj-1', 3.5)), //                    exactly up to the limit: 10 used
      dispatch(6, reserve('prj-1', 0.0001)), //                 nothing left
      dispatch(7, reserve('nope', 1)), //                       unknown project
      dispatch(8, reserve('prj-3', 1)), //                      paused project
      dispatch(9, { projectId: 'prj-3', spend: 2, enforce: false }), // not enforced: applies on a paused project
      dispatch(10, { projectId: 'prj-1', reserve: 4, enforce: false }), // not enforced: may go over
      dispatch(11, reserve('prj-1', 0)), //                     enforced, nothing asked, but over the limit now
    ]);

    expect(outcomes.map(summary)).toStrictEqual([
      { ok: true, version: 2 },
      { ok: false, error: 'BudgetExceededError', ...new BudgetExceededError('prj-1', 5, 4) },
      { ok: false, error: 'VersionConflictError', ...new VersionConflictError(taskIds[2]!, 7, 1) },
      { ok: true, version: 2 },
      { ok: true, version: 2 },
      { ok: true, version: 2 },
      { ok: false, error: 'BudgetExceededError', ...new BudgetExceededError('prj-1', 0.0001, 0) },
      { ok: false, error: 'ProjectNotFoundError', ...new ProjectNotFoundError('nope') },
      { ok: false, error: 'BudgetExceededError', ...new BudgetExceededError('prj-3', 1, 0) },
      { ok: true, version: 2 },
      { ok: true, version: 2 },
      { ok: false, error: 'BudgetExceededError', ...new BudgetExceededError('prj-1', 0, 0) },
    ]);
    for (const i of [1, 6, 8, 11]) expect((outcomes[i] as { error: Error }).error).toBeInstanceOf(BudgetExceededError);
    expect((outcomes[7] as { error: Error }).error).toBeInstanceOf(ProjectNotFoundError);

    // Totals: prj-1 spent 2 + 1.5, reserved 1 + 3 - 1 + 3.5 + 4; prj-2 1000; prj-3 spent 2.
    expect(await harness().readBudget('prj-1')).toStrictEqual({ spent: 3.5, reserved: 10.5 });
    expect(await harness().readBudget('prj-2')).toStrictEqual({ spent: 0, reserved: 1000 });
    expect(await harness().readBudget('prj-3')).toStrictEqual({ spent: 2, reserved: 0 });

    const after = await state(taskIds, ['prj-1', 'prj-2', 'prj-3']);
    for (const [i, o] of outcomes.entries()) {
      if (o.ok) {
        expect(after.tasks[i]).toMatchObject({ status: 'RUNNING', version: 2 });
        expect(after.audit[i]).toHaveLength(2);
      } else {
        expect(after.tasks[i]).toStrictEqual(before.tasks[i]);
        expect(after.audit[i]).toStrictEqual(before.audit[i]);
      }
    }
  });

  it('clamps reserved at zero at each step, as one write at a time would', async () => {
    await harness().seedProject({ projectId: 'prj-1', budgetLimit: 10, reserved: 0.5 });
    const taskIds = ids(3, 'c');
    await tasks().createTasks(taskIds.map((id) => newTask(id)), 'orch-a');
    const outcomes = await commit().applyTransitions([
      write(taskIds[0]!, { to: 'CANCELLED', budget: { projectId: 'prj-1', release: 2, enforce: false } }), // 0.5 → 0, not -1.5
      write(taskIds[1]!, { to: 'READY', budget: { projectId: 'prj-1', reserve: 9.5, enforce: true } }), // 9.5: fits
      write(taskIds[2]!, { to: 'READY', budget: { projectId: 'prj-1', reserve: 1, enforce: true } }), // 10.5: does not
    ]);
    expect(outcomes.map((o) => o.ok)).toStrictEqual([true, true, false]);
    expect(outcomes[2]).toMatchObject({ ok: false, error: { requested: 1, remaining: 0.5 } });
    expect(await harness().readBudget('prj-1')).toStrictEqual({ spent: 0, reserved: 9.5 });
  });

  it('decides budgets exactly as applying the writes one at a time in order would', async () => {
    const random = prng(20_251_127);
    const rounds = 6;
    const perRound = 40;
    const amount = () => Math.round(random() * 300) / 100; // 0 to 3, in cents
    for (let round = 0; round < rounds; round++) {
      const limit = 8 + Math.round(random() * 8);
      const spent = Math.round(random() * 300) / 100;
      const reserved = Math.round(random() * 200) / 100;
      await harness().seedProject({ projectId: `one-${round}`, budgetLimit: limit, spent, reserved });
      await harness().seedProject({ projectId: `batch-${round}`, budgetLimit: limit, spent, reserved });
      const taskIds = ids(perRound, `q${round}-`);
      await tasks().createTasks(
        taskIds.flatMap((id) => [newTask(`${id}s`, { status: 'READY' }), newTask(`${id}b`, { status: 'READY' })]),
        'orch-a',
      );
      const effects = taskIds.map((): Omit<BudgetEffect, 'projectId'> => {
        const kind = random();
        if (kind < 0.6) return { reserve: amount(), enforce: true };
        if (kind < 0.75) return { release: amount(), spend: amount(), enforce: false };
        if (kind < 0.85) return { release: amount(), enforce: random() < 0.5 };
        return { reserve: amount(), release: amount(), spend: amount(), enforce: random() < 0.5 };
      });
      const one: TransitionOutcome[] = [];
      for (const [i, id] of taskIds.entries()) {
        const w = write(`${id}s`, { from: 'READY', to: 'RUNNING', budget: { projectId: `one-${round}`, ...effects[i]! } });
        one.push(
          await commit().applyTransition(w).then(
            (version): TransitionOutcome => ({ ok: true, version }),
            (error: Error): TransitionOutcome => ({ ok: false, error }),
          ),
        );
      }
      const batch = await commit().applyTransitions(
        taskIds.map((id, i) =>
          write(`${id}b`, { from: 'READY', to: 'RUNNING', budget: { projectId: `batch-${round}`, ...effects[i]! } }),
        ),
      );
      const normalise = (o: TransitionOutcome) => {
        const s = summary(o) as Record<string, unknown>;
        return s.ok ? s : { ...s, projectId: undefined, message: undefined };
      };
      expect(batch.map(normalise)).toStrictEqual(one.map(normalise));
      expect(one.some((o) => !o.ok)).toBe(true); // the budget ran out in every round
      expect(await harness().readBudget(`batch-${round}`)).toStrictEqual(await harness().readBudget(`one-${round}`));
    }
  });

  it('refuses a batch naming a task twice, writing nothing', async () => {
    await harness().seedProject({ projectId: 'prj-1', budgetLimit: 10 });
    await tasks().createTasks([newTask('d1'), newTask('d2')], 'orch-a');
    const before = await state(['d1', 'd2']);
    const err = await commit()
      .applyTransitions([
        write('d1', { to: 'READY', budget: { projectId: 'prj-1', reserve: 1, enforce: true } }),
        write('d2', { to: 'READY', raise: [event('ev-d2', 'd2', 1)] }),
        write('d1', { to: 'CANCELLED' }),
      ])
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ValidationError);
    expect((err as ValidationError).issues).toStrictEqual(['task d1']);
    expect(await state(['d1', 'd2'])).toStrictEqual(before);
  });

  it("returns the task's input with a write into RUNNING (what its dispatch carries), and with no other", async () => {
    await harness().seedProject({ projectId: 'prj-1', budgetLimit: 10 });
    await tasks().createTasks(
      [
        newTask('in-1', { status: 'READY', input: { shot: 1, prompt: 'dusk' } }),
        newTask('in-2', { status: 'READY', input: { shot: 2 } }),
        newTask('in-3', { status: 'RUNNING', fencingToken: 4 }),
        newTask('in-4'),
      ],
      'orch-a',
    );
    const running = (taskId: string, token: number) =>
      write(taskId, { from: 'READY', to: 'RUNNING', patch: { status: 'RUNNING', attempts: 1, fencingToken: token }, fencingToken: token });
    const batch = await commit().applyTransitions([
      running('in-1', 5),
      running('in-2', 6),
      write('in-3', { from: 'RUNNING', to: 'RUNNING', event: 'HEARTBEAT', patch: { status: 'RUNNING' }, fencingToken: 4 }),
      write('in-4', { to: 'READY' }),
    ]);
    expect(batch.map((o) => (o.ok ? (o.input ?? null) : 'refused'))).toStrictEqual([{ shot: 1, prompt: 'dusk' }, { shot: 2 }, null, null]);
    await tasks().createTasks([newTask('in-5', { status: 'READY', input: { alone: true } })], 'orch-a');
    const [single] = await commit().applyTransitions([running('in-5', 7)]);
    expect(single).toMatchObject({ ok: true, version: 2, input: { alone: true } });
  });

  it('returns nothing for an empty batch', async () => {
    expect(await commit().applyTransitions([])).toStrictEqual([]);
  });

  it('applies a batch of 500 in one call', async () => {
    await harness().seedProject({ projectId: 'prj-1', budgetLimit: 1000 });
    const taskIds = ids(500, 'big');
    await tasks().createTasks(taskIds.map((id) => newTask(id, { status: 'READY' })), 'orch-a');
    const outcomes = await commit().applyTransitions(
      taskIds.map((id, i) =>
        write(id, {
          from: 'READY',
          to: 'RUNNING',
          patch: { status: 'RUNNING', attempts: 1, fencingToken: i + 1 },
          fencingToken: i + 1,
          budget: { projectId: 'prj-1', reserve: 0.01, enforce: true },
          raise: i % 100 === 0 ? [event(`ev-big-${i}`, id, i)] : [],
        }),
      ),
    );
    expect(outcomes.every((o) => o.ok && o.version === 2)).toBe(true);
    expect(await tasks().countByStatus()).toStrictEqual({ RUNNING: 500 });
    expect(await harness().readBudget('prj-1')).toStrictEqual({ spent: 0, reserved: 5 });
    expect(await tasks().maxFencingToken()).toBe(500);
    expect(await tasks().listOutbox(100)).toHaveLength(5);
  });
}
