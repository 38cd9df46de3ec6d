import { expect, it } from 'vitest';
import { ProjectNotFoundError, ValidationError } from '../../src/errors.js';
import type { ProjectStore } from '../../src/ports/project-store.js';
import { at, createProject, ingest, newApproval, newProject, reserve, type ProjectHarnessRef } from './project-store.fixtures.js';

/** Project state, budget limits and warning levels. */
export function projectContract(harness: ProjectHarnessRef): void {
  const store = () => harness().projects;
  const commit = () => harness().commit;
  /** Alternates between the two clients, so concurrent calls race across pools. */
  const client = (i: number): ProjectStore => (i % 2 === 0 ? harness().projects : harness().peer.projects);

  it('reads projects back, listed in creation order and by state', async () => {
    for (const [id, seconds] of [['prj-b', 5], ['prj-a', 5], ['prj-c', 1]] as const) {
      await commit().ingestEvent(ingest(`created-${id}`, { projectId: id, at: at(seconds), project: newProject(id) }));
    }
    expect((await store().listProjects()).map((p) => p.projectId)).toStrictEqual(['prj-c', 'prj-a', 'prj-b']);
    await store().setProjectState('prj-a', 'paused', ['active'], 'why', at(9));
    await store().setProjectState('prj-c', 'completed', ['active'], null, at(9));
    expect((await store().listProjects(['paused'])).map((p) => p.projectId)).toStrictEqual(['prj-a']);
    expect((await store().listProjects(['active', 'completed'])).map((p) => p.projectId)).toStrictEqual(['prj-c', 'prj-b']);
    expect(await store().listProjects(['cancelled'])).toStrictEqual([]);
    expect(await store().listProjects([])).toStrictEqual([]);
    expect((await store().listProjects())[1]).toStrictEqual(await store().getProject('prj-a'));
    expect(await store().getProject('prj-x')).toBeNull();
  });

  it('pages projects newest first, by state, from a cursor; names their pending requests', async () => {
    for (const [id, seconds] of [['prj-b', 5], ['prj-a', 5], ['prj-c', 1], ['prj-d', 7]] as const) {
      await commit().ingestEvent(ingest(`created-${id}`, { projectId: id, at: at(seconds), project: newProject(id) }));
    }
    await store().setProjectState('prj-a', 'paused', ['active'], 'why', at(9));
    const ids = (ps: { projectId: string }[]) => ps.map((p) => p.projectId);
    // Creation time, then id, both descending.
    expect(ids(await store().listProjectsPage({ limit: 10 }))).toStrictEqual(['prj-d', 'prj-b', 'prj-a', 'prj-c']);
    const first = await store().listProjectsPage({ limit: 2 });
    expect(ids(first)).toStrictEqual(['prj-d', 'prj-b']);
    expect(first[1]).toStrictEqual(await store().getProject('prj-b'));
    expect(ids(await store().listProjectsPage({ limit: 2, after: 'prj-b' }))).toStrictEqual(['prj-a', 'prj-c']);
    expect(await store().listProjectsPage({ limit: 2, after: 'prj-c' })).toStrictEqual([]);
    expect(await store().listProjectsPage({ limit: 2, after: 'prj-none' })).toStrictEqual([]);
    expect(ids(await store().listProjectsPage({ limit: 10, states: ['active'] }))).toStrictEqual(['prj-d', 'prj-b', 'prj-c']);
    expect(ids(await store().listProjectsPage({ limit: 10, states: ['active'], after: 'prj-b' }))).toStrictEqual(['prj-c']);
    expect(ids(await store().listProjectsPage({ limit: 10, states: ['paused', 'failed'] }))).toStrictEqual(['prj-a']);
    expect(await store().listProjectsPage({ limit: 10, states: [] })).toStrictEqual([]);

    await commit().ingestEvent(ingest('ev-apr-2', { projectId: 'prj-b', approval: newApproval('apr-2', { projectId: 'prj-b', checkpoint: 'SHOT_PLANNED', requestedAt: at(12), expiresAt: null }) }));
    await commit().ingestEvent(ingest('ev-apr-1', { projectId: 'prj-a', approval: newApproval('apr-1', { projectId: 'prj-a', checkpoint: 'SCENE_WRITTEN', requestedAt: at(11), expiresAt: at(99) }) }));
    await commit().ingestEvent(ingest('ev-apr-3', { projectId: 'prj-c', approval: newApproval('apr-3', { projectId: 'prj-c', requestedAt: at(13) }) }));
    await store().decideApproval({ approvalId: 'apr-3', status: 'approved', comment: null, by: 'alice', at: at(14) });
    expect(await store().listPendingApprovals(['prj-a', 'prj-b', 'prj-c', 'prj-none'])).toStrictEqual([
      { approvalId: 'apr-1', projectId: 'prj-a', checkpoint: 'SCENE_WRITTEN', requestedAt: at(11), expiresAt: at(99) },
      { approvalId: 'apr-2', projectId: 'prj-b', checkpoint: 'SHOT_PLANNED', requestedAt: at(12), expiresAt: null },
    ]);
    expect(await store().listPendingApprovals(['prj-b'])).toHaveLength(1);
    expect(await store().listPendingApprovals([])).toStrictEqual([]);
  });

  it('moves a project only from the given states (compare-and-set)', async () => {
    await createProject(commit());
    const created = (await store().getProject('prj-1'))!;

    const paused = await store().setProjectState('prj-1', 'paused', ['active'], 'budget exhausted', at(20));
    expect(paused).toStrictEqual({ ...created, state: 'paused', pausedReason: 'budget exhausted', version: 2, updatedAt: at(20) });
    expect(await store().getProject('prj-1')).toStrictEqual(paused);

    // Not in a `from` state: null, and nothing changes.
    expect(await store().setProjectState('prj-1', 'paused', ['active'], 'again', at(21))).toBeNull();
    expect(await store().setProjectState('prj-1', 'completed', [], null, at(21))).toBeNull();
    expect(await store().getProject('prj-1')).toStrictEqual(paused);

    // The reason is kept only when pausing.
    const resumed = await store().setProjectState('prj-1', 'active', ['paused'], 'ignored', at(30));
    expect(resumed).toMatchObject({ state: 'active', pausedReason: null, version: 3, updatedAt: at(30) });
    const cancelled = await store().setProjectState('prj-1', 'cancelled', ['active', 'paused'], 'by user', at(40));
    expect(cancelled).toMatchObject({ state: 'cancelled', pausedReason: null, version: 4 });
    expect(await store().setProjectState('prj-1', 'active', ['paused', 'active'], null, at(50))).toBeNull();

    await expect(store().setProjectState('nope', 'paused', ['active'], null, at(20))).rejects.toBeInstanceOf(ProjectNotFoundError);
    await expect(store().setProjectState('nope', 'paused', ['active'], null, at(20))).rejects.toMatchObject({ projectId: 'nope' });
  });

  it('lets exactly one of concurrent state changes win', async () => {
    await createProject(commit());
    const results = await Promise.all(
      Array.from({ length: 12 }, (_, i) => client(i).setProjectState('prj-1', 'paused', ['active'], `reason ${i}`, at(20 + i))),
    );
    const winners = results.flatMap((r, i) => (r ? [{ r, i }] : []));
    expect(winners).toHaveLength(1);
    const [{ r, i }] = winners as [{ r: NonNullable<(typeof results)[number]>; i: number }];
    expect(r).toMatchObject({ state: 'paused', pausedReason: `reason ${i}`, version: 2 });
    expect(await store().getProject('prj-1')).toStrictEqual(r);
  });

  it('sets the budget limit', async () => {
    await createProject(commit());
    const created = (await store().getProject('prj-1'))!;
    const set = await store().setBudgetLimit('prj-1', 12.3456, at(20));
    expect(set).toStrictEqual({ ...created, budgetLimit: 12.3456, version: 2, updatedAt: at(20) });
    expect(await store().getProject('prj-1')).toStrictEqual(set);
    expect(await store().setBudgetLimit('prj-1', null, at(21))).toMatchObject({ budgetLimit: null, version: 3 });
    expect(await store().setBudgetLimit('prj-1', 0, at(22))).toMatchObject({ budgetLimit: 0, version: 4 });
    await expect(store().setBudgetLimit('nope', 5, at(20))).rejects.toBeInstanceOf(ProjectNotFoundError);
    await expect(store().setBudgetLimit('prj-1', -1, at(23))).rejects.toBeInstanceOf(ValidationError);
    expect(await store().getProject('prj-1')).toMatchObject({ budgetLimit: 0, version: 4 });
  });

  it('raises the warning level once per level', async () => {
    await createProject(commit());
    expect(await store().raiseWarningLevel('prj-1', 80)).toBe(true);
    expect(await store().raiseWarningLevel('prj-1', 80)).toBe(false);
    expect(await store().raiseWarningLevel('prj-1', 50)).toBe(false);
    expect((await store().getProject('prj-1'))!.warningLevel).toBe(80);
    expect(await store().raiseWarningLevel('prj-1', 100)).toBe(true);
    expect(await store().raiseWarningLevel('prj-1', 100)).toBe(false);
    expect((await store().getProject('prj-1'))!.warningLevel).toBe(100);
    expect(await store().raiseWarningLevel('nope', 80)).toBe(false);
  });

  it('raises a level once when clients race', async () => {
    await createProject(commit());
    await createProject(commit(), 'prj-2');
    for (const level of [80, 100]) {
      const raised = await Promise.all(
        Array.from({ length: 12 }, (_, i) => client(i).raiseWarningLevel(i < 6 ? 'prj-1' : 'prj-2', level)),
      );
      expect(raised.slice(0, 6).filter(Boolean)).toHaveLength(1);
      expect(raised.slice(6).filter(Boolean)).toHaveLength(1);
    }
    expect((await store().getProject('prj-1'))!.warningLevel).toBe(100);
  });

  it('resets the warning level above the ratio of a new limit, keeping the ones still crossed', async () => {
    await createProject(commit(), 'prj-1', { budgetLimit: 10 });
    await reserve(harness(), 'r1', 8); // 80% of 10
    expect(await store().raiseWarningLevel('prj-1', 80)).toBe(true);

    // 8 of 8.5 is 94%: 80 is still crossed (published once), 100 is not yet.
    expect((await store().setBudgetLimit('prj-1', 8.5, at(20))).warningLevel).toBe(80);
    expect(await store().raiseWarningLevel('prj-1', 80)).toBe(false);
    expect(await store().raiseWarningLevel('prj-1', 100)).toBe(true);

    // 8 of 20 is 40%: both levels can be crossed (and published) again.
    const raisedLimit = await store().setBudgetLimit('prj-1', 20, at(21));
    expect(raisedLimit.warningLevel).toBeLessThanOrEqual(40);
    expect(await store().raiseWarningLevel('prj-1', 80)).toBe(true);
    expect(await store().raiseWarningLevel('prj-1', 100)).toBe(true);

    // Lowering the limit keeps what was published.
    expect((await store().setBudgetLimit('prj-1', 4, at(22))).warningLevel).toBe(100);
    expect(await store().raiseWarningLevel('prj-1', 100)).toBe(false);

    // No limit: no level.
    expect((await store().setBudgetLimit('prj-1', null, at(23))).warningLevel).toBe(0);
    expect(await store().raiseWarningLevel('prj-1', 80)).toBe(true);
    // A zero limit counts as exhausted.
    expect((await store().setBudgetLimit('prj-1', 0, at(24))).warningLevel).toBe(80);
    expect(await store().raiseWarningLevel('prj-1', 100)).toBe(true);
  });
}
