import { expect, it } from 'vitest';
import { BudgetExceededError, ValidationError } from '../../src/errors.js';
import type { Commit, IngestResult, TransitionOutcome } from '../../src/ports/commit.js';
import type { OutboxEvent } from '../../src/ports/task-store.js';
import { at, createProject, ids, ingest, newTask, raiseEvent, write, type ProjectHarnessRef } from './project-store.fixtures.js';

/** The READY variant of a PENDING fixture task, as the registry builds it. */
const readyOf = (t: ReturnType<typeof newTask>) => ({
  ...t,
  status: 'READY' as const,
  createdSteps: [{ from: 'PENDING' as const, to: 'READY' as const, event: 'DEPENDENCIES_MET', detail: null }],
});

/**
 * What only the commit port does: write the task aggregate, the project's budget and the
 * outbox in one statement, all or nothing, under the project row's lock.
 */
export function acrossContract(harness: ProjectHarnessRef): void {
  const tasks = () => harness().tasks;
  const projects = () => harness().projects;
  const commit = () => harness().commit;

  const raised = (eventId: string, taskId: string): OutboxEvent => ({
    eventId,
    eventType: 'SCRIPT_COMPLETED',
    projectId: 'prj-1',
    taskId,
    payload: { from: taskId },
    at: at(1),
  });

  /** The tasks, their audit, the project's amounts and the outbox: what a refused commit must leave as it was. */
  async function state(taskIds: readonly string[]) {
    return {
      tasks: await tasks().getTasks(taskIds),
      audit: await Promise.all(taskIds.map((id) => tasks().listTransitions(id))),
      project: await projects().getProject('prj-1'),
      outbox: await tasks().listOutbox(100),
    };
  }

  it('refuses the whole call when the project row cannot take a budget effect, writing no task, audit, budget or outbox row', async () => {
    await createProject(commit(), 'prj-1', { budgetLimit: 10 });
    await tasks().createTasks([newTask('ok', { status: 'READY' }), newTask('neg', { status: 'RUNNING' })], 'orch-a');
    const before = await state(['ok', 'neg']);
    // spent would go below zero: the projects table refuses it (a check constraint), in the
    // same statement as the task rows, so the valid write beside it is not written either.
    const batch = [
      write('ok', { from: 'READY', to: 'RUNNING', budget: { projectId: 'prj-1', reserve: 1, enforce: true }, raise: [raised('ev-ok', 'ok')] }),
      write('neg', { from: 'RUNNING', to: 'COMPLETED', budget: { projectId: 'prj-1', spend: -5, enforce: false }, raise: [raised('ev-neg', 'neg')] }),
    ];
    await expect(commit().applyTransitions(batch)).rejects.toBeInstanceOf(ValidationError);
    await expect(commit().applyTransitions([batch[1]!])).rejects.toBeInstanceOf(ValidationError);
    await expect(commit().applyTransition(batch[1]!)).rejects.toBeInstanceOf(ValidationError);
    expect(await state(['ok', 'neg'])).toStrictEqual(before);
    // The valid write alone goes through.
    expect(await commit().applyTransitions([batch[0]!])).toMatchObject([{ ok: true, version: 2, project: { reserved: 1 } }]);
  });

  it('clears the outbox row of an event raised again after it was handled', async () => {
    await createProject(commit());
    await raiseEvent(harness(), 'ev-1', 'src-1');
    expect(await commit().ingestEvent(ingest('ev-1', { tasks: [newTask('n1')] }))).toMatchObject({ written: true });
    expect(await tasks().listOutbox(10)).toStrictEqual([]);
    // Another transition raises the same event again (a replayed result): it is written to
    // the outbox, and its ingest, a duplicate, writes nothing but clears it.
    await tasks().createTasks([newTask('src-2', { status: 'RUNNING' })], 'orch-a');
    await commit().applyTransition(write('src-2', { from: 'RUNNING', to: 'COMPLETED', raise: [{ ...raised('ev-1', 'src-2'), at: at(5) }] }));
    expect((await tasks().listOutbox(10)).map((e) => e.eventId)).toStrictEqual(['ev-1']);
    for (const onlyIfActive of [true, false]) {
      expect(await commit().ingestEvent(ingest('ev-1', { tasks: [newTask('n2')], onlyIfActive }))).toStrictEqual({ written: false, ready: false, skipped: false });
    }
    expect(await tasks().listOutbox(10)).toStrictEqual([]);
    expect(await tasks().getTask('n2')).toBeNull();
  });

  it('never overspends when event ingests and transitions reserve on one project from two clients at once', async () => {
    const LIMIT = 5;
    await createProject(commit(), 'prj-1', { budgetLimit: LIMIT });
    const { peer } = harness();
    const client = (i: number): Commit => (i % 2 === 0 ? commit() : peer.commit);
    // Demand is twice the limit: 10 events of one READY task at 0.5, and 20 dispatches at 0.25.
    const events = ids(10, 'ev-');
    const dispatched = ids(20, 'run-');
    await tasks().createTasks(dispatched.map((id) => newTask(id, { status: 'READY' })), 'orch-a');
    const ingests = events.map((eventId, i) => {
      const t = newTask(`${eventId}-task`, { estimatedCost: 0.5 });
      return client(i).ingestEvent(ingest(eventId, { tasks: [t], onlyIfActive: i % 4 < 2, ready: { tasks: [readyOf(t)], reserve: 0.5, enforce: true } }));
    });
    const dispatches = [0, 1, 2, 3].map((b) =>
      client(b).applyTransitions(
        dispatched.slice(b * 5, b * 5 + 5).map((id) => write(id, { from: 'READY', to: 'RUNNING', budget: { projectId: 'prj-1', reserve: 0.25, enforce: true } })),
      ),
    );
    const [ingested, outcomes] = await Promise.all([Promise.all(ingests), Promise.all(dispatches).then((os) => os.flat())]);

    const readyEvents = ingested.filter((r: IngestResult) => r.written && r.ready).length;
    const ran = outcomes.filter((o: TransitionOutcome) => o.ok).length;
    for (const o of outcomes) if (!o.ok) expect(o.error).toBeInstanceOf(BudgetExceededError);
    expect(ingested.every((r) => r.written)).toBe(true);
    expect(readyEvents + ran).toBeLessThan(events.length + dispatched.length); // some were refused
    const project = (await projects().getProject('prj-1'))!;
    expect(project.spent + project.reserved).toBeLessThanOrEqual(LIMIT);
    expect(project.reserved).toBeCloseTo(0.5 * readyEvents + 0.25 * ran, 10);
    // What was not reserved was not written as reserved: the events' tasks PENDING, the dispatches READY.
    const expected: Record<string, number> = {};
    const add = (status: string, n: number) => {
      if (n > 0) expected[status] = (expected[status] ?? 0) + n;
    };
    add('READY', readyEvents + dispatched.length - ran);
    add('RUNNING', ran);
    add('PENDING', events.length - readyEvents);
    expect(await tasks().countByStatus()).toStrictEqual(expected);
  });

  it('writes a transition, a batch and an active project\'s event in one round trip each', async () => {
    await createProject(commit(), 'prj-1', { budgetLimit: 100 });
    await tasks().createTasks(['a', 'b', 'c', 'd'].map((id) => newTask(id, { status: 'READY' })), 'orch-a');
    const trips = async (run: () => Promise<unknown>): Promise<number> => {
      const before = harness().roundTrips();
      await run();
      return harness().roundTrips() - before;
    };
    const dispatch = (id: string) => write(id, { from: 'READY', to: 'RUNNING', budget: { projectId: 'prj-1', reserve: 1, enforce: true }, raise: [raised(`ev-${id}`, id)] });
    expect(await trips(() => commit().applyTransitions([]))).toBe(0);
    expect(await trips(() => commit().applyTransition(dispatch('a')))).toBe(1);
    expect(await trips(() => commit().applyTransitions([dispatch('b')]))).toBe(1);
    expect(await trips(() => commit().applyTransitions([dispatch('c'), dispatch('d')]))).toBe(1);
    const t = newTask('e1');
    expect(
      await trips(() => commit().ingestEvent(ingest('ev-active', { tasks: [t, newTask('e2', { dependencies: ['e1'] })], onlyIfActive: true, ready: { tasks: [readyOf(t)], reserve: 0.15, enforce: true } }))),
    ).toBe(1);
    expect(await tasks().getTask('e1')).toMatchObject({ status: 'READY' });
    expect((await projects().getProject('prj-1'))!.reserved).toBeCloseTo(4.15, 10);
  });
}
