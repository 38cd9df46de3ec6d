import { expect, it } from 'vitest';
import { ApprovalError, ProjectNotFoundError, ValidationError } from '../../src/errors.js';
import type { ApprovalRecord, NewApproval, ProjectStepCommit, ProjectStepWrite, ProjectStore } from '../../src/ports/project-store.js';
import { at, createProject, ingest, newApproval, type ProjectHarnessRef } from './project-store.fixtures.js';

/** Steps of the project machine: the snapshot in the project row, committed with a compare-and-set. */
export function stepContract(harness: ProjectHarnessRef): void {
  const store = () => harness().projects;
  const client = (i: number): ProjectStore => (i % 2 === 0 ? harness().projects : harness().peer.projects);

  const snapshot = (marker: string) => ({ status: 'active', value: { lifecycle: 'paused' }, context: { marker, note: 'é "quoted"' }, children: {} });

  function step(overrides: Partial<ProjectStepWrite> = {}): ProjectStepWrite {
    return {
      projectId: 'prj-1',
      expectedVersion: 1,
      state: 'paused',
      pausedReason: 'budget_exhausted',
      warningLevel: 100,
      snapshot: snapshot('one'),
      machineVersion: 'v-test',
      at: at(50),
      ...overrides,
    };
  }

  async function request(approval: NewApproval): Promise<ApprovalRecord> {
    await harness().commit.ingestEvent(ingest(`ev-${approval.approvalId}`, { projectId: approval.projectId, approval }));
    return (await store().getApproval(approval.approvalId))!;
  }

  it('a new project has no snapshot; an unknown one is null', async () => {
    await createProject(harness().commit);
    const stored = await store().getProjectSnapshot('prj-1');
    expect(stored).toStrictEqual({ project: await store().getProject('prj-1'), snapshot: null, machineVersion: null });
    expect(await store().getProjectSnapshot('nope')).toBeNull();
  });

  it('commits a step on the version it was decided on: the snapshot and its columns, version + 1', async () => {
    await createProject(harness().commit);
    const before = (await store().getProject('prj-1'))!;
    const committed = await store().commitProjectStep(step());
    const expected = { ...before, state: 'paused', pausedReason: 'budget_exhausted', warningLevel: 100, version: 2, updatedAt: at(50) };
    expect(committed).toStrictEqual({ project: expected, approvals: [] });
    expect(await store().getProjectSnapshot('prj-1')).toStrictEqual({ project: expected, snapshot: snapshot('one'), machineVersion: 'v-test' });
    // The paused reason is kept only while paused.
    const resumed = await store().commitProjectStep(step({ expectedVersion: 2, state: 'active', pausedReason: 'ignored', warningLevel: 0 }));
    expect(resumed!.project).toMatchObject({ state: 'active', pausedReason: null, warningLevel: 0, version: 3 });
  });

  it('refuses a step decided on another version, writing nothing; an unknown project is ProjectNotFoundError', async () => {
    await createProject(harness().commit);
    await store().commitProjectStep(step());
    const stored = await store().getProjectSnapshot('prj-1');
    expect(await store().commitProjectStep(step({ expectedVersion: 1, state: 'cancelled', snapshot: snapshot('stale') }))).toBeNull();
    expect(await store().commitProjectStep(step({ expectedVersion: 3, snapshot: snapshot('ahead') }))).toBeNull();
    expect(await store().getProjectSnapshot('prj-1')).toStrictEqual(stored);
    await expect(store().commitProjectStep(step({ projectId: 'nope' }))).rejects.toBeInstanceOf(ProjectNotFoundError);
  });

  it('lets exactly one of concurrent steps on one version win', async () => {
    await createProject(harness().commit);
    const results = await Promise.all(
      Array.from({ length: 12 }, (_, i) => client(i).commitProjectStep(step({ snapshot: snapshot(`from ${i}`), pausedReason: `reason ${i}` }))),
    );
    const winners = results.flatMap((r, i) => (r ? [{ r, i }] : []));
    expect(winners).toHaveLength(1);
    const [{ r, i }] = winners as [{ r: ProjectStepCommit; i: number }];
    expect(r.project).toMatchObject({ pausedReason: `reason ${i}`, version: 2 });
    expect((await store().getProjectSnapshot('prj-1'))!.snapshot).toStrictEqual(snapshot(`from ${i}`));
  });

  it('sets a new limit with the step; a bad limit is a ValidationError and writes nothing', async () => {
    await createProject(harness().commit);
    expect((await store().commitProjectStep(step({ budgetLimit: { limit: 12.3456 } })))!.project.budgetLimit).toBe(12.3456);
    expect((await store().commitProjectStep(step({ expectedVersion: 2, budgetLimit: { limit: null } })))!.project.budgetLimit).toBeNull();
    // Without budgetLimit the limit is left as it is.
    expect((await store().commitProjectStep(step({ expectedVersion: 3 })))!.project.budgetLimit).toBeNull();
    await expect(store().commitProjectStep(step({ expectedVersion: 4, budgetLimit: { limit: -1 } }))).rejects.toBeInstanceOf(ValidationError);
    await expect(store().commitProjectStep(step({ expectedVersion: 4, budgetLimit: { limit: Number.NaN } }))).rejects.toBeInstanceOf(ValidationError);
    expect((await store().getProject('prj-1'))!.version).toBe(4);
  });

  it('decides pending requests in the same transaction; a request no longer pending rolls the whole step back', async () => {
    await createProject(harness().commit);
    await createProject(harness().commit, 'prj-2');
    const a1 = await request(newApproval('apr-1'));
    const a2 = await request(newApproval('apr-2', { requestedAt: at(11) }));
    await request(newApproval('apr-9', { projectId: 'prj-2' }));
    const decision = { approvalId: 'apr-1', status: 'approved' as const, comment: 'lovely', by: 'alice', at: at(60) };
    const committed = await store().commitProjectStep(step({ decisions: [decision] }));
    const decided = { ...a1, status: 'approved', comment: 'lovely', decidedBy: 'alice', decidedAt: at(60) };
    expect(committed).toMatchObject({ project: { version: 2 }, approvals: [decided] });
    expect(await store().getApproval('apr-1')).toStrictEqual(decided);

    // apr-1 is decided already: the step (its snapshot, its other decision) is not written.
    const stale = step({
      expectedVersion: 2,
      snapshot: snapshot('two'),
      decisions: [{ ...decision, approvalId: 'apr-2', status: 'rejected' }, { ...decision, status: 'rejected', by: 'bob' }],
    });
    await expect(store().commitProjectStep(stale)).rejects.toThrow(ApprovalError);
    await expect(store().commitProjectStep(stale)).rejects.toThrow(/already approved by alice/);
    expect(await store().getApproval('apr-2')).toStrictEqual(a2);
    expect(await store().getProjectSnapshot('prj-1')).toMatchObject({ project: { version: 2 }, snapshot: snapshot('one') });
    // A request of another project, or none, is not decided by this project's step.
    for (const approvalId of ['apr-9', 'nope']) {
      await expect(store().commitProjectStep(step({ expectedVersion: 2, decisions: [{ ...decision, approvalId }] }))).rejects.toBeInstanceOf(ApprovalError);
    }
    expect((await store().getApproval('apr-9'))!.status).toBe('pending');
    await expect(store().commitProjectStep(step({ expectedVersion: 2, decisions: [{ ...decision, approvalId: 'apr-2', status: 'pending' as never }] }))).rejects.toBeInstanceOf(ApprovalError);
  });

  it('extends a pending request from the expiry it has; another expiry rolls the step back', async () => {
    await createProject(harness().commit);
    const a1 = await request(newApproval('apr-1', { expiresAt: at(100) }));
    const committed = await store().commitProjectStep(step({ extensions: [{ approvalId: 'apr-1', from: at(100), expiresAt: at(400) }] }));
    expect(committed!.approvals).toStrictEqual([{ ...a1, expiresAt: at(400) }]);
    await expect(
      store().commitProjectStep(step({ expectedVersion: 2, extensions: [{ approvalId: 'apr-1', from: at(100), expiresAt: at(700) }] })),
    ).rejects.toThrow(/expiry moved/);
    expect(await store().getProjectSnapshot('prj-1')).toMatchObject({ project: { version: 2 }, snapshot: snapshot('one') });
    expect((await store().getApproval('apr-1'))!.expiresAt).toStrictEqual(at(400));
  });

  it('a plain state or limit write (outside the machine) clears the stored snapshot', async () => {
    await createProject(harness().commit);
    await store().commitProjectStep(step());
    await store().setProjectState('prj-1', 'active', ['paused'], null, at(60));
    expect(await store().getProjectSnapshot('prj-1')).toMatchObject({ project: { state: 'active', version: 3 }, snapshot: null });
    await store().commitProjectStep(step({ expectedVersion: 3 }));
    await store().setBudgetLimit('prj-1', 40, at(70));
    expect(await store().getProjectSnapshot('prj-1')).toMatchObject({ project: { budgetLimit: 40, version: 5 }, snapshot: null });
  });
}
