import { expect, it } from 'vitest';
import {
  DuplicateTaskError,
  StaleFencingTokenError,
  TaskNotFoundError,
  VersionConflictError,
} from '../../src/errors.js';
import { at, ids, newTask, write, type HarnessRef } from './task-store.fixtures.js';

/** Creating tasks and applying transitions. */
export function writeContract(harness: HarnessRef): void {
  const store = () => harness().store;

  it('creates a batch of 100 in one call and reads every field back exactly', async () => {
    const batch = ids(100, 'b').map((id, i) =>
      newTask(id, {
        priority: i * 10,
        estimatedCost: i === 0 ? null : Number((i * 1.2345).toFixed(4)),
        createdAt: at(i),
      }),
    );
    const rich = newTask('rich', {
      projectId: 'prj-2',
      taskType: 'RENDER_SHOT',
      assignedTo: 'video_generator',
      status: 'RUNNING',
      priority: 1000,
      input: { shots: [1, 2, { k: 'v' }], nested: { ok: true, none: null }, text: 'é€😀 "quoted"' },
      output: { partial: [0.5] },
      dependencies: ['b0001', 'b0002'],
      estimatedCost: 999_999.9999,
      actualCost: 0.0001,
      createdAt: new Date('2024-12-31T23:59:59.999Z'),
      startedAt: new Date('2025-01-01T00:00:00.001Z'),
      completedAt: null,
      attempts: 2,
      maxAttempts: 5,
      lastError: 'timeout after 600000ms',
      deadline: new Date('2025-01-01T00:10:00.500Z'),
      notBefore: new Date('2024-12-31T23:00:00.000Z'),
      fencingToken: 2 ** 40 + 3,
      timeoutMs: 120_000,
      snapshot: { value: 'running', context: { list: [1, 'two'], flag: false } },
      machineVersion: 'v2.1',
    });
    await store().createTasks([...batch, rich], 'orch-a');

    const back = await store().getTasks([...batch.map((t) => t.taskId), 'rich']);
    expect(back).toHaveLength(101);
    for (const [i, original] of [...batch, rich].entries()) {
      expect(back[i]).toStrictEqual({ ...original, version: 1, updatedAt: original.createdAt });
    }
    expect(await store().getTask('rich')).toStrictEqual({ ...rich, version: 1, updatedAt: rich.createdAt });
    expect(await store().getTask('missing')).toBeNull();
    expect(await store().getTasks(['missing', 'b0003', 'b0002'])).toMatchObject([
      { taskId: 'b0003' },
      { taskId: 'b0002' },
    ]);

    const audit = await store().listTransitions('rich');
    expect(audit).toStrictEqual([
      {
        id: expect.any(Number),
        taskId: 'rich',
        projectId: 'prj-2',
        fromStatus: null,
        toStatus: 'RUNNING',
        event: 'CREATED',
        detail: null,
        at: rich.createdAt,
        by: 'orch-a',
      },
    ]);
    expect(await store().countByStatus()).toStrictEqual({ PENDING: 100, RUNNING: 1 });
  });

  it('refuses a batch holding an existing id, and inserts nothing', async () => {
    await store().createTasks([newTask('dup')], 'orch-a');
    const err = await store()
      .createTasks([newTask('new1'), newTask('dup'), newTask('new2')], 'orch-a')
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(DuplicateTaskError);
    expect((err as DuplicateTaskError).taskIds).toContain('dup');
    expect(await store().getTasks(['new1', 'new2'])).toStrictEqual([]);
    expect(await store().listTransitions('new1')).toStrictEqual([]);
    expect(await store().listTransitions('dup')).toHaveLength(1);
    expect(await store().countByStatus()).toStrictEqual({ PENDING: 1 });
  });

  it('refuses a batch repeating an id, and inserts nothing', async () => {
    const err = await store()
      .createTasks([newTask('x1'), newTask('x2'), newTask('x1')], 'orch-a')
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(DuplicateTaskError);
    expect((err as DuplicateTaskError).taskIds).toStrictEqual(['x1']);
    expect(await store().countByStatus()).toStrictEqual({});
  });

  it('applies a transition: columns, snapshot, version and audit row together', async () => {
    await store().createTasks([newTask('t1', { status: 'READY', lastError: 'previous' })], 'orch-a');
    const v2 = await store().applyTransition(
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
    const running = await store().getTask('t1');
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

    const v3 = await store().applyTransition(
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
    expect(await store().getTask('t1')).toMatchObject({
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

    const audit = await store().listTransitions('t1');
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
    const tasks = ids(10, 'race');
    await store().createTasks(tasks.map((id) => newTask(id)), 'orch-a');
    for (const id of tasks) {
      const results = await Promise.allSettled([
        store().applyTransition(write(id, { to: 'READY', by: 'orch-a', patch: { status: 'READY', lastError: 'a' } })),
        store().applyTransition(write(id, { to: 'CANCELLED', by: 'orch-b', patch: { status: 'CANCELLED', lastError: 'b' } })),
      ]);
      const won = results.filter((r) => r.status === 'fulfilled');
      const lost = results.filter((r): r is PromiseRejectedResult => r.status === 'rejected');
      expect(won).toHaveLength(1);
      expect(lost).toHaveLength(1);
      expect(lost[0]!.reason).toBeInstanceOf(VersionConflictError);
      expect(lost[0]!.reason).toMatchObject({ expectedVersion: 1, actualVersion: 2 });

      const winner = results[0]!.status === 'fulfilled' ? 'a' : 'b';
      const row = await store().getTask(id);
      expect(row).toMatchObject({
        status: winner === 'a' ? 'READY' : 'CANCELLED',
        lastError: winner,
        version: 2,
      });
      const audit = await store().listTransitions(id);
      expect(audit).toHaveLength(2);
      expect(audit[1]!.by).toBe(winner === 'a' ? 'orch-a' : 'orch-b');
    }
  });

  it('refuses a stale expected version and changes nothing', async () => {
    await store().createTasks([newTask('v1')], 'orch-a');
    await store().applyTransition(write('v1', { to: 'READY' }));
    const before = await store().getTask('v1');
    const err = await store()
      .applyTransition(write('v1', { to: 'CANCELLED', expectedVersion: 1 }))
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(VersionConflictError);
    expect(err).toMatchObject({ taskId: 'v1', expectedVersion: 1, actualVersion: 2 });
    expect(await store().getTask('v1')).toStrictEqual(before);
    expect(await store().listTransitions('v1')).toHaveLength(2);
  });

  it('refuses a stale fencing token and changes nothing', async () => {
    await store().createTasks([newTask('f1', { status: 'RUNNING', fencingToken: 5 })], 'orch-a');
    const before = await store().getTask('f1');
    const err = await store()
      .applyTransition(write('f1', { from: 'RUNNING', to: 'COMPLETED', fencingToken: 4 }))
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(StaleFencingTokenError);
    expect(err).toMatchObject({ taskId: 'f1', carried: 4, current: 5 });
    // Stale wins over a version mismatch: retrying cannot help the old lease holder.
    const err2 = await store()
      .applyTransition(write('f1', { from: 'RUNNING', to: 'COMPLETED', fencingToken: 4, expectedVersion: 9 }))
      .catch((e: unknown) => e);
    expect(err2).toBeInstanceOf(StaleFencingTokenError);
    expect(await store().getTask('f1')).toStrictEqual(before);
    expect(await store().listTransitions('f1')).toHaveLength(1);

    // The current token, a newer one, or none at all (not a lease holder's write) pass.
    expect(await store().applyTransition(write('f1', { from: 'RUNNING', to: 'RUNNING', fencingToken: 5 }))).toBe(2);
    expect(
      await store().applyTransition(
        write('f1', { from: 'RUNNING', to: 'RUNNING', expectedVersion: 2, fencingToken: 6, patch: { status: 'RUNNING', fencingToken: 6 } }),
      ),
    ).toBe(3);
    expect((await store().getTask('f1'))!.fencingToken).toBe(6);
    expect(await store().applyTransition(write('f1', { from: 'RUNNING', to: 'CANCELLED', expectedVersion: 3 }))).toBe(4);
    await expect(
      store().applyTransition(write('f1', { from: 'CANCELLED', to: 'CANCELLED', expectedVersion: 4, fencingToken: 5 })),
    ).rejects.toBeInstanceOf(StaleFencingTokenError);
  });

  it('reports an unknown task', async () => {
    const err = await store().applyTransition(write('nope', { to: 'READY' })).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TaskNotFoundError);
    expect(err).toMatchObject({ taskId: 'nope' });
    expect(await store().listTransitions('nope')).toStrictEqual([]);
  });
}
