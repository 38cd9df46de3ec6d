import { expect, it } from 'vitest';
import {
  BudgetExceededError,
  ProjectNotFoundError,
  StaleFencingTokenError,
  VersionConflictError,
} from '../../src/errors.js';
import type { OutboxEvent } from '../../src/ports/task-store.js';
import { at, ids, newTask, write, type HarnessRef } from './task-store.fixtures.js';

const event = (eventId: string, seconds: number, payload: Record<string, unknown> = {}): OutboxEvent => ({
  eventId,
  eventType: 'SCRIPT_COMPLETED',
  projectId: 'prj-1',
  taskId: 'o1',
  payload,
  at: at(seconds),
});

/** Budget effects and raised events: written with the transition, or not at all. */
export function budgetContract(harness: HarnessRef): void {
  const tasks = () => harness().tasks;
  const commit = () => harness().commit;

  /** Everything a refused transition must leave as it was. */
  async function state(taskId: string, projectId = 'prj-1') {
    return {
      task: await tasks().getTask(taskId),
      audit: await tasks().listTransitions(taskId),
      budget: await harness().readBudget(projectId),
      outbox: await tasks().listOutbox(100),
    };
  }

  it('reserves, releases and spends with the transition, to the cent', async () => {
    await harness().seedProject({ projectId: 'prj-1', budgetLimit: 10, spent: 2, reserved: 0.1 });
    await tasks().createTasks([newTask('b1', { status: 'READY' })], 'orch-a');
    await commit().applyTransition(
      write('b1', { from: 'READY', to: 'RUNNING', budget: { projectId: 'prj-1', reserve: 0.2, enforce: true } }),
    );
    expect(await harness().readBudget('prj-1')).toStrictEqual({ spent: 2, reserved: 0.3 }); // not 0.30000000000000004
    await commit().applyTransition(
      write('b1', {
        from: 'RUNNING',
        to: 'COMPLETED',
        expectedVersion: 2,
        patch: { status: 'COMPLETED', actualCost: 0.1234 },
        budget: { projectId: 'prj-1', release: 0.2, spend: 0.1234, enforce: false },
      }),
    );
    expect(await harness().readBudget('prj-1')).toStrictEqual({ spent: 2.1234, reserved: 0.1 });
    // Releasing more than is reserved leaves zero, not a negative reservation.
    await tasks().createTasks([newTask('b2')], 'orch-a');
    await commit().applyTransition(write('b2', { to: 'CANCELLED', budget: { projectId: 'prj-1', release: 5, enforce: false } }));
    expect(await harness().readBudget('prj-1')).toStrictEqual({ spent: 2.1234, reserved: 0 });
  });

  it('refuses a reservation over the limit, writing nothing', async () => {
    await harness().seedProject({ projectId: 'prj-1', budgetLimit: 10, spent: 6, reserved: 3 });
    await tasks().createTasks([newTask('b1', { status: 'READY' })], 'orch-a');
    const before = await state('b1');
    const err = await commit()
      .applyTransition(
        write('b1', {
          from: 'READY',
          to: 'RUNNING',
          budget: { projectId: 'prj-1', reserve: 1.0001, enforce: true },
          raise: [event('ev-1', 1)],
        }),
      )
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(BudgetExceededError);
    expect(err).toMatchObject({ projectId: 'prj-1', requested: 1.0001, remaining: 1 });
    expect(await state('b1')).toStrictEqual(before);

    // Exactly up to the limit is allowed; without enforce, going over is recorded.
    expect(
      await commit().applyTransition(write('b1', { from: 'READY', to: 'RUNNING', budget: { projectId: 'prj-1', reserve: 1, enforce: true } })),
    ).toBe(2);
    await tasks().createTasks([newTask('b2')], 'orch-a');
    await commit().applyTransition(write('b2', { to: 'RUNNING', budget: { projectId: 'prj-1', reserve: 4, enforce: false } }));
    expect(await harness().readBudget('prj-1')).toStrictEqual({ spent: 6, reserved: 8 });
  });

  it('refuses an enforced reservation on a project that is not active', async () => {
    await harness().seedProject({ projectId: 'prj-1', state: 'paused', budgetLimit: null });
    await tasks().createTasks([newTask('b1', { status: 'READY' })], 'orch-a');
    const before = await state('b1');
    const err = await commit()
      .applyTransition(write('b1', { from: 'READY', to: 'RUNNING', budget: { projectId: 'prj-1', reserve: 1, enforce: true } }))
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(BudgetExceededError);
    expect(err).toMatchObject({ remaining: 0 });
    expect(await state('b1')).toStrictEqual(before);
    await commit().applyTransition(write('b1', { from: 'READY', to: 'CANCELLED', budget: { projectId: 'prj-1', release: 0, enforce: false } }));
    expect((await tasks().getTask('b1'))!.status).toBe('CANCELLED');
  });

  it('refuses a budget effect on an unknown project, writing nothing', async () => {
    await tasks().createTasks([newTask('b1')], 'orch-a');
    const before = await state('b1', 'nope');
    await expect(
      commit().applyTransition(write('b1', { to: 'READY', budget: { projectId: 'nope', spend: 1, enforce: false } })),
    ).rejects.toBeInstanceOf(ProjectNotFoundError);
    expect(await state('b1', 'nope')).toStrictEqual(before);
  });

  it('changes no budget and raises no event when the task write is refused', async () => {
    await harness().seedProject({ projectId: 'prj-1', budgetLimit: 10 });
    await tasks().createTasks([newTask('b1', { status: 'RUNNING', fencingToken: 9 })], 'orch-a');
    const before = await state('b1');
    const effect = { budget: { projectId: 'prj-1', spend: 1, enforce: false }, raise: [event('ev-1', 1)] };
    await expect(
      commit().applyTransition(write('b1', { from: 'RUNNING', to: 'COMPLETED', expectedVersion: 7, ...effect })),
    ).rejects.toBeInstanceOf(VersionConflictError);
    await expect(
      commit().applyTransition(write('b1', { from: 'RUNNING', to: 'COMPLETED', fencingToken: 8, ...effect })),
    ).rejects.toBeInstanceOf(StaleFencingTokenError);
    expect(await state('b1')).toStrictEqual(before);
  });

  it('never lets concurrent reservations overspend', async () => {
    await harness().seedProject({ projectId: 'prj-1', budgetLimit: 10 });
    const taskIds = ids(20, 'cr');
    await tasks().createTasks(taskIds.map((id) => newTask(id, { status: 'READY' })), 'orch-a');
    const results = await Promise.allSettled(
      taskIds.map((id) =>
        commit().applyTransition(write(id, { from: 'READY', to: 'RUNNING', budget: { projectId: 'prj-1', reserve: 1, enforce: true } })),
      ),
    );
    const refused = results.filter((r): r is PromiseRejectedResult => r.status === 'rejected');
    expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(10);
    expect(refused).toHaveLength(10);
    for (const r of refused) expect(r.reason).toBeInstanceOf(BudgetExceededError);
    expect(await harness().readBudget('prj-1')).toStrictEqual({ spent: 0, reserved: 10 });
    expect(await tasks().countByStatus()).toStrictEqual({ RUNNING: 10, READY: 10 });
  });

  it('writes raised events to the outbox with the transition', async () => {
    await tasks().createTasks([newTask('o1', { status: 'RUNNING' })], 'orch-a');
    const raised = [
      event('ev-2', 5, { scriptId: 's-1', scenes: [1, 2], note: 'é' }),
      event('ev-1', 3),
      event('ev-3', 5),
    ];
    await commit().applyTransition(write('o1', { from: 'RUNNING', to: 'COMPLETED', raise: raised }));
    expect(await tasks().listOutbox(10)).toStrictEqual([raised[1], raised[0], raised[2]]); // oldest first
    expect(await tasks().listOutbox(1)).toStrictEqual([raised[1]]);
    await tasks().createTasks([newTask('o2')], 'orch-a');
    await commit().applyTransition(write('o2', { to: 'READY', raise: [] }));
    expect(await tasks().listOutbox(10)).toHaveLength(3);
  });
}
