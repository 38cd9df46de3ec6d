import { expect, it } from 'vitest';
import { DuplicateTaskError } from '../../src/errors.js';
import type { ProjectHarnessRef } from './project-store.contract.js';
import { at, createProject, ids, ingest, newApproval, newProject, newTask, raiseEvent } from './project-store.fixtures.js';

/** Handling an event: its effects and its processed mark, all or nothing, once. */
export function ingestContract(harness: ProjectHarnessRef): void {
  const store = () => harness().store;
  const tasks = () => harness().tasks;

  /** Tasks that depend on `q-old`, in several states and projects. */
  async function seedDependents(): Promise<void> {
    await tasks().createTasks(
      [
        newTask('q-old', { status: 'COMPLETED' }),
        newTask('d-pending', { dependencies: ['q-old', 'x-other'] }),
        newTask('d-waiting', { status: 'WAITING_APPROVAL', dependencies: ['q-old'] }),
        newTask('d-ready', { status: 'READY', dependencies: ['q-old'] }),
        newTask('d-other', { projectId: 'prj-2', dependencies: ['q-old'] }),
        newTask('d-both', { dependencies: ['q-new', 'y-other', 'q-old'] }),
      ],
      'orch-a',
    );
  }

  /** Everything an ingest of event `ev-1` (project prj-1, tasks n1/q-new, approval apr-1) could change. */
  async function everything() {
    return {
      projects: await store().listProjects(),
      approvals: await store().listApprovals('prj-1'),
      processed: await store().isEventProcessed('ev-1'),
      outbox: await tasks().listOutbox(100),
      counts: await tasks().countByStatus(),
      dependents: await tasks().listDependents('q-old'),
      newTasks: await tasks().getTasks(['n1', 'q-new']),
    };
  }

  it('writes the project, tasks, approval and supersessions, and removes the outbox row', async () => {
    await seedDependents();
    await raiseEvent(tasks(), 'ev-1', 'src-1');
    const other = await raiseEvent(tasks(), 'ev-2', 'src-2');
    const created = [
      newTask('n1', { createdAt: at(10) }),
      newTask('q-new', { createdAt: at(10), status: 'WAITING_APPROVAL', dependencies: ['q-old'] }),
    ];
    const approval = newApproval('apr-1', { eventId: 'ev-1', taskIds: ['n1', 'q-new'] });
    expect(await store().isEventProcessed('ev-1')).toBe(false);

    const written = await store().ingestEvent(
      ingest('ev-1', {
        project: newProject('prj-1', { checkpoints: ['SCRIPT_COMPLETED', 'STORYBOARD_COMPLETED'] }),
        tasks: created,
        approval,
        supersede: [{ oldTaskId: 'q-old', newTaskId: 'q-new' }],
      }),
    );

    expect(written).toBe(true);
    expect(await store().isEventProcessed('ev-1')).toBe(true);
    expect(await store().getProject('prj-1')).toStrictEqual({
      projectId: 'prj-1',
      title: 'Film prj-1',
      state: 'active',
      budgetLimit: 25.5,
      spent: 0,
      reserved: 0,
      pausedReason: null,
      warningLevel: 0,
      checkpoints: ['SCRIPT_COMPLETED', 'STORYBOARD_COMPLETED'],
      version: 1,
      createdAt: at(10),
      updatedAt: at(10),
    });
    expect(await tasks().getTasks(['n1', 'q-new'])).toStrictEqual(
      created.map((t) => ({ ...t, version: 1, updatedAt: t.createdAt })),
    );
    expect(await tasks().listTransitions('n1')).toMatchObject([{ fromStatus: null, toStatus: 'PENDING', by: 'orch-a' }]);
    expect(await store().getApproval('apr-1')).toStrictEqual({
      ...approval,
      status: 'pending',
      comment: null,
      decidedBy: null,
      decidedAt: null,
    });
    // Waiting dependents follow the new task; others (a READY task, another project's,
    // the new task itself) keep theirs.
    const deps = async (id: string) => (await tasks().getTask(id))!.dependencies;
    expect(await deps('d-pending')).toStrictEqual(['q-new', 'x-other']);
    expect(await deps('d-waiting')).toStrictEqual(['q-new']);
    expect(await deps('d-ready')).toStrictEqual(['q-old']);
    expect(await deps('d-other')).toStrictEqual(['q-old']);
    expect(await deps('q-new')).toStrictEqual(['q-old']);
    expect(await deps('d-both')).toStrictEqual(['q-new', 'y-other']); // once
    expect(await tasks().listOutbox(100)).toStrictEqual([other]);
  });

  it('leaves an existing project as it is', async () => {
    await createProject(store(), 'prj-1', { title: 'Original', budgetLimit: 10, checkpoints: ['A'] });
    const before = await store().getProject('prj-1');
    expect(
      await store().ingestEvent(
        ingest('ev-1', { eventType: 'PROJECT_CREATED', at: at(50), project: newProject('prj-1', { title: 'Other', budgetLimit: 99 }) }),
      ),
    ).toBe(true);
    expect(await store().getProject('prj-1')).toStrictEqual(before);
    expect(await store().getProject('missing')).toBeNull();
  });

  it('returns false and writes nothing for an event id processed before', async () => {
    await seedDependents();
    expect(await store().ingestEvent(ingest('ev-1', { tasks: [newTask('first')] }))).toBe(true);
    const before = await everything();
    const again = ingest('ev-1', {
      project: newProject('prj-1'),
      tasks: [newTask('n1'), newTask('q-new')],
      approval: newApproval('apr-1'),
      supersede: [{ oldTaskId: 'q-old', newTaskId: 'q-new' }],
    });
    expect(await store().ingestEvent(again)).toBe(false);
    expect(await harness().peer.store.ingestEvent(again)).toBe(false);
    expect(await everything()).toStrictEqual(before);
    expect(await store().getApproval('apr-1')).toBeNull();
    // An event without effects is marked too.
    expect(await store().ingestEvent(ingest('ev-empty'))).toBe(true);
    expect(await store().isEventProcessed('ev-empty')).toBe(true);
    expect(await store().ingestEvent(ingest('ev-empty'))).toBe(false);
  });

  it('fails with DuplicateTaskError on an existing task id, writing nothing', async () => {
    await seedDependents();
    await tasks().createTasks([newTask('dup', { status: 'RUNNING' })], 'orch-a');
    await raiseEvent(tasks(), 'ev-1', 'src-1');
    const before = await everything();
    const dupBefore = await tasks().getTask('dup');
    const failing = ingest('ev-1', {
      project: newProject('prj-1'),
      tasks: [newTask('n1'), newTask('dup'), newTask('q-new')],
      approval: newApproval('apr-1', { taskIds: ['n1', 'dup'] }),
      supersede: [{ oldTaskId: 'q-old', newTaskId: 'q-new' }],
    });

    // Twice, from both clients: a refused ingest leaves no broken connection behind.
    for (const s of [store(), store(), harness().peer.store]) {
      const err = await s.ingestEvent(failing).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(DuplicateTaskError);
      expect(err).toMatchObject({ taskIds: ['dup'] });
    }
    const inBatch = await store()
      .ingestEvent(ingest('ev-1', { tasks: [newTask('n1'), newTask('n1')] }))
      .catch((e: unknown) => e);
    expect(inBatch).toBeInstanceOf(DuplicateTaskError);

    expect(await everything()).toStrictEqual(before);
    expect(await tasks().getTask('dup')).toStrictEqual(dupBefore);
    expect(await store().getApproval('apr-1')).toBeNull();
    expect(await store().isEventProcessed('ev-1')).toBe(false);

    // Not marked processed: the event can still be handled.
    expect(await store().ingestEvent({ ...failing, tasks: [newTask('n1'), newTask('q-new')] })).toBe(true);
    expect(await store().isEventProcessed('ev-1')).toBe(true);
    expect(await tasks().listOutbox(100)).toStrictEqual([]);
    expect((await tasks().getTask('d-pending'))!.dependencies).toStrictEqual(['q-new', 'x-other']);
    expect(await tasks().getTask('dup')).toStrictEqual(dupBefore);
  });

  it('writes nothing when a later effect fails (an existing approval id)', async () => {
    await store().ingestEvent(ingest('ev-0', { approval: newApproval('apr-1', { eventId: 'ev-0' }) }));
    await raiseEvent(tasks(), 'ev-1', 'src-1');
    const before = await everything();
    await expect(
      store().ingestEvent(ingest('ev-1', { project: newProject(), tasks: [newTask('n1')], approval: newApproval('apr-1') })),
    ).rejects.toThrow();
    expect(await everything()).toStrictEqual(before);
    expect((await store().getApproval('apr-1'))!.eventId).toBe('ev-0');
  });

  it('handles an event once when two clients ingest it concurrently', async () => {
    const { peer } = harness();
    const rounds = ids(10, 'race-');
    const results = await Promise.all(
      rounds.flatMap((eventId) => [
        store().ingestEvent(ingest(eventId, { tasks: [newTask(`${eventId}-a`)], approval: newApproval(`${eventId}-a`) })),
        peer.store.ingestEvent(ingest(eventId, { tasks: [newTask(`${eventId}-b`)], approval: newApproval(`${eventId}-b`) })),
      ]),
    );
    for (const [i, eventId] of rounds.entries()) {
      const [a, b] = [results[2 * i], results[2 * i + 1]];
      expect([a, b].sort()).toStrictEqual([false, true]);
      const winner = a ? 'a' : 'b';
      const loser = a ? 'b' : 'a';
      expect(await tasks().getTask(`${eventId}-${winner}`)).not.toBeNull();
      expect(await tasks().getTask(`${eventId}-${loser}`)).toBeNull();
      expect(await store().getApproval(`${eventId}-${loser}`)).toBeNull();
      expect(await store().isEventProcessed(eventId)).toBe(true);
    }
    expect(await tasks().countByStatus()).toStrictEqual({ PENDING: rounds.length });
  });
}
