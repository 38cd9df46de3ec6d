import { expect, it } from 'vitest';
import { StaleFencingTokenError, TaskNotFoundError, VersionConflictError } from '../../src/errors.js';
import { at, ids, newTask, write, type HarnessRef } from './task-store.fixtures.js';

/** Applying a transition: the row, its snapshot, version and audit row together, or nothing. */
export function transitionContract(harness: HarnessRef): void {
  const tasks = () => harness().tasks;
  const commit = () => harness().commit;

  it('applies a transition: columns, snapshot, version and audit row together', async () => {
    await tasks().createTasks([newTask('t1', { status: 'READY', lastError: 'previous' })], 'orch-a');
    const v2 = await commit().applyTransition(
      write('t1', {
        from: 'READY',
        to: 'RUNNING',
        event: 'DISPATCH',
        detail: { lease: 'l-1', n: 1 },
        patch: { status: 'RUNNING', attempts: 1, startedAt: at(60), deadline: at(660), fencingToken: 7 },
        fencingToken: 7,
        snapshot: { value: 'running', context: { attempt: 1 } },
        machineVersion: '2',
        by: 'orch-b',
      }),
    );
    expect(v2).toBe(2);
    const running = await tasks().getTask('t1');
    expect(running).toMatchObject({
      status: 'RUNNING',
      attempts: 1,
      startedAt: at(60),
      deadline: at(660),
      fencingToken: 7,
      lastError: 'previous', // absent from the patch: unchanged
      output: null,
      snapshot: { value: 'running', context: { attempt: 1 } },
      machineVersion: '2',
      version: 2,
      updatedAt: at(60),
    });

    const v3 = await commit().applyTransition(
      write('t1', {
        expectedVersion: 2,
        from: 'RUNNING',
        to: 'COMPLETED',
        event: 'RESULT',
        patch: {
          status: 'COMPLETED',
          completedAt: at(120),
          deadline: null,
          lastError: null,
          output: { url: 's3://bucket/out.mp4', frames: [1, 2] },
          actualCost: 0.1234,
        },
        fencingToken: 7,
        at: at(120),
      }),
    );
    expect(v3).toBe(3);
    expect(await tasks().getTask('t1')).toMatchObject({
      status: 'COMPLETED',
      completedAt: at(120),
      deadline: null,
      lastError: null,
      output: { url: 's3://bucket/out.mp4', frames: [1, 2] },
      actualCost: 0.1234,
      fencingToken: 7,
      startedAt: at(60),
      version: 3,
      updatedAt: at(120),
    });

    const audit = await tasks().listTransitions('t1');
    expect(audit.map((a) => [a.fromStatus, a.toStatus, a.event, a.by])).toStrictEqual([
      [null, 'READY', 'CREATED', 'orch-a'],
      ['READY', 'RUNNING', 'DISPATCH', 'orch-b'],
      ['RUNNING', 'COMPLETED', 'RESULT', 'orch-a'],
    ]);
    expect(audit[1]).toMatchObject({ taskId: 't1', projectId: 'prj-1', detail: { lease: 'l-1', n: 1 }, at: at(60) });
    expect(audit[2]!.detail).toBeNull();
    expect(audit[1]!.id).toBeLessThan(audit[2]!.id);
  });

  it('lets exactly one of two writers from the same version win', async () => {
    const taskIds = ids(10, 'race');
    await tasks().createTasks(taskIds.map((id) => newTask(id)), 'orch-a');
    for (const id of taskIds) {
      const results = await Promise.allSettled([
        commit().applyTransition(write(id, { to: 'READY', by: 'orch-a', patch: { status: 'READY', lastError: 'a' } })),
        commit().applyTransition(write(id, { to: 'CANCELLED', by: 'orch-b', patch: { status: 'CANCELLED', lastError: 'b' } })),
      ]);
      const won = results.filter((r) => r.status === 'fulfilled');
      const lost = results.filter((r): r is PromiseRejectedResult => r.status === 'rejected');
      expect(won).toHaveLength(1);
      expect(lost).toHaveLength(1);
      expect(lost[0]!.reason).toBeInstanceOf(VersionConflictError);
      expect(lost[0]!.reason).toMatchObject({ expectedVersion: 1, actualVersion: 2 });

      const winner = results[0]!.status === 'fulfilled' ? 'a' : 'b';
      const row = await tasks().getTask(id);
      expect(row).toMatchObject({
        status: winner === 'a' ? 'READY' : 'CANCELLED',
        lastError: winner,
        version: 2,
      });
      const audit = await tasks().listTransitions(id);
      expect(audit).toHaveLength(2);
      expect(audit[1]!.by).toBe(winner === 'a' ? 'orch-a' : 'orch-b');
    }
  });

  it('refuses a stale expected version and changes nothing', async () => {
    await tasks().createTasks([newTask('v1')], 'orch-a');
    await commit().applyTransition(write('v1', { to: 'READY' }));
    const before = await tasks().getTask('v1');
    const err = await commit()
      .applyTransition(write('v1', { to: 'CANCELLED', expectedVersion: 1 }))
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(VersionConflictError);
    expect(err).toMatchObject({ taskId: 'v1', expectedVersion: 1, actualVersion: 2 });
    expect(await tasks().getTask('v1')).toStrictEqual(before);
    expect(await tasks().listTransitions('v1')).toHaveLength(2);
  });

  it('refuses a stale fencing token and changes nothing', async () => {
    await tasks().createTasks([newTask('f1', { status: 'RUNNING', fencingToken: 5 })], 'orch-a');
    const before = await tasks().getTask('f1');
    const err = await commit()
      .applyTransition(write('f1', { from: 'RUNNING', to: 'COMPLETED', fencingToken: 4 }))
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(StaleFencingTokenError);
    expect(err).toMatchObject({ taskId: 'f1', carried: 4, current: 5 });
    // Stale wins over a version mismatch: retrying cannot help the old lease holder.
    const err2 = await commit()
      .applyTransition(write('f1', { from: 'RUNNING', to: 'COMPLETED', fencingToken: 4, expectedVersion: 9 }))
      .catch((e: unknown) => e);
    expect(err2).toBeInstanceOf(StaleFencingTokenError);
    expect(await tasks().getTask('f1')).toStrictEqual(before);
    expect(await tasks().listTransitions('f1')).toHaveLength(1);

    // A newer token the write does not set is no lease's (a forged or misrouted result): refused, nothing changes.
    const forged = await commit()
      .applyTransition(write('f1', { from: 'RUNNING', to: 'COMPLETED', fencingToken: 6 }))
      .catch((e: unknown) => e);
    expect(forged).toBeInstanceOf(StaleFencingTokenError);
    expect(forged).toMatchObject({ taskId: 'f1', carried: 6, current: 5 });
    expect(await tasks().getTask('f1')).toStrictEqual(before);

    // The current token, a newer one the write sets (a new lease), or none at all (not a lease holder's write) pass.
    expect(await commit().applyTransition(write('f1', { from: 'RUNNING', to: 'RUNNING', fencingToken: 5 }))).toBe(2);
    expect(
      await commit().applyTransition(
        write('f1', { from: 'RUNNING', to: 'RUNNING', expectedVersion: 2, fencingToken: 6, patch: { status: 'RUNNING', fencingToken: 6 } }),
      ),
    ).toBe(3);
    expect((await tasks().getTask('f1'))!.fencingToken).toBe(6);
    expect(await commit().applyTransition(write('f1', { from: 'RUNNING', to: 'CANCELLED', expectedVersion: 3 }))).toBe(4);
    await expect(
      commit().applyTransition(write('f1', { from: 'CANCELLED', to: 'CANCELLED', expectedVersion: 4, fencingToken: 5 })),
    ).rejects.toBeInstanceOf(StaleFencingTokenError);
  });

  it('reports an unknown task', async () => {
    const err = await commit().applyTransition(write('nope', { to: 'READY' })).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TaskNotFoundError);
    expect(err).toMatchObject({ taskId: 'nope' });
    expect(await tasks().listTransitions('nope')).toStrictEqual([]);
  });
}
