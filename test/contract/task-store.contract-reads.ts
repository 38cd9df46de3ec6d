import { expect, it } from 'vitest';
import type { TaskStatus } from '../../src/domain/task.js';
import { at, ids, newTask, write, type HarnessRef } from './task-store.fixtures.js';

/** The read queries the scheduler, recovery and dependency checks use. */
export function readContract(harness: HarnessRef): void {
  const store = () => harness().tasks;
  const commit = () => harness().commit;

  it('pages through exactly the non-final tasks, once each', async () => {
    const statuses: [TaskStatus, number][] = [
      ['PENDING', 0], ['READY', 0], ['RUNNING', 1], ['WAITING_APPROVAL', 0], ['FAILED', 1],
      ['FAILED', 3], ['COMPLETED', 1], ['CANCELLED', 0],
    ];
    const all = ids(43, 'nf').map((id, i) => {
      const [status, attempts] = statuses[(i * 5) % statuses.length]!;
      return newTask(id, { status, attempts, maxAttempts: 3 });
    });
    await store().createTasks(all, 'orch-a');
    const expected = all
      .filter((t) => !['COMPLETED', 'CANCELLED'].includes(t.status) && !(t.status === 'FAILED' && t.attempts >= 3))
      .map((t) => t.taskId);

    const seen: string[] = [];
    let after: string | undefined;
    for (let guard = 0; guard < 100; guard++) {
      const page = await store().loadNonFinal({ limit: 4, ...(after === undefined ? {} : { afterTaskId: after }) });
      expect(page.length).toBeLessThanOrEqual(4);
      seen.push(...page.map((t) => t.taskId));
      if (page.length < 4) break;
      after = page.at(-1)!.taskId;
    }
    expect(seen).toStrictEqual(expected); // ids are zero-padded: sort order is the same everywhere
    expect(new Set(seen).size).toBe(seen.length);

    // Only some statuses: the same order, the same paging.
    const running: string[] = [];
    after = undefined;
    for (let guard = 0; guard < 100; guard++) {
      const page = await store().loadNonFinal({ limit: 2, statuses: ['RUNNING', 'FAILED'], ...(after === undefined ? {} : { afterTaskId: after }) });
      running.push(...page.map((t) => t.taskId));
      if (page.length < 2) break;
      after = page.at(-1)!.taskId;
    }
    const retryable = all.filter((t) => t.status === 'RUNNING' || (t.status === 'FAILED' && t.attempts < 3)).map((t) => t.taskId);
    expect(retryable.length).toBeGreaterThan(2);
    expect(running).toStrictEqual(retryable);
  });

  it('lists a project, optionally by status, in creation order', async () => {
    await store().createTasks(
      [
        newTask('p1c', { createdAt: at(3), status: 'READY' }),
        newTask('p1a', { createdAt: at(1), status: 'RUNNING' }),
        newTask('p1b', { createdAt: at(2), status: 'COMPLETED' }),
        newTask('p1d', { createdAt: at(4), status: 'PENDING' }),
        newTask('p2a', { createdAt: at(0), status: 'READY', projectId: 'prj-2' }),
      ],
      'orch-a',
    );
    const idsOf = (ts: { taskId: string }[]) => ts.map((t) => t.taskId);
    expect(idsOf(await store().listByProject('prj-1'))).toStrictEqual(['p1a', 'p1b', 'p1c', 'p1d']);
    expect(idsOf(await store().listByProject('prj-1', ['READY', 'RUNNING']))).toStrictEqual(['p1a', 'p1c']);
    expect(await store().listByProject('prj-1', [])).toStrictEqual([]);
    expect(idsOf(await store().listByProject('prj-2', ['READY']))).toStrictEqual(['p2a']);
    expect(await store().listByProject('prj-none')).toStrictEqual([]);
    expect(await store().countByStatus('prj-1')).toStrictEqual({ READY: 1, RUNNING: 1, COMPLETED: 1, PENDING: 1 });
    expect(await store().countByStatus('prj-2')).toStrictEqual({ READY: 1 });
    expect(await store().countByStatus()).toStrictEqual({ READY: 2, RUNNING: 1, COMPLETED: 1, PENDING: 1 });
    expect(await store().countByProjects(['prj-1', 'prj-2', 'prj-none'])).toStrictEqual({ 'prj-1': { READY: 1, RUNNING: 1, COMPLETED: 1, PENDING: 1 }, 'prj-2': { READY: 1 } });
    expect(await store().countByProjects([])).toStrictEqual({});
  });

  it('pages a project in creation order, by status, from a cursor', async () => {
    await store().createTasks(
      [
        newTask('p1c', { createdAt: at(3), status: 'READY' }),
        newTask('p1a', { createdAt: at(1), status: 'RUNNING' }),
        newTask('p1b2', { createdAt: at(2), status: 'COMPLETED' }),
        newTask('p1b1', { createdAt: at(2), status: 'PENDING' }),
        newTask('p1d', { createdAt: at(4), status: 'PENDING' }),
        newTask('p2a', { createdAt: at(0), status: 'READY', projectId: 'prj-2' }),
      ],
      'orch-a',
    );
    const idsOf = (ts: { taskId: string }[]) => ts.map((t) => t.taskId);
    const page = (p: Parameters<ReturnType<typeof store>['listProjectPage']>[1]) => store().listProjectPage('prj-1', p).then(idsOf);
    expect(await page({ limit: 10 })).toStrictEqual(['p1a', 'p1b1', 'p1b2', 'p1c', 'p1d']);
    expect(await page({ limit: 2 })).toStrictEqual(['p1a', 'p1b1']);
    // Same creation time: by id, and the cursor goes between them.
    expect(await page({ limit: 2, after: 'p1b1' })).toStrictEqual(['p1b2', 'p1c']);
    expect(await page({ limit: 2, after: 'p1d' })).toStrictEqual([]);
    expect(await page({ limit: 2, after: 'nope' })).toStrictEqual([]);
    expect(await page({ limit: 10, statuses: ['PENDING', 'READY'] })).toStrictEqual(['p1b1', 'p1c', 'p1d']);
    expect(await page({ limit: 10, statuses: ['PENDING'], after: 'p1b1' })).toStrictEqual(['p1d']);
    expect(await page({ limit: 10, statuses: [] })).toStrictEqual([]);
    expect((await store().listProjectPage('prj-1', { limit: 1 }))[0]).toStrictEqual(await store().getTask('p1a'));
    expect(await store().listProjectPage('prj-none', { limit: 10 })).toStrictEqual([]);
  });

  it('summarizes a project for the budget forecast', async () => {
    await store().createTasks(
      [
        newTask('s1', { projectId: 'prj-s', status: 'PENDING', taskType: 'WRITE_SCRIPT', estimatedCost: 1.25 }),
        newTask('s2', { projectId: 'prj-s', status: 'WAITING_APPROVAL', taskType: 'PLAN_SHOTS', estimatedCost: 0.5 }),
        newTask('s3', { projectId: 'prj-s', status: 'READY', taskType: 'PLAN_SHOTS', estimatedCost: 7 }),
        newTask('s4', { projectId: 'prj-other', status: 'PENDING', taskType: 'EDIT_IMAGE', estimatedCost: 9 }),
      ],
      'orch-a',
    );
    const summary = await store().summarizeProject('prj-s');
    expect(summary.unreservedEstimate).toBeCloseTo(1.75, 4);
    expect([...summary.taskTypes].sort()).toStrictEqual(['PLAN_SHOTS', 'WRITE_SCRIPT']);
    expect(await store().summarizeProject('prj-none')).toStrictEqual({ unreservedEstimate: 0, taskTypes: [] });
  });

  it('lists READY tasks by priority, then the time they became READY', async () => {
    // Ids sort the other way round from the READY times, so the order must come from ready_at.
    await store().createTasks(
      [
        newTask('r-lo', { status: 'READY', priority: 100, createdAt: at(0) }),
        newTask('r-hi-1', { priority: 900, createdAt: at(0) }),
        newTask('r-hi-2', { priority: 900, createdAt: at(0) }),
        newTask('r-mid-1', { status: 'READY', priority: 500, createdAt: at(50) }),
        newTask('r-mid-2', { priority: 500, createdAt: at(0) }),
        newTask('r-running', { status: 'RUNNING', priority: 1000 }),
      ],
      'orch-a',
    );
    await commit().applyTransition(write('r-hi-1', { to: 'READY', at: at(30) }));
    await commit().applyTransition(write('r-hi-2', { to: 'READY', at: at(20) }));
    await commit().applyTransition(write('r-mid-2', { to: 'READY', at: at(40) }));
    // Staying READY (a snapshot update) keeps the place in the queue.
    await commit().applyTransition(write('r-hi-2', { from: 'READY', to: 'READY', expectedVersion: 2, at: at(90) }));
    const order = await store().listReady({ offset: 0, limit: 10 });
    expect(order).toStrictEqual([
      { taskId: 'r-hi-2', priority: 900 },
      { taskId: 'r-hi-1', priority: 900 },
      { taskId: 'r-mid-2', priority: 500 },
      { taskId: 'r-mid-1', priority: 500 },
      { taskId: 'r-lo', priority: 100 },
    ]);
    expect(await store().listReady({ offset: 1, limit: 2 })).toStrictEqual(order.slice(1, 3));
    expect(await store().listReady({ offset: 5, limit: 2 })).toStrictEqual([]);
  });

  it('lists READY tasks out longer than a moment, of projects that may dispatch, the longest out first', async () => {
    await harness().seedProject({ projectId: 'prj-a', budgetLimit: null });
    await harness().seedProject({ projectId: 'prj-c', state: 'completed', budgetLimit: null });
    await harness().seedProject({ projectId: 'prj-p', state: 'paused', budgetLimit: null });
    await store().createTasks(
      [
        newTask('s-old', { projectId: 'prj-a', priority: 100 }),
        newTask('s-older', { projectId: 'prj-c', priority: 900 }),
        newTask('s-new', { projectId: 'prj-a' }),
        newTask('s-paused', { projectId: 'prj-p' }),
        newTask('s-pending', { projectId: 'prj-a' }),
      ],
      'orch-a',
    );
    await commit().applyTransition(write('s-old', { to: 'READY', at: at(20) }));
    await commit().applyTransition(write('s-older', { to: 'READY', at: at(10) }));
    await commit().applyTransition(write('s-new', { to: 'READY', at: at(100) }));
    await commit().applyTransition(write('s-paused', { to: 'READY', at: at(5) }));
    expect(await store().listStrayReady(at(50), 10)).toStrictEqual([
      { taskId: 's-older', priority: 900 },
      { taskId: 's-old', priority: 100 },
    ]);
    expect(await store().listStrayReady(at(50), 1)).toStrictEqual([{ taskId: 's-older', priority: 900 }]);
    expect(await store().listStrayReady(at(0), 10)).toStrictEqual([]);
  });

  it('lists PENDING tasks whose dependencies are all final, back-off over, of projects that accept work', async () => {
    await harness().seedProject({ projectId: 'prj-a', budgetLimit: null });
    await harness().seedProject({ projectId: 'prj-p', state: 'paused', budgetLimit: null });
    await store().createTasks(
      [
        newTask('d-done', { projectId: 'prj-a', status: 'COMPLETED' }),
        newTask('d-dead', { projectId: 'prj-a', status: 'FAILED', attempts: 3, maxAttempts: 3 }),
        newTask('d-live', { projectId: 'prj-a', status: 'RUNNING' }),
        newTask('d-retry', { projectId: 'prj-a', status: 'FAILED', attempts: 1, maxAttempts: 3 }),
        newTask('p-met', { projectId: 'prj-a', dependencies: ['d-done'], createdAt: at(0) }),
        newTask('p-broken', { projectId: 'prj-a', dependencies: ['d-done', 'd-dead'], createdAt: at(0) }),
        newTask('p-none', { projectId: 'prj-a', createdAt: at(0) }),
        newTask('p-waiting', { projectId: 'prj-a', dependencies: ['d-done', 'd-live'], createdAt: at(0) }),
        newTask('p-retrying', { projectId: 'prj-a', dependencies: ['d-retry'], createdAt: at(0) }),
        newTask('p-backoff', { projectId: 'prj-a', notBefore: at(500), createdAt: at(0) }),
        newTask('p-recent', { projectId: 'prj-a', dependencies: ['d-done'], createdAt: at(200) }),
        newTask('p-paused', { projectId: 'prj-p', dependencies: ['d-done'], createdAt: at(0) }),
        newTask('p-ready', { projectId: 'prj-a', status: 'READY', createdAt: at(0) }),
      ],
      'orch-a',
    );
    expect(await store().listPromotable(at(100), 100)).toStrictEqual(['p-broken', 'p-met', 'p-none']);
    expect(await store().listPromotable(at(100), 2)).toStrictEqual(['p-broken', 'p-met']);
    expect(await store().listPromotable(at(600), 100)).toStrictEqual(['p-backoff', 'p-broken', 'p-met', 'p-none', 'p-recent']);
  });

  it('lists the outbox raised before a time, and removes an event from it', async () => {
    await store().createTasks([newTask('o-1')], 'orch-a');
    const raise = (eventId: string, seconds: number) => ({ eventId, eventType: 'SCRIPT_COMPLETED', projectId: 'prj-1', payload: { n: seconds }, taskId: 'o-1', at: at(seconds) });
    await commit().applyTransition(write('o-1', { to: 'READY', raise: [raise('ev-early', 10), raise('ev-late', 90)] }));
    expect((await store().listOutbox(10)).map((e) => e.eventId)).toStrictEqual(['ev-early', 'ev-late']);
    expect((await store().listOutbox(10, at(50))).map((e) => e.eventId)).toStrictEqual(['ev-early']);
    expect(await store().removeOutbox('ev-early')).toBe(true);
    expect(await store().removeOutbox('ev-early')).toBe(false);
    expect((await store().listOutbox(10)).map((e) => e.eventId)).toStrictEqual(['ev-late']);
  });

  it('lists the dependents of a task', async () => {
    await store().createTasks(
      [
        newTask('dep-a'),
        newTask('dep-b', { dependencies: ['dep-a'] }),
        newTask('dep-c', { dependencies: ['dep-x', 'dep-a'] }),
        newTask('dep-d', { dependencies: ['dep-b'] }),
        newTask('dep-a2', { dependencies: ['dep-a2x'] }), // prefix of nothing: exact match only
      ],
      'orch-a',
    );
    const idsOf = async (id: string) => (await store().listDependentsOf([id])).map((t) => t.taskId).sort();
    expect(await idsOf('dep-a')).toStrictEqual(['dep-b', 'dep-c']);
    expect(await idsOf('dep-b')).toStrictEqual(['dep-d']);
    expect(await idsOf('dep-d')).toStrictEqual([]);
    expect(await idsOf('dep-a2')).toStrictEqual([]);
  });

  it("reads tasks' links (status, attempts, dependencies) as getTasks has them, in the order asked, unknown ids left out", async () => {
    await store().createTasks(
      [
        newTask('ln-a', { status: 'RUNNING', attempts: 2, maxAttempts: 4, fencingToken: 1 }),
        newTask('ln-b', { dependencies: ['ln-a', 'ln-x'] }),
      ],
      'orch-a',
    );
    const links = await store().getLinks(['ln-b', 'ln-missing', 'ln-a', 'ln-b']);
    expect(links).toStrictEqual([
      { taskId: 'ln-b', status: 'PENDING', attempts: 0, maxAttempts: 3, dependencies: ['ln-a', 'ln-x'] },
      { taskId: 'ln-a', status: 'RUNNING', attempts: 2, maxAttempts: 4, dependencies: [] },
    ]);
    const full = await store().getTasks(['ln-b', 'ln-a']);
    expect(links).toStrictEqual(full.map(({ taskId, status, attempts, maxAttempts, dependencies }) => ({ taskId, status, attempts, maxAttempts, dependencies })));
    expect(await store().getLinks([])).toStrictEqual([]);
  });

  it('lists RUNNING tasks whose deadline has passed', async () => {
    await store().createTasks(
      [
        newTask('e3', { status: 'RUNNING', deadline: at(30) }),
        newTask('e1', { status: 'RUNNING', deadline: at(10) }),
        newTask('e2', { status: 'RUNNING', deadline: at(20) }),
        newTask('e4', { status: 'RUNNING', deadline: at(40) }),
        newTask('e-ready', { status: 'READY', deadline: at(0) }),
        newTask('e-none', { status: 'RUNNING', deadline: null }),
      ],
      'orch-a',
    );
    const idsOf = async (now: Date, limit: number) => (await store().listExpired(now, limit)).map((t) => t.taskId);
    expect(await idsOf(at(30), 10)).toStrictEqual(['e1', 'e2', 'e3']); // at the deadline counts
    expect(await idsOf(new Date(at(30).getTime() - 1), 10)).toStrictEqual(['e1', 'e2']);
    expect(await idsOf(at(100), 2)).toStrictEqual(['e1', 'e2']);
    expect(await idsOf(at(0), 10)).toStrictEqual([]);
  });

  it('reports the highest fencing token', async () => {
    expect(await store().maxFencingToken()).toBe(0);
    await store().createTasks(
      [newTask('m1', { fencingToken: 3 }), newTask('m2', { fencingToken: null }), newTask('m3', { fencingToken: 41 })],
      'orch-a',
    );
    expect(await store().maxFencingToken()).toBe(41);
    await commit().applyTransition(
      write('m2', { to: 'RUNNING', fencingToken: 2 ** 33, patch: { status: 'RUNNING', fencingToken: 2 ** 33 } }),
    );
    expect(await store().maxFencingToken()).toBe(2 ** 33);
  });

  it('leaves final tasks out of the highest fencing token', async () => {
    await store().createTasks(
      [
        newTask('f-done', { status: 'COMPLETED', fencingToken: 90 }),
        newTask('f-cancelled', { status: 'CANCELLED', fencingToken: 80 }),
        newTask('f-dead', { status: 'FAILED', attempts: 3, maxAttempts: 3, fencingToken: 70 }),
        newTask('f-retry', { status: 'FAILED', attempts: 1, maxAttempts: 3, fencingToken: 7 }),
        newTask('f-ready', { status: 'READY', fencingToken: 5 }),
      ],
      'orch-a',
    );
    expect(await store().maxFencingToken()).toBe(7);
  });

  it('lists PENDING tasks whose back-off is over', async () => {
    await store().createTasks(
      [
        newTask('due2', { notBefore: at(20) }),
        newTask('due1', { notBefore: at(10) }),
        newTask('due3', { notBefore: at(30) }),
        newTask('due-none', { notBefore: null }),
        newTask('due-ready', { status: 'READY', notBefore: at(0) }),
        newTask('due-failed', { status: 'FAILED', attempts: 1, notBefore: at(0) }),
      ],
      'orch-a',
    );
    const idsOf = async (now: Date, limit: number) => (await store().listDueRetries(now, limit)).map((t) => t.taskId);
    expect(await idsOf(at(20), 10)).toStrictEqual(['due1', 'due2']); // at the end of the back-off counts
    expect(await idsOf(at(100), 2)).toStrictEqual(['due1', 'due2']);
    expect(await idsOf(at(5), 10)).toStrictEqual([]);
    const [due] = await store().listDueRetries(at(10), 1);
    expect(due).toMatchObject({ taskId: 'due1', status: 'PENDING', notBefore: at(10), version: 1 });
  });

  it('lists the dependents of several tasks, each once, by task id', async () => {
    await store().createTasks(
      [
        newTask('dep-a'),
        newTask('dep-b'),
        newTask('dep-z1', { dependencies: ['dep-a'] }),
        newTask('dep-y2', { dependencies: ['dep-a', 'dep-b'] }), // depends on both: listed once
        newTask('dep-x3', { dependencies: ['dep-x', 'dep-b'] }),
        newTask('dep-w4', { dependencies: ['dep-y2'] }), // a dependent's dependent: not listed
        newTask('dep-v5', { dependencies: ['dep-a2'] }), // exact match only
        newTask('dep-u6'),
      ],
      'orch-a',
    );
    const idsOf = async (taskIds: string[]) => (await store().listDependentsOf(taskIds)).map((t) => t.taskId);
    expect(await idsOf(['dep-a', 'dep-b'])).toStrictEqual(['dep-x3', 'dep-y2', 'dep-z1']);
    expect(await idsOf(['dep-b', 'dep-a', 'dep-b'])).toStrictEqual(['dep-x3', 'dep-y2', 'dep-z1']);
    expect(await idsOf(['dep-a'])).toStrictEqual(['dep-y2', 'dep-z1']);
    expect(await idsOf(['dep-y2', 'missing'])).toStrictEqual(['dep-w4']);
    expect(await idsOf(['dep-u6', 'dep-a2x', 'dep'])).toStrictEqual([]);
    expect(await idsOf([])).toStrictEqual([]);
    const [first] = await store().listDependentsOf(['dep-a']);
    expect(first).toStrictEqual(await store().getTask('dep-y2'));
  });
}
