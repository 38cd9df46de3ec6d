import { describe, expect, it } from 'vitest';
import { BudgetExceededError } from '../../src/errors.js';
import { ids, newTask, write } from '../contract/task-store.fixtures.js';
import { budgetRace, RESERVE, SPENT } from '../helpers/budget-race.js';

/**
 * Budget reservations at the store level on the real server: two pools (two
 * "processes") race for one project's budget. The limit is enforced by the transition
 * statement itself, so no interleaving can overspend.
 */
describe('budget reservations across two pools (PostgreSQL)', () => {
  const PROJECT = 'prj-budget';
  const stage = budgetRace(PROJECT, 'Budget race');
  const { sampleUntil, budget } = stage;

  it('lets exactly the 100 reservations that fit through, out of 200 concurrent ones', async () => {
    const taskIds = ids(200, 'r');
    await stage.pools[0].tasks.createTasks(taskIds.map((id) => newTask(id, { projectId: PROJECT })), 'orch-a');
    const before = new Map((await stage.pools[0].tasks.getTasks(taskIds)).map((t) => [t.taskId, t]));

    const storm = Promise.allSettled(
      taskIds.map((id, i) =>
        stage.pools[i % 2]!.commit.applyTransition(
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
    await stage.expectOnlyWinnersPromoted(won, lost, before);
    expect(await stage.pools[0].tasks.countByStatus(PROJECT)).toStrictEqual({ READY: 100, PENDING: 100, COMPLETED: 1 });
  });

  it('keeps reserved equal to the live reservations when releases race with reservations', async () => {
    const held = ids(100, 'h');
    const waiting = ids(100, 'w');
    await stage.pools[0].tasks.createTasks([...held, ...waiting].map((id) => newTask(id, { projectId: PROJECT })), 'orch-a');
    for (const id of held) {
      await stage.pools[0].commit.applyTransition(write(id, { to: 'READY', budget: { projectId: PROJECT, reserve: RESERVE, enforce: true } }));
    }
    expect(await budget()).toStrictEqual({ spent: SPENT, reserved: 10 }); // full

    // Half the holders give their reservation back while the waiting tasks try to reserve.
    const released = held.slice(0, 50);
    const storm = Promise.allSettled([
      ...released.map((id, i) =>
        stage.pools[i % 2]!.commit.applyTransition(
          write(id, { from: 'READY', to: 'CANCELLED', expectedVersion: 2, budget: { projectId: PROJECT, release: RESERVE, enforce: false } }),
        ),
      ),
      ...waiting.map((id, i) =>
        stage.pools[(i + 1) % 2]!.commit.applyTransition(write(id, { to: 'READY', budget: { projectId: PROJECT, reserve: RESERVE, enforce: true } })),
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

    const counts = await stage.pools[0].tasks.countByStatus(PROJECT);
    expect(counts).toStrictEqual({ READY: 50 + granted, CANCELLED: 50, PENDING: refused.length, COMPLETED: 1 });
    const { spent, reserved } = await budget();
    expect(spent).toBe(SPENT);
    expect(reserved).toBe(Number(((50 + granted) * RESERVE).toFixed(4)));
  });
});
