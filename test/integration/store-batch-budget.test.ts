import { describe, expect, it } from 'vitest';
import { BudgetExceededError, VersionConflictError } from '../../src/errors.js';
import type { TransitionOutcome, TransitionWrite } from '../../src/ports/commit.js';
import type { TaskRecord } from '../../src/ports/task-store.js';
import { ids, newTask, write } from '../contract/task-store.fixtures.js';
import { budgetRace, RESERVE, SPENT } from '../helpers/budget-race.js';

/**
 * Batched budget reservations (applyTransitions) on the real server: two pools (two
 * "processes") apply batches concurrently against one project's budget. The statement
 * locks the batch's task rows, then the project row, and judges the reservations on the
 * amounts it read under that lock, so no interleaving overspends and no two batches
 * deadlock.
 */
describe('batched budget reservations across two pools (PostgreSQL)', () => {
  const PROJECT = 'prj-batch';
  const stage = budgetRace(PROJECT, 'Batch budget race');
  const { sampleUntil, budget } = stage;

  const reserve = (id: string, by: string): TransitionWrite =>
    write(id, { to: 'READY', by, budget: { projectId: PROJECT, reserve: RESERVE, enforce: true } });

  /** The writes' outcomes by task id, and the checks every race ends with. */
  async function settle(taskIds: readonly string[], outcomes: Map<string, TransitionOutcome>, before: Map<string, TaskRecord>) {
    const won = taskIds.filter((id) => outcomes.get(id)!.ok);
    const lost = taskIds.filter((id) => !outcomes.get(id)!.ok);
    for (const id of lost) {
      const o = outcomes.get(id)!;
      expect(o.ok ? undefined : o.error).toBeInstanceOf(BudgetExceededError);
      expect(o).toMatchObject({ error: { projectId: PROJECT, requested: RESERVE } });
    }
    for (const id of won) {
      const o = outcomes.get(id)!;
      expect(o).toMatchObject({ ok: true, version: 2 });
      // A batch's outcome carries the project as its own statement left it: within the limit.
      // (The single writes here come from applyTransition, which returns the version only.)
      if (o.ok && o.project) {
        expect(o.project).toMatchObject({ projectId: PROJECT, state: 'active', spent: SPENT });
        expect(o.project.reserved).toBeLessThanOrEqual(Number((won.length * RESERVE).toFixed(4)));
      }
    }
    expect(await budget()).toStrictEqual({ spent: SPENT, reserved: Number((won.length * RESERVE).toFixed(4)) });

    await stage.expectOnlyWinnersPromoted(won, lost, before);
    return { won, lost };
  }

  async function seed(taskIds: readonly string[]): Promise<Map<string, TaskRecord>> {
    await stage.pools[0].tasks.createTasks(taskIds.map((id) => newTask(id, { projectId: PROJECT })), 'orch-a');
    return new Map((await stage.pools[0].tasks.getTasks(taskIds)).map((t) => [t.taskId, t]));
  }

  it('grants exactly the 100 reservations that fit, out of two concurrent batches of 100', async () => {
    const taskIds = ids(200, 'r');
    const before = await seed(taskIds);
    const halves = [taskIds.filter((_, i) => i % 2 === 0), taskIds.filter((_, i) => i % 2 === 1)] as const;

    const race = Promise.all(halves.map((half, p) => stage.pools[p]!.commit.applyTransitions(half.map((id) => reserve(id, `orch-${p}`)))));
    const { result, samples, over } = await sampleUntil(race);

    expect(samples).toBeGreaterThan(0);
    expect(over).toStrictEqual([]); // never over the limit, while it ran
    const outcomes = new Map(halves.flatMap((half, p) => half.map((id, i) => [id, result[p]![i]!] as const)));
    const { won, lost } = await settle(taskIds, outcomes, before);
    expect(won).toHaveLength(100);
    expect(lost).toHaveLength(100);
    // The batches ran one after the other on the project lock: the first took it all.
    for (const o of lost.map((id) => outcomes.get(id)!)) expect(o).toMatchObject({ error: { remaining: 0 } });
    expect(await stage.pools[0].tasks.countByStatus(PROJECT)).toStrictEqual({ READY: 100, PENDING: 100, COMPLETED: 1 });
  });

  it('grants exactly 100 out of 240 reservations: twenty concurrent batches of 10 and 40 single writes', async () => {
    const taskIds = ids(240, 's');
    const before = await seed(taskIds);
    // Shuffled (deterministically) so each batch's writes are not in task id order.
    const shuffled = [...taskIds.slice(0, 200)].sort((a, b) => ((a.charCodeAt(4) * 7919 + Number(a.slice(1))) % 97) - ((b.charCodeAt(4) * 7919 + Number(b.slice(1))) % 97));
    const batches = Array.from({ length: 20 }, (_, b) => shuffled.slice(b * 10, b * 10 + 10));
    const singles = taskIds.slice(200); // 40 single-write reservations racing with the batches

    const race = Promise.all([
      ...batches.map((batch, b) => stage.pools[b % 2]!.commit.applyTransitions(batch.map((id) => reserve(id, `orch-${b % 2}`)))),
      ...singles.map((id, i) =>
        stage.pools[i % 2]!.commit.applyTransition(reserve(id, `orch-${i % 2}`)).then(
          (version): TransitionOutcome[] => [{ ok: true, version }],
          (error: Error): TransitionOutcome[] => [{ ok: false, error }],
        ),
      ),
    ]);
    const { result, over } = await sampleUntil(race);

    expect(over).toStrictEqual([]);
    const order = [...batches.flat(), ...singles];
    const outcomes = new Map(result.flat().map((o, i) => [order[i]!, o] as const));
    const { won } = await settle(taskIds, outcomes, before);
    expect(won).toHaveLength(100);
  });

  it('does not deadlock when concurrent batches (and single writes) touch the same tasks', async () => {
    const taskIds = ids(100, 'o');
    await seed(taskIds);
    const reversed = [...taskIds].reverse();
    // Four writers race for the same 100 tasks from version 1: two batches in opposite
    // orders, one batch of every other task, and single writes of a few. Each task moves
    // exactly once; everyone else gets a version conflict.
    const writers: Promise<[string, TransitionOutcome][]>[] = [
      stage.pools[0].commit.applyTransitions(taskIds.map((id) => reserve(id, 'orch-a'))).then((os) => os.map((o, i) => [taskIds[i]!, o])),
      stage.pools[1].commit.applyTransitions(reversed.map((id) => reserve(id, 'orch-b'))).then((os) => os.map((o, i) => [reversed[i]!, o])),
      stage.pools[0].commit
        .applyTransitions(taskIds.filter((_, i) => i % 2 === 1).map((id) => reserve(id, 'orch-c')))
        .then((os) => os.map((o, i) => [taskIds.filter((_, j) => j % 2 === 1)[i]!, o])),
      ...taskIds.slice(0, 10).map((id) =>
        stage.pools[1].commit.applyTransition(reserve(id, 'orch-d')).then(
          (version): [string, TransitionOutcome][] => [[id, { ok: true, version }]],
          (error: Error): [string, TransitionOutcome][] => [[id, { ok: false, error }]],
        ),
      ),
    ];
    const { result, over } = await sampleUntil(Promise.all(writers));
    expect(over).toStrictEqual([]);

    const byTask = new Map<string, TransitionOutcome[]>();
    for (const [id, o] of result.flat()) byTask.set(id, [...(byTask.get(id) ?? []), o]);
    for (const id of taskIds) {
      const os = byTask.get(id)!;
      expect(os.filter((o) => o.ok)).toMatchObject([{ ok: true, version: 2 }]);
      expect(os.filter((o) => o.ok)).toHaveLength(1);
      for (const o of os.filter((o) => !o.ok)) {
        expect(o.ok ? undefined : o.error).toBeInstanceOf(VersionConflictError);
        expect(o).toMatchObject({ error: { expectedVersion: 1, actualVersion: 2 } });
      }
      expect(await stage.pools[0].tasks.listTransitions(id)).toHaveLength(2);
    }
    expect(await budget()).toStrictEqual({ spent: SPENT, reserved: 10 });
  });
});
