import { expect, it } from 'vitest';
import type { TaskRecord } from '../../src/ports/task-store.js';
import { at, ids, newTask, write, type HarnessRef } from './task-store.fixtures.js';

/**
 * The dispatch outbox: every write into RUNNING (through the commit port, or a task created
 * RUNNING) records its dispatch unconfirmed until TaskStore.confirmDispatches.
 */
export function dispatchOutboxContract(harness: HarnessRef): void {
  const store = () => harness().tasks;
  const commit = () => harness().commit;
  const unconfirmed = async (before: Date, limit = 100, afterTaskId?: string) =>
    (await store().listUnconfirmedDispatches({ before, limit, ...(afterTaskId === undefined ? {} : { afterTaskId }) })).map(
      (t: TaskRecord) => [t.taskId, t.status, t.fencingToken],
    );
  /** READY → RUNNING under `token`, at `seconds` (the row at `version`). */
  const dispatch = (taskId: string, token: number, seconds: number, version = 1) =>
    write(taskId, {
      from: 'READY',
      to: 'RUNNING',
      event: 'DISPATCH',
      expectedVersion: version,
      fencingToken: token,
      patch: { status: 'RUNNING', fencingToken: token, attempts: 1, deadline: at(seconds + 600) },
      at: at(seconds),
    });

  it('records the dispatch of every write into RUNNING, batched or single, until it is confirmed', async () => {
    await store().createTasks(['d-a', 'd-b', 'd-c', 'd-d'].map((id) => newTask(id, { status: 'READY' })), 'orch-a');
    const outcomes = await commit().applyTransitions([dispatch('d-a', 5, 60), dispatch('d-b', 6, 60)]);
    expect(outcomes.every((o) => o.ok)).toBe(true);
    await commit().applyTransition(dispatch('d-c', 7, 61));
    // A refused write (stale version) records nothing.
    expect((await commit().applyTransitions([dispatch('d-d', 8, 61, 9)]))[0]!.ok).toBe(false);

    // Recorded at the write's time: listed once that is before `before`.
    expect(await unconfirmed(at(60))).toStrictEqual([]);
    expect(await unconfirmed(at(61))).toStrictEqual([['d-a', 'RUNNING', 5], ['d-b', 'RUNNING', 6]]);
    expect(await unconfirmed(at(62))).toStrictEqual([['d-a', 'RUNNING', 5], ['d-b', 'RUNNING', 6], ['d-c', 'RUNNING', 7]]);
    // Listing twice changes nothing.
    expect(await unconfirmed(at(62))).toHaveLength(3);

    // Confirmed by (task, token): another token, an unknown task, an empty batch change nothing.
    await store().confirmDispatches([]);
    await store().confirmDispatches([{ taskId: 'd-a', fencingToken: 5 }, { taskId: 'd-b', fencingToken: 99 }, { taskId: 'd-none', fencingToken: 1 }]);
    expect(await unconfirmed(at(62))).toStrictEqual([['d-b', 'RUNNING', 6], ['d-c', 'RUNNING', 7]]);
    await store().confirmDispatches([{ taskId: 'd-b', fencingToken: 6 }, { taskId: 'd-c', fencingToken: 7 }]);
    expect(await unconfirmed(at(62))).toStrictEqual([]);
    // Confirming again is not an error.
    await store().confirmDispatches([{ taskId: 'd-c', fencingToken: 7 }]);
  });

  it('confirms overlapping batches from two pools at once, in any order, without a deadlock', async () => {
    const n = 40;
    const names = ids(n, 'o-');
    await store().createTasks(names.map((id) => newTask(id, { status: 'READY' })), 'orch-a');
    expect((await commit().applyTransitions(names.map((id, i) => dispatch(id, 100 + i, 60)))).every((o) => o.ok)).toBe(true);
    const attempts = names.map((taskId, i) => ({ taskId, fencingToken: 100 + i }));
    // The same rows, confirmed by a taken-over attempt's owner and its late first owner,
    // each in its own order, several times over.
    await Promise.all(
      Array.from({ length: 6 }, (_, k) => {
        const batch = k % 2 === 0 ? attempts : [...attempts].reverse();
        return (k % 2 === 0 ? harness().tasks : harness().peer.tasks).confirmDispatches(batch);
      }),
    );
    expect(await unconfirmed(at(61))).toStrictEqual([]);
  });

  it('records a task created RUNNING; a heartbeat or a write into another state records nothing', async () => {
    await store().createTasks(
      [
        newTask('c-run', { status: 'RUNNING', fencingToken: 3, attempts: 1, deadline: at(600), createdAt: at(1) }),
        // Created READY then RUNNING in the same write (dispatch at creation).
        newTask('c-steps', {
          status: 'RUNNING', fencingToken: 4, attempts: 1, deadline: at(600), createdAt: at(2),
          createdSteps: [
            { from: 'PENDING', to: 'READY', event: 'DEPENDENCIES_MET', detail: null },
            { from: 'READY', to: 'RUNNING', event: 'DISPATCH', detail: null },
          ],
        }),
        // Without a fencing token nothing can be dispatched: no record.
        newTask('c-untokened', { status: 'RUNNING', createdAt: at(3) }),
        newTask('c-ready', { status: 'READY', createdAt: at(3) }),
      ],
      'orch-a',
    );
    expect(await unconfirmed(at(10))).toStrictEqual([['c-run', 'RUNNING', 3], ['c-steps', 'RUNNING', 4]]);
    await store().confirmDispatches([{ taskId: 'c-run', fencingToken: 3 }]);
    // A heartbeat (RUNNING → RUNNING) is not a dispatch.
    await commit().applyTransition(
      write('c-run', { from: 'RUNNING', to: 'RUNNING', event: 'HEARTBEAT', fencingToken: 3, patch: { status: 'RUNNING', deadline: at(900) }, at: at(20) }),
    );
    await commit().applyTransition(write('c-ready', { from: 'READY', to: 'CANCELLED', event: 'CANCEL', patch: { status: 'CANCELLED' }, at: at(20) }));
    expect(await unconfirmed(at(30))).toStrictEqual([['c-steps', 'RUNNING', 4]]);
  });

  it('lists only attempts still RUNNING under their token; a new attempt replaces the earlier one', async () => {
    await store().createTasks(['e-done', 'e-retry'].map((id) => newTask(id, { status: 'READY' })), 'orch-a');
    expect((await commit().applyTransitions([dispatch('e-done', 5, 60), dispatch('e-retry', 6, 60)])).every((o) => o.ok)).toBe(true);
    // The attempt ends unconfirmed (its result came first): not listed, and dropped.
    await commit().applyTransition(
      write('e-done', { from: 'RUNNING', to: 'COMPLETED', event: 'COMPLETE', expectedVersion: 2, fencingToken: 5, patch: { status: 'COMPLETED' }, at: at(70) }),
    );
    // e-retry: FAILED, back to READY, dispatched again under token 9.
    const steps = [
      write('e-retry', { from: 'RUNNING', to: 'FAILED', event: 'FAIL', expectedVersion: 2, fencingToken: 6, patch: { status: 'FAILED' }, at: at(70) }),
      write('e-retry', { from: 'FAILED', to: 'PENDING', event: 'RETRY', expectedVersion: 3, patch: { status: 'PENDING' }, at: at(71) }),
      write('e-retry', { from: 'PENDING', to: 'READY', event: 'DEPENDENCIES_MET', expectedVersion: 4, patch: { status: 'READY' }, at: at(72) }),
    ];
    for (const w of steps) await commit().applyTransition(w);
    // Between the attempts: neither is listed.
    expect(await unconfirmed(at(100))).toStrictEqual([]);
    await commit().applyTransition(dispatch('e-retry', 9, 200, 5));
    expect(await unconfirmed(at(100))).toStrictEqual([]);
    expect(await unconfirmed(at(201))).toStrictEqual([['e-retry', 'RUNNING', 9]]);
    // The earlier attempt's confirmation does not confirm the new one.
    await store().confirmDispatches([{ taskId: 'e-retry', fencingToken: 6 }]);
    expect(await unconfirmed(at(201))).toStrictEqual([['e-retry', 'RUNNING', 9]]);
    await store().confirmDispatches([{ taskId: 'e-retry', fencingToken: 9 }]);
    expect(await unconfirmed(at(201))).toStrictEqual([]);
  });

  it('removes an attempt\'s record with the write that ends it, single or batched; a heartbeat keeps it', async () => {
    await store().createTasks(['x-done', 'x-fail', 'x-beat', 'x-out', 'x-left'].map((id) => newTask(id, { status: 'READY' })), 'orch-a');
    const dispatched = await commit().applyTransitions([
      dispatch('x-done', 11, 60), dispatch('x-fail', 12, 60), dispatch('x-beat', 13, 60), dispatch('x-out', 14, 60), dispatch('x-left', 15, 60),
    ]);
    expect(dispatched.every((o) => o.ok)).toBe(true);
    expect(await harness().dispatchRecords()).toStrictEqual(['x-beat@13', 'x-done@11', 'x-fail@12', 'x-left@15', 'x-out@14']);
    const ended = await commit().applyTransitions([
      write('x-done', { from: 'RUNNING', to: 'COMPLETED', event: 'COMPLETE', expectedVersion: 2, fencingToken: 11, patch: { status: 'COMPLETED' }, at: at(61) }),
      write('x-fail', { from: 'RUNNING', to: 'FAILED', event: 'FAIL', expectedVersion: 2, fencingToken: 12, patch: { status: 'FAILED' }, at: at(61) }),
      write('x-beat', { from: 'RUNNING', to: 'RUNNING', event: 'HEARTBEAT', expectedVersion: 2, fencingToken: 13, patch: { status: 'RUNNING', deadline: at(900) }, at: at(61) }),
      // Refused (a stale version): nothing of it is written, its record stays.
      write('x-left', { from: 'RUNNING', to: 'COMPLETED', event: 'COMPLETE', expectedVersion: 1, fencingToken: 15, patch: { status: 'COMPLETED' }, at: at(61) }),
    ]);
    expect(ended.map((o) => o.ok)).toStrictEqual([true, true, true, false]);
    expect(await harness().dispatchRecords()).toStrictEqual(['x-beat@13', 'x-left@15', 'x-out@14']);
    // The single-write statement too (a timeout).
    await commit().applyTransition(
      write('x-out', { from: 'RUNNING', to: 'FAILED', event: 'TIME_OUT', expectedVersion: 2, patch: { status: 'FAILED' }, at: at(700) }),
    );
    expect(await harness().dispatchRecords()).toStrictEqual(['x-beat@13', 'x-left@15']);
  });

  it('pages through the unconfirmed dispatches by task id, once each', async () => {
    const all = ids(11, 'pg');
    await store().createTasks(
      all.map((id, i) => newTask(id, { status: 'RUNNING', fencingToken: 100 + i, attempts: 1, deadline: at(600), createdAt: at(i) })),
      'orch-a',
    );
    const seen: string[] = [];
    let after: string | undefined;
    for (let guard = 0; guard < 20; guard++) {
      const page = await unconfirmed(at(100), 4, after);
      expect(page.length).toBeLessThanOrEqual(4);
      seen.push(...page.map(([id]) => id as string));
      if (page.length < 4) break;
      after = page.at(-1)![0] as string;
    }
    expect(seen).toStrictEqual(all);
    // Only those recorded before `before`.
    expect(await unconfirmed(at(3))).toStrictEqual(all.slice(0, 3).map((id, i) => [id, 'RUNNING', 100 + i]));
  });
}
