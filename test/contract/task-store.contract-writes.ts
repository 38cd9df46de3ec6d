import { expect, it } from 'vitest';
import { DuplicateTaskError } from '../../src/errors.js';
import { at, ids, newTask, type HarnessRef } from './task-store.fixtures.js';

/** Creating tasks: one round trip, all or none. */
export function writeContract(harness: HarnessRef): void {
  const store = () => harness().tasks;

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

  it('creates a batch in one round trip, and makes none for an empty batch or one repeating an id', async () => {
    const trips = async (run: () => Promise<unknown>): Promise<number> => {
      const before = harness().roundTrips();
      await run().catch(() => undefined);
      return harness().roundTrips() - before;
    };
    expect(await trips(() => store().createTasks(ids(50, 'rt').map((id) => newTask(id)), 'orch-a'))).toBe(1);
    expect(await trips(() => store().createTasks([], 'orch-a'))).toBe(0);
    expect(await trips(() => store().createTasks([newTask('rx'), newTask('rx')], 'orch-a'))).toBe(0);
    expect(await store().countByStatus()).toStrictEqual({ PENDING: 50 });
  });
}
