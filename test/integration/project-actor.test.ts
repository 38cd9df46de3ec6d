import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createEmbeddedBlackboard } from '../../src/adapters/blackboards.js';
import { ProjectActor } from '../../src/actors/project-actor.js';
import { ActorSystem } from '../../src/actors/system.js';
import { ApprovalError, IllegalTransitionError } from '../../src/errors.js';
import { silentLogger } from '../../src/logger.js';
import { DEFAULT_PROJECT_POLICY, PROJECT_MACHINE_VERSION, budgetLevelStateOf, projectStateOf } from '../../src/machines/project-machine.js';
import type { Blackboard } from '../../src/orchestrator/factory.js';
import type { ProjectStore } from '../../src/ports/project-store.js';
import { systemClock } from '../../src/ports/clock.js';
import { intercept } from '../helpers/defects.js';

/**
 * The project actor over the embedded store (PGlite: the same SQL as PostgreSQL): typed
 * refusals, the upgrade path from rows written before the machine, the budget decided
 * without writes until a level is crossed, and a second actor on the same row (another
 * process) adopting what the first committed.
 */
let blackboard: Blackboard;
beforeAll(async () => {
  blackboard = await createEmbeddedBlackboard();
});
afterAll(async () => {
  await blackboard.close();
});

const at = (s: number) => new Date(Date.UTC(2030, 0, 1) + s * 1000);

async function project(projectId: string, budgetLimit: number | null = 10): Promise<void> {
  await blackboard.commit.ingestEvent({
    eventId: `created-${projectId}`,
    eventType: 'PROJECT_CREATED',
    projectId,
    at: at(0),
    by: 'test',
    tasks: [],
    project: { projectId, title: projectId, budgetLimit, checkpoints: null },
  });
}

async function request(projectId: string, approvalId: string, expiresAt = at(3600)): Promise<void> {
  await blackboard.commit.ingestEvent({
    eventId: `ev-${approvalId}`,
    eventType: 'SCENE_WRITTEN',
    projectId,
    at: at(1),
    by: 'test',
    tasks: [],
    approval: { approvalId, projectId, checkpoint: 'SCENE_WRITTEN', eventId: `ev-${approvalId}`, summary: {}, taskIds: [], requestedAt: at(1), expiresAt },
  });
}

/** The store, counting the steps it is asked to commit. */
function counting(projects: ProjectStore) {
  const commits: boolean[] = [];
  const store = intercept(projects, async (method, _args, next) => {
    const result = await next();
    if (method === 'commitProjectStep') commits.push(result !== null);
    return result;
  });
  return { store, commits };
}

/** An actor's dependencies: its own actor system (one per process: one actor per project in it). */
const deps = (projects: ProjectStore) => ({
  projects,
  clock: systemClock,
  logger: silentLogger(),
  policy: DEFAULT_PROJECT_POLICY,
  system: new ActorSystem({ clock: systemClock, logger: silentLogger() }),
});

describe('project actor', () => {
  it('refuses with typed errors and changes nothing: IllegalTransitionError for the lifecycle, ApprovalError for a request', async () => {
    await project('prj_typed');
    await request('prj_typed', 'apr_1');
    const actor = await ProjectActor.load('prj_typed', deps(blackboard.projects));
    await actor.send({ type: 'REQUEST_APPROVAL', approvalId: 'apr_1', checkpoint: 'SCENE_WRITTEN', expiresAt: at(3600).getTime() });
    const version = (await blackboard.projects.getProject('prj_typed'))!.version;

    const resume = actor.send({ type: 'RESUME' });
    await expect(resume).rejects.toBeInstanceOf(IllegalTransitionError);
    await expect(resume).rejects.toMatchObject({ entity: 'project', state: 'active', event: 'RESUME' });
    await expect(actor.send({ type: 'EXPIRE', approvalId: 'apr_1', at: at(10).getTime() })).rejects.toBeInstanceOf(ApprovalError);
    await expect(actor.send({ type: 'DECIDE', approvalId: 'apr_nope', decision: 'approved', by: 'x', comment: null, at: 1 })).rejects.toThrow(/does not exist/);

    const decided = await actor.send({ type: 'DECIDE', approvalId: 'apr_1', decision: 'approved', by: 'alice', comment: null, at: at(20).getTime() });
    expect(decided.reactions).toEqual([{ type: 'applyApproval', approvalId: 'apr_1' }]);
    expect(decided.approvals).toMatchObject([{ approvalId: 'apr_1', status: 'approved', decidedBy: 'alice' }]);
    await expect(actor.send({ type: 'DECIDE', approvalId: 'apr_1', decision: 'rejected', by: 'bob', comment: null, at: 1 })).rejects.toThrow(/already approved by alice/);
    // Two refusals wrote nothing; the request and the decision one step each.
    expect((await blackboard.projects.getProject('prj_typed'))!.version).toBe(version + 1);
    actor.stop();
  });

  it('resolves a row written before the machine from its columns and approval rows, then writes the snapshot with its next step', async () => {
    await project('prj_old');
    await request('prj_old', 'apr_open');
    await request('prj_old', 'apr_done');
    await blackboard.projects.decideApproval({ approvalId: 'apr_done', status: 'rejected', comment: 'no', by: 'alice', at: at(5) });
    await blackboard.projects.setProjectState('prj_old', 'paused', ['active'], 'budget_exhausted', at(6));
    expect((await blackboard.projects.getProjectSnapshot('prj_old'))!.snapshot).toBeNull();

    const actor = await ProjectActor.load('prj_old', deps(blackboard.projects));
    expect(actor.snapshot.value).toEqual({ lifecycle: 'paused', budget: 'exhausted', approvals: 'open' });
    expect(actor.snapshot.context.reason).toBe('budget_exhausted');
    expect(actor.snapshot.context.approvals).toMatchObject({ apr_open: { status: 'requested' }, apr_done: { status: 'rejected', decidedBy: 'alice' } });
    // The live actor (the supervisor) holds the same snapshot.
    expect(actor.ref.getSnapshot().value).toEqual(actor.snapshot.value);

    const step = await actor.send((row) => [{ type: 'SET_LIMIT', figures: { limit: 50, spent: row.spent, reserved: row.reserved } }]);
    expect(step.reactions.map((r) => r.type)).toEqual(['announceState', 'resumeWork']);
    const stored = (await blackboard.projects.getProjectSnapshot('prj_old'))!;
    expect(stored).toMatchObject({ project: { state: 'active', budgetLimit: 50, pausedReason: null }, machineVersion: PROJECT_MACHINE_VERSION });
    expect(stored.snapshot).toMatchObject({ value: { lifecycle: 'active', budget: 'ok' }, context: { approvals: { apr_open: { status: 'requested' } } } });
    actor.stop();
  });

  it('takes the amounts without a write until they cross a level; of two actors on one row (two processes) one commits the crossing', async () => {
    await project('prj_budget', 10);
    const first = counting(blackboard.projects);
    const second = counting(blackboard.projects);
    const a = await ProjectActor.load('prj_budget', deps(first.store));
    const b = await ProjectActor.load('prj_budget', deps(second.store));
    const figures = (reserved: number) => ({ projectId: 'prj_budget', state: 'active' as const, pausedReason: null, budgetLimit: 10, spent: 0, reserved });

    for (const reserved of [1, 2, 5, 8.9]) {
      expect(await a.noteBudget(figures(reserved))).toBeNull();
      expect(await b.noteBudget(figures(reserved))).toBeNull();
    }
    expect([...first.commits, ...second.commits]).toEqual([]);

    // Both see the crossing at once; one commits it, the other finds the row moved on and, on the fresh row, nothing to do.
    const [sa, sb] = await Promise.all([a.noteBudget(figures(9.5)), b.noteBudget(figures(9.5))]);
    const steps = [sa, sb].filter((s) => s !== null);
    expect(steps).toHaveLength(1);
    expect(steps[0]!.reactions).toEqual([{ type: 'announceBudget', level: 'warning' }]);
    expect([...first.commits, ...second.commits].filter((c) => c)).toHaveLength(1);
    expect(budgetLevelStateOf(a.snapshot)).toBe('warning');
    expect(budgetLevelStateOf(b.snapshot)).toBe('warning');
    expect((await blackboard.projects.getProject('prj_budget'))!.warningLevel).toBe(90);

    // Over the limit (actual costs above the estimates): exhausted and paused, in one step.
    const over = await a.noteBudget({ ...figures(2), spent: 9 });
    expect(over!.reactions.map((r) => r.type)).toEqual(['announceState', 'announceBudget']);
    expect(over!.record).toMatchObject({ state: 'paused', pausedReason: 'budget_exhausted', warningLevel: 100 });
    a.stop();
    b.stop();
  });

  it('a second actor on the row adopts the steps the first committed: its next decision is taken on the fresh row, its live actor synced', async () => {
    await project('prj_two');
    const a = await ProjectActor.load('prj_two', deps(blackboard.projects));
    const b = await ProjectActor.load('prj_two', deps(blackboard.projects));
    await a.send({ type: 'PAUSE', reason: 'client review' });
    expect(projectStateOf(b.snapshot)).toBe('active');
    // B's RESUME is decided on the row read fresh (paused), not on its copy (active).
    const resumed = await b.send({ type: 'RESUME' });
    expect(resumed.before.value).toMatchObject({ lifecycle: 'paused' });
    expect(resumed.record.state).toBe('active');
    expect(b.ref.getSnapshot().value).toMatchObject({ lifecycle: 'active' });
    await a.refresh();
    expect(projectStateOf(a.snapshot)).toBe('active');
    expect(a.ref.getSnapshot().value).toMatchObject({ lifecycle: 'active' });
    a.stop();
    b.stop();
  });
});
