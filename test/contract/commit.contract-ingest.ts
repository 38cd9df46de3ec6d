import { describe, expect, it } from 'vitest';
import { DuplicateTaskError, ValidationError } from '../../src/errors.js';
import { at, createProject, ids, ingest, newApproval, newProject, newTask, raiseEvent, type ProjectHarnessRef } from './project-store.fixtures.js';

/** Handling an event: its effects and its processed mark, all or nothing, once. */
export function ingestContract(harness: ProjectHarnessRef): void {
  const projects = () => harness().projects;
  const commit = () => harness().commit;
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
      projects: await projects().listProjects(),
      approvals: await projects().listApprovals('prj-1'),
      processed: await projects().isEventProcessed('ev-1'),
      outbox: await tasks().listOutbox(100),
      counts: await tasks().countByStatus(),
      dependents: await tasks().listDependentsOf(['q-old']),
      newTasks: await tasks().getTasks(['n1', 'q-new']),
    };
  }

  it('writes the project, tasks, approval and supersessions, and removes the outbox row', async () => {
    await seedDependents();
    await raiseEvent(harness(), 'ev-1', 'src-1');
    const other = await raiseEvent(harness(), 'ev-2', 'src-2');
    const created = [
      newTask('n1', { createdAt: at(10) }),
      newTask('q-new', { createdAt: at(10), status: 'WAITING_APPROVAL', dependencies: ['q-old'] }),
    ];
    const approval = newApproval('apr-1', { eventId: 'ev-1', taskIds: ['n1', 'q-new'] });
    expect(await projects().isEventProcessed('ev-1')).toBe(false);

    const written = await commit().ingestEvent(
      ingest('ev-1', {
        project: newProject('prj-1', { checkpoints: ['SCRIPT_COMPLETED', 'STORYBOARD_COMPLETED'] }),
        tasks: created,
        approval,
        supersede: [{ oldTaskId: 'q-old', newTaskId: 'q-new' }],
      }),
    );

    expect(written).toStrictEqual({ written: true, ready: false, skipped: false });
    expect(await projects().isEventProcessed('ev-1')).toBe(true);
    expect(await projects().getProject('prj-1')).toStrictEqual({
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
    expect(await projects().getApproval('apr-1')).toStrictEqual({
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

  it('supersedes several tasks in one event, each waiting dependent following its own', async () => {
    await tasks().createTasks(
      [
        newTask('old-a', { status: 'COMPLETED' }),
        newTask('old-b', { status: 'COMPLETED' }),
        newTask('dep-ab', { dependencies: ['old-b', 'x', 'old-a'] }),
        newTask('dep-b', { status: 'WAITING_APPROVAL', dependencies: ['old-b'] }),
        newTask('dep-done', { status: 'COMPLETED', dependencies: ['old-a'] }),
      ],
      'orch-a',
    );
    await commit().ingestEvent(
      ingest('ev-redo', {
        tasks: [newTask('new-a', { dependencies: ['old-a'] }), newTask('new-b')],
        supersede: [
          { oldTaskId: 'old-a', newTaskId: 'new-a' },
          { oldTaskId: 'old-b', newTaskId: 'new-b' },
        ],
      }),
    );
    const deps = async (id: string) => (await tasks().getTask(id))!.dependencies;
    expect(await deps('dep-ab')).toStrictEqual(['new-b', 'x', 'new-a']);
    expect(await deps('dep-b')).toStrictEqual(['new-b']);
    expect(await deps('dep-done')).toStrictEqual(['old-a']); // not waiting
    expect(await deps('new-a')).toStrictEqual(['old-a']); // the new task itself keeps it
  });

  it('leaves an existing project as it is', async () => {
    await createProject(commit(), 'prj-1', { title: 'Original', budgetLimit: 10, checkpoints: ['A'] });
    const before = await projects().getProject('prj-1');
    expect(
      await commit().ingestEvent(
        ingest('ev-1', { eventType: 'PROJECT_CREATED', at: at(50), project: newProject('prj-1', { title: 'Other', budgetLimit: 99 }) }),
      ),
    ).toMatchObject({ written: true });
    expect(await projects().getProject('prj-1')).toStrictEqual(before);
    expect(await projects().getProject('missing')).toBeNull();
  });

  it('returns false and writes nothing for an event id processed before', async () => {
    await seedDependents();
    expect(await commit().ingestEvent(ingest('ev-1', { tasks: [newTask('first')] }))).toMatchObject({ written: true });
    const before = await everything();
    const again = ingest('ev-1', {
      project: newProject('prj-1'),
      tasks: [newTask('n1'), newTask('q-new')],
      approval: newApproval('apr-1'),
      supersede: [{ oldTaskId: 'q-old', newTaskId: 'q-new' }],
    });
    expect(await commit().ingestEvent(again)).toMatchObject({ written: false });
    expect(await harness().peer.commit.ingestEvent(again)).toMatchObject({ written: false });
    expect(await everything()).toStrictEqual(before);
    expect(await projects().getApproval('apr-1')).toBeNull();
    // An event without effects is marked too.
    expect(await commit().ingestEvent(ingest('ev-empty'))).toMatchObject({ written: true });
    expect(await projects().isEventProcessed('ev-empty')).toBe(true);
    expect(await commit().ingestEvent(ingest('ev-empty'))).toMatchObject({ written: false });
  });

  it('fails with DuplicateTaskError on an existing task id, writing nothing', async () => {
    await seedDependents();
    await tasks().createTasks([newTask('dup', { status: 'RUNNING' })], 'orch-a');
    await raiseEvent(harness(), 'ev-1', 'src-1');
    const before = await everything();
    const dupBefore = await tasks().getTask('dup');
    const failing = ingest('ev-1', {
      project: newProject('prj-1'),
      tasks: [newTask('n1'), newTask('dup'), newTask('q-new')],
      approval: newApproval('apr-1', { taskIds: ['n1', 'dup'] }),
      supersede: [{ oldTaskId: 'q-old', newTaskId: 'q-new' }],
    });

    // Twice, from both clients: a refused ingest leaves no broken connection behind.
    for (const s of [commit(), commit(), harness().peer.commit]) {
      const err = await s.ingestEvent(failing).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(DuplicateTaskError);
      expect(err).toMatchObject({ taskIds: ['dup'] });
    }
    const inBatch = await commit()
      .ingestEvent(ingest('ev-1', { tasks: [newTask('n1'), newTask('n1')] }))
      .catch((e: unknown) => e);
    expect(inBatch).toBeInstanceOf(DuplicateTaskError);

    expect(await everything()).toStrictEqual(before);
    expect(await tasks().getTask('dup')).toStrictEqual(dupBefore);
    expect(await projects().getApproval('apr-1')).toBeNull();
    expect(await projects().isEventProcessed('ev-1')).toBe(false);

    // Not marked processed: the event can still be handled.
    expect(await commit().ingestEvent({ ...failing, tasks: [newTask('n1'), newTask('q-new')] })).toMatchObject({ written: true });
    expect(await projects().isEventProcessed('ev-1')).toBe(true);
    expect(await tasks().listOutbox(100)).toStrictEqual([]);
    expect((await tasks().getTask('d-pending'))!.dependencies).toStrictEqual(['q-new', 'x-other']);
    expect(await tasks().getTask('dup')).toStrictEqual(dupBefore);
  });

  it('writes nothing when a later effect fails (an existing approval id)', async () => {
    await commit().ingestEvent(ingest('ev-0', { approval: newApproval('apr-1', { eventId: 'ev-0' }) }));
    await raiseEvent(harness(), 'ev-1', 'src-1');
    const before = await everything();
    await expect(
      commit().ingestEvent(ingest('ev-1', { project: newProject(), tasks: [newTask('n1')], approval: newApproval('apr-1') })),
    ).rejects.toThrow();
    expect(await everything()).toStrictEqual(before);
    expect((await projects().getApproval('apr-1'))!.eventId).toBe('ev-0');
  });

  it('handles an event once when two clients ingest it concurrently', async () => {
    const { peer } = harness();
    const rounds = ids(10, 'race-');
    const results = await Promise.all(
      rounds.flatMap((eventId) => [
        commit().ingestEvent(ingest(eventId, { tasks: [newTask(`${eventId}-a`)], approval: newApproval(`${eventId}-a`) })),
        peer.commit.ingestEvent(ingest(eventId, { tasks: [newTask(`${eventId}-b`)], approval: newApproval(`${eventId}-b`) })),
      ]),
    );
    for (const [i, eventId] of rounds.entries()) {
      const [a, b] = [results[2 * i]!.written, results[2 * i + 1]!.written];
      expect([a, b].sort()).toStrictEqual([false, true]);
      const winner = a ? 'a' : 'b';
      const loser = a ? 'b' : 'a';
      expect(await tasks().getTask(`${eventId}-${winner}`)).not.toBeNull();
      expect(await tasks().getTask(`${eventId}-${loser}`)).toBeNull();
      expect(await projects().getApproval(`${eventId}-${loser}`)).toBeNull();
      expect(await projects().isEventProcessed(eventId)).toBe(true);
    }
    expect(await tasks().countByStatus()).toStrictEqual({ PENDING: rounds.length });
  });

  /** The READY variant of a PENDING fixture task, as the registry builds it. */
  const readyOf = (t: ReturnType<typeof newTask>) => ({
    ...t,
    status: 'READY' as const,
    createdSteps: [{ from: 'PENDING' as const, to: 'READY' as const, event: 'DEPENDENCIES_MET', detail: null }],
  });

  it('writes tasks READY with their reservation when the project is active and the estimates fit', async () => {
    await createProject(commit(), 'prj-1', { budgetLimit: 1 });
    const created = [newTask('r1', { estimatedCost: 0.25 }), newTask('r2', { estimatedCost: 0.5 }), newTask('w1', { dependencies: ['r1'] })];
    const result = await commit().ingestEvent(
      ingest('ev-1', { tasks: created, ready: { tasks: [readyOf(created[0]!), readyOf(created[1]!)], reserve: 0.75, enforce: true } }),
    );
    expect(result).toStrictEqual({ written: true, ready: true, skipped: false, project: await projects().getProject('prj-1') });
    expect(result.project).toMatchObject({ reserved: 0.75, budgetLimit: 1, state: 'active' });
    const r1 = (await tasks().getTask('r1'))!;
    expect(r1).toMatchObject({ status: 'READY', version: 2 });
    expect(await tasks().getTask('w1')).toMatchObject({ status: 'PENDING', version: 1 });
    expect((await tasks().listTransitions('r1')).map((t) => [t.fromStatus, t.toStatus, t.event])).toStrictEqual([
      [null, 'PENDING', 'CREATED'],
      ['PENDING', 'READY', 'DEPENDENCIES_MET'],
    ]);
    expect((await tasks().listTransitions('w1')).map((t) => [t.fromStatus, t.toStatus, t.event])).toStrictEqual([[null, 'PENDING', 'CREATED']]);
    expect((await projects().getProject('prj-1'))!.reserved).toBeCloseTo(0.75);
    expect(await tasks().listReady({ offset: 0, limit: 10 })).toHaveLength(2);
  });

  it('records the dispatch of a task written RUNNING at creation as unconfirmed, in one statement or in the transaction', async () => {
    await createProject(commit(), 'prj-1', { budgetLimit: 10 });
    const runningOf = (t: ReturnType<typeof newTask>, token: number) => ({
      ...t,
      status: 'RUNNING' as const,
      attempts: 1,
      fencingToken: token,
      deadline: at(600),
      createdSteps: [
        { from: 'PENDING' as const, to: 'READY' as const, event: 'DEPENDENCIES_MET', detail: null },
        { from: 'READY' as const, to: 'RUNNING' as const, event: 'DISPATCH', detail: null },
      ],
    });
    // The transaction (the general ingest) and the one statement (onlyIfActive).
    const first = [newTask('x1', { createdAt: at(10) }), newTask('x2', { createdAt: at(10) })];
    expect(
      await commit().ingestEvent(
        ingest('ev-1', { tasks: first, ready: { tasks: [runningOf(first[0]!, 11), readyOf(first[1]!)], reserve: 0.3, enforce: true } }),
      ),
    ).toMatchObject({ written: true, ready: true });
    const second = [newTask('y1', { createdAt: at(11) })];
    expect(
      await commit().ingestEvent(ingest('ev-2', { tasks: second, onlyIfActive: true, ready: { tasks: [runningOf(second[0]!, 12)], reserve: 0.15, enforce: true } })),
    ).toMatchObject({ written: true, ready: true });
    const listed = await tasks().listUnconfirmedDispatches({ before: at(20), limit: 10 });
    expect(listed.map((t) => [t.taskId, t.status, t.fencingToken])).toStrictEqual([['x1', 'RUNNING', 11], ['y1', 'RUNNING', 12]]);
    await tasks().confirmDispatches([{ taskId: 'x1', fencingToken: 11 }, { taskId: 'y1', fencingToken: 12 }]);
    expect(await tasks().listUnconfirmedDispatches({ before: at(20), limit: 10 })).toStrictEqual([]);
  });

  it('writes the tasks PENDING and reserves nothing when the estimates do not fit, the project is not active, or tasks are superseded', async () => {
    await seedDependents();
    await createProject(commit(), 'prj-1', { budgetLimit: 0.5 });
    await createProject(commit(), 'prj-2');
    const t = (id: string, projectId = 'prj-1') => newTask(id, { projectId, estimatedCost: 0.4 });
    const tooBig = [t('a1'), t('a2')];
    expect(
      await commit().ingestEvent(ingest('ev-1', { tasks: tooBig, ready: { tasks: tooBig.map(readyOf), reserve: 0.8, enforce: true } })),
    ).toStrictEqual({ written: true, ready: false, skipped: false });
    // Not enforced, the same amount is reserved (budget checks off)…
    const unchecked = [t('b1')];
    expect(
      await commit().ingestEvent(ingest('ev-2', { tasks: unchecked, ready: { tasks: unchecked.map(readyOf), reserve: 0.8, enforce: false } })),
    ).toMatchObject({ written: true, ready: true, skipped: false, project: { reserved: 0.8 } });
    expect((await projects().getProject('prj-1'))!.reserved).toBeCloseTo(0.8);
    // … but never for a project that is not active.
    await projects().setProjectState('prj-2', 'paused', ['active'], 'manual', at(5));
    const paused = [t('c1', 'prj-2')];
    expect(
      await commit().ingestEvent(
        ingest('ev-3', { projectId: 'prj-2', tasks: paused, ready: { tasks: paused.map(readyOf), reserve: 0.4, enforce: false } }),
      ),
    ).toStrictEqual({ written: true, ready: false, skipped: false });
    const redo = [t('q-new')];
    expect(
      await commit().ingestEvent(
        ingest('ev-4', { tasks: redo, supersede: [{ oldTaskId: 'q-old', newTaskId: 'q-new' }], ready: { tasks: redo.map(readyOf), reserve: 0.4, enforce: false } }),
      ),
    ).toStrictEqual({ written: true, ready: false, skipped: false });
    for (const id of ['a1', 'a2', 'c1', 'q-new']) expect(await tasks().getTask(id)).toMatchObject({ status: 'PENDING', version: 1 });
    expect((await projects().getProject('prj-1'))!.reserved).toBeCloseTo(0.8);
    expect((await projects().getProject('prj-2'))!.reserved).toBe(0);
  });

  describe('onlyIfActive (the caller did not read the project)', () => {
    const skipped = { written: false, ready: false, skipped: true };

    it('writes an active project\'s event as without the flag: tasks READY with their reservation, the outbox row cleared', async () => {
      await createProject(commit(), 'prj-1', { budgetLimit: 1 });
      await raiseEvent(harness(), 'ev-1', 'src-1');
      const created = [newTask('r1', { estimatedCost: 0.25 }), newTask('w1', { dependencies: ['r1'] })];
      const result = await commit().ingestEvent(
        ingest('ev-1', { tasks: created, onlyIfActive: true, ready: { tasks: [readyOf(created[0]!)], reserve: 0.25, enforce: true } }),
      );
      expect(result).toStrictEqual({ written: true, ready: true, skipped: false, project: await projects().getProject('prj-1') });
      expect(result.project).toMatchObject({ reserved: 0.25, budgetLimit: 1 });
      expect(await tasks().getTask('r1')).toMatchObject({ status: 'READY', version: 2 });
      expect(await tasks().getTask('w1')).toMatchObject({ status: 'PENDING', version: 1 });
      expect((await tasks().listTransitions('r1')).map((t) => [t.fromStatus, t.toStatus, t.event, t.by])).toStrictEqual([
        [null, 'PENDING', 'CREATED', 'orch-a'],
        ['PENDING', 'READY', 'DEPENDENCIES_MET', 'orch-a'],
      ]);
      expect((await projects().getProject('prj-1'))!.reserved).toBeCloseTo(0.25);
      expect(await projects().isEventProcessed('ev-1')).toBe(true);
      expect(await tasks().listOutbox(100)).toStrictEqual([]);
      // Again: a duplicate, nothing more written, from either client.
      const again = ingest('ev-1', { tasks: [newTask('r9')], onlyIfActive: true });
      expect(await commit().ingestEvent(again)).toStrictEqual({ written: false, ready: false, skipped: false });
      expect(await harness().peer.commit.ingestEvent(again)).toStrictEqual({ written: false, ready: false, skipped: false });
      expect(await tasks().getTask('r9')).toBeNull();
      expect((await projects().getProject('prj-1'))!.reserved).toBeCloseTo(0.25);
    });

    it('writes nothing and reports skipped for a paused, completed or unknown project, with or without approval', async () => {
      await createProject(commit(), 'prj-1');
      await createProject(commit(), 'prj-2');
      await projects().setProjectState('prj-1', 'paused', ['active'], 'manual', at(5));
      await projects().setProjectState('prj-2', 'completed', ['active'], null, at(5));
      await raiseEvent(harness(), 'ev-1', 'src-1');
      const before = await everything();
      for (const projectId of ['prj-1', 'prj-2', 'missing']) {
        const t = newTask('n1', { projectId });
        expect(await commit().ingestEvent(ingest('ev-1', { projectId, tasks: [t], onlyIfActive: true, ready: { tasks: [readyOf(t)], reserve: 0, enforce: false } }))).toStrictEqual(skipped);
        expect(await commit().ingestEvent(ingest('ev-1', { projectId, tasks: [t], onlyIfActive: true, approval: newApproval('apr-1', { projectId }) }))).toStrictEqual(skipped);
      }
      expect(await everything()).toStrictEqual(before);
      // Without the flag, the same event is written (the caller has read the project).
      expect(await commit().ingestEvent(ingest('ev-1', { tasks: [newTask('n1')] }))).toMatchObject({ written: true });
    });

    it('writes the tasks PENDING when the reservation does not fit, and fails with DuplicateTaskError on a taken id, writing nothing', async () => {
      await createProject(commit(), 'prj-1', { budgetLimit: 0.5 });
      const big = [newTask('a1', { estimatedCost: 0.4 }), newTask('a2', { estimatedCost: 0.4 })];
      expect(
        await commit().ingestEvent(ingest('ev-1', { tasks: big, onlyIfActive: true, ready: { tasks: big.map(readyOf), reserve: 0.8, enforce: true } })),
      ).toStrictEqual({ written: true, ready: false, skipped: false });
      for (const id of ['a1', 'a2']) expect(await tasks().getTask(id)).toMatchObject({ status: 'PENDING', version: 1 });
      expect((await projects().getProject('prj-1'))!.reserved).toBe(0);

      await raiseEvent(harness(), 'ev-2', 'src-2');
      const before = await everything();
      const taken = [newTask('n1'), newTask('a1')];
      const err = await commit()
        .ingestEvent(ingest('ev-2', { tasks: taken, onlyIfActive: true, ready: { tasks: taken.map(readyOf), reserve: 0, enforce: false } }))
        .catch((e: unknown) => e);
      expect(err).toBeInstanceOf(DuplicateTaskError);
      expect(err).toMatchObject({ taskIds: ['a1'] });
      expect(await everything()).toStrictEqual(before);
      expect(await projects().isEventProcessed('ev-2')).toBe(false);
      expect((await projects().getProject('prj-1'))!.reserved).toBe(0);
    });

    it('handles an event once when two clients ingest it concurrently', async () => {
      await createProject(commit(), 'prj-1');
      const { peer } = harness();
      const rounds = ids(10, 'race-');
      const one = (eventId: string, suffix: string) => {
        const t = newTask(`${eventId}-${suffix}`, { estimatedCost: 0.1 });
        return ingest(eventId, { tasks: [t], onlyIfActive: true, ready: { tasks: [readyOf(t)], reserve: 0.1, enforce: false } });
      };
      const results = await Promise.all(rounds.flatMap((eventId) => [commit().ingestEvent(one(eventId, 'a')), peer.commit.ingestEvent(one(eventId, 'b'))]));
      for (const [i, eventId] of rounds.entries()) {
        expect([results[2 * i]!.written, results[2 * i + 1]!.written].sort()).toStrictEqual([false, true]);
        expect(await projects().isEventProcessed(eventId)).toBe(true);
      }
      expect(await tasks().countByStatus()).toStrictEqual({ READY: rounds.length });
      expect((await projects().getProject('prj-1'))!.reserved).toBeCloseTo(0.1 * rounds.length);
    });
  });
  it('refuses values the database cannot store with a permanent ValidationError, and writes nothing', async () => {
    await seedDependents();
    const before = await everything();
    const refused = [
      ingest('ev-1', { eventType: 'PROJECT_CREATED', project: newProject('prj-1', { title: 'a\u0000b' }) }),
      ingest('ev-1', { eventType: 'PROJECT_CREATED', project: newProject('prj-1', { budgetLimit: 1e308 }) }),
      ingest('ev-1', { approval: newApproval('apr-1', { eventId: 'ev-1', summary: { note: 'a\u0000b' } }) }),
      ingest('ev-1', { approval: newApproval('apr-1', { eventId: 'ev-1', summary: { note: 'x\uD800y' } }) }),
      ingest('ev-1', { tasks: [newTask('n1', { input: { brief: 'a\u0000b' } })] }),
    ];
    for (const [i, write] of refused.entries()) {
      const err = await commit().ingestEvent(write).then(() => null, (e: unknown) => e);
      expect(err, `write ${i}`).toBeInstanceOf(ValidationError);
      expect(err, `write ${i}`).toMatchObject({ code: 'ERR_VALIDATION', retryable: false });
    }
    expect(await everything()).toStrictEqual(before);
  });
}
