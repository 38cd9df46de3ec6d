import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Redis } from 'ioredis';
import { InProcessEventBus } from '../../src/adapters/memory/event-bus.js';
import { sqlStores } from '../../src/adapters/blackboards.js';
import { PostgresProjectStore } from '../../src/adapters/postgres/project-store.js';
import { PostgresTaskStore } from '../../src/adapters/postgres/task-store.js';
import { migrate } from '../../src/adapters/postgres/migrate.js';
import { RedisLockManager } from '../../src/adapters/redis/lock-manager.js';
import { RedisTaskQueue } from '../../src/adapters/redis/task-queue.js';
import { SimulatedAgents } from '../../src/demo/simulated-agents.js';
import { TaskTypeCatalog } from '../../src/domain/task-types.js';
import { ApprovalError } from '../../src/errors.js';
import { silentLogger } from '../../src/logger.js';
import { OrchestratorFactory, type Blackboard } from '../../src/orchestrator/factory.js';
import type { Orchestrator } from '../../src/orchestrator/orchestrator.js';
import type { ConfigOverrides } from '../../src/config/config.js';
import type { Outbound } from '../../src/ports/event-bus.js';
import type { ProjectStore } from '../../src/ports/project-store.js';
import type { ApprovalEntry } from '../../src/machines/project-machine.js';
import { intercept } from '../helpers/defects.js';
import { createTestSchema, type TestSchema } from '../helpers/pg-schema.js';
import { connectTestRedis, deleteKeysWithPrefix, randomPrefix } from '../helpers/redis.js';
import { waitFor } from '../helpers/wait.js';

/**
 * The project machine across processes: two orchestrator instances (own PostgreSQL pools,
 * own Redis connections, one schema and queue) decide the same approval requests at once.
 * Each decision, expiry and reminder is a step of the project machine committed with a
 * compare-and-set on the project row, so exactly one of them has an effect, and a step
 * decided on a stale copy is refused by the store and decided again on the fresh row.
 */
let schema: TestSchema;
let redis: Redis[] = [];
const prefix = randomPrefix('project-machine');

/** SCENE_WRITTEN is a checkpoint: PLAN_SHOTS waits for its approval; a rejection creates REVISE_SCRIPT. */
const pipeline = {
  name: 'checkpoint',
  checkpoints: ['SCENE_WRITTEN'],
  rules: [
    { on: 'PROJECT_CREATED', create: [] },
    { on: 'SCENE_WRITTEN', create: [{ key: 'plan', type: 'PLAN_SHOTS', input: { script: '$payload.script' } }] },
  ],
  onReject: { SCENE_WRITTEN: [{ key: 'revise', type: 'REVISE_SCRIPT', input: { comment: '$comment' } }] },
  emits: [],
};

interface Proc {
  orchestrator: Orchestrator;
  projects: ProjectStore;
  messages: Outbound[];
  /** Stops the orchestrator and closes its pool (the server's connections are shared by every test file). */
  stop(): Promise<void>;
}

async function orchestratorProcess(name: string, config: ConfigOverrides, wrapProjects?: (p: ProjectStore) => ProjectStore): Promise<Proc> {
  const sql = schema.client({ max: 4 });
  const r = connectTestRedis(name);
  redis.push(r);
  const stores = sqlStores(sql);
  const blackboard: Blackboard = {
    ...stores,
    projects: wrapProjects ? wrapProjects(stores.projects) : stores.projects,
    queue: new RedisTaskQueue({ redis: r, key: `${prefix}:queue` }),
    locks: new RedisLockManager({ redis: r, prefix }),
    close: async () => undefined,
  };
  const bus = new InProcessEventBus();
  // The agents take the work and hold it: the tasks stay where the decisions left them.
  for (const agent of new SimulatedAgents(new TaskTypeCatalog()).agents()) bus.registerAgent(agent, () => undefined);
  const messages: Outbound[] = [];
  bus.subscribe((m) => void messages.push(m));
  const orchestrator = await OrchestratorFactory.createAndStart(
    blackboard,
    bus,
    // A long interval: no sweep runs on its own while a test races its own.
    { instanceId: name, scheduler: { intervalSeconds: 3600 }, ...config },
    { logger: silentLogger(), pipeline },
  );
  return {
    orchestrator,
    projects: blackboard.projects,
    messages,
    stop: async () => {
      await orchestrator.stop();
      await sql.close();
    },
  };
}

beforeAll(async () => {
  schema = await createTestSchema();
  await migrate(schema.client({ max: 1 }));
});
afterAll(async () => {
  if (redis[0]) await deleteKeysWithPrefix(redis[0], prefix);
  for (const r of redis) r.disconnect();
  redis = [];
  await schema.drop();
});

/** The test's own view of the rows: one connection for the whole file. */
let reader: { projects: PostgresProjectStore; tasks: PostgresTaskStore } | undefined;
const readerStores = () => {
  if (!reader) {
    const sql = schema.client({ max: 1 });
    reader = { projects: new PostgresProjectStore(sql), tasks: new PostgresTaskStore(sql) };
  }
  return reader;
};
const store = () => readerStores().projects;
const tasks = () => readerStores().tasks;

async function createProject(p: Proc, projectId: string): Promise<void> {
  await p.orchestrator.handleEvent({ id: `created-${projectId}`, type: 'PROJECT_CREATED', projectId, payload: { title: projectId }, occurredAt: new Date().toISOString() });
}

/** A checkpoint event: its approval request, and the PLAN_SHOTS waiting for it. */
async function checkpoint(p: Proc, projectId: string, round: number): Promise<{ approvalId: string; planId: string }> {
  const { approvalId, taskIds } = await p.orchestrator.handleEvent({
    id: `scene-${projectId}-${round}`,
    type: 'SCENE_WRITTEN',
    projectId,
    payload: { script: `draft ${round}` },
    occurredAt: new Date().toISOString(),
  });
  return { approvalId: approvalId!, planId: taskIds[0]! };
}

/** The request as the project row's snapshot holds it. */
async function entryInSnapshot(projectId: string, approvalId: string): Promise<ApprovalEntry | undefined> {
  const stored = await store().getProjectSnapshot(projectId);
  return (stored!.snapshot as { context: { approvals: Record<string, ApprovalEntry> } }).context.approvals[approvalId];
}

/** The REVISE_SCRIPT tasks a rejection of `approvalId` created. */
async function revisionsOf(projectId: string, comment: string) {
  return (await tasks().listByProject(projectId)).filter((t) => t.taskType === 'REVISE_SCRIPT' && t.input.comment === comment);
}

describe('the project machine across two instances', () => {
  it('approve against reject, on two instances at once: exactly one outcome, its effect once, the snapshot and the row agreeing', async () => {
    const a = await orchestratorProcess('pm-a1', { approval: { timeoutMinutes: 60 } });
    const b = await orchestratorProcess('pm-b1', { approval: { timeoutMinutes: 60 } });
    try {
      await createProject(a, 'prj_pm_decide');
      for (let round = 0; round < 6; round++) {
        const [first, second] = round % 2 === 0 ? [a, b] : [b, a];
        const { approvalId, planId } = await checkpoint(first, 'prj_pm_decide', round);
        const results = await Promise.allSettled([
          first.orchestrator.decide('prj_pm_decide', { approvalId, decision: 'approved', by: 'approver' }),
          second.orchestrator.decide('prj_pm_decide', { approvalId, decision: 'rejected', comment: `no ${round}`, by: 'rejecter' }),
        ]);
        expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
        const refused = results.find((r) => r.status === 'rejected') as PromiseRejectedResult;
        expect(refused.reason).toBeInstanceOf(ApprovalError);
        expect(String(refused.reason.message)).toMatch(/already (approved|rejected)/);

        const approval = (await store().getApproval(approvalId))!;
        const plan = (await tasks().getTask(planId))!;
        const revisions = await revisionsOf('prj_pm_decide', `no ${round}`);
        if (approval.status === 'approved') {
          expect(results[0]!.status).toBe('fulfilled');
          expect(approval.decidedBy).toBe('approver');
          expect(plan.status).not.toBe('CANCELLED');
          expect(revisions).toHaveLength(0);
        } else {
          expect(approval).toMatchObject({ status: 'rejected', decidedBy: 'rejecter' });
          expect(results[1]!.status).toBe('fulfilled');
          expect(plan.status).toBe('CANCELLED');
          expect(revisions).toHaveLength(1);
        }
        // The machine's view, stored in the project row, is the approval row's.
        expect(await entryInSnapshot('prj_pm_decide', approvalId)).toMatchObject({ status: approval.status, decidedBy: approval.decidedBy });
      }
      // No request is left open in the machine.
      const stored = (await store().getProjectSnapshot('prj_pm_decide'))!;
      expect(stored.project.state).toBe('active');
      expect((stored.snapshot as { value: { approvals: string } }).value.approvals).toBe('none');
    } finally {
      await a.stop();
      await b.stop();
    }
  });

  it('a human approval against the expiry (policy reject) on the other instance: exactly one outcome, one announcement', async () => {
    const config = { approval: { timeoutMinutes: 0.0005, timeoutPolicy: 'reject' as const } };
    const a = await orchestratorProcess('pm-a2', config);
    const b = await orchestratorProcess('pm-b2', config);
    try {
      await createProject(a, 'prj_pm_expire');
      for (let round = 0; round < 6; round++) {
        const [human, sweeper] = round % 2 === 0 ? [a, b] : [b, a];
        const { approvalId, planId } = await checkpoint(human, 'prj_pm_expire', round);
        await waitFor(async () => (await store().getApproval(approvalId))!.expiresAt!.getTime() < Date.now(), { what: 'the request past its expiry' });
        const expiredBefore = [...a.messages, ...b.messages].filter((m) => m.kind === 'approval_expired').length;
        const revisionsBefore = (await revisionsOf('prj_pm_expire', 'approval request expired')).length;
        const results = await Promise.allSettled([
          human.orchestrator.decide('prj_pm_expire', { approvalId, decision: 'approved', by: 'human' }),
          sweeper.orchestrator.approvals.sweepExpired(),
        ]);
        // The sweep never fails on a lost race.
        expect(results[1]!.status).toBe('fulfilled');
        const approval = (await store().getApproval(approvalId))!;
        const plan = (await tasks().getTask(planId))!;
        const revisions = (await revisionsOf('prj_pm_expire', 'approval request expired')).length - revisionsBefore;
        const expired = [...a.messages, ...b.messages].filter((m) => m.kind === 'approval_expired' && m.body.approvalId === approvalId);
        if (approval.status === 'approved') {
          expect(results[0]!.status).toBe('fulfilled');
          expect(approval.decidedBy).toBe('human');
          expect(plan.status).not.toBe('CANCELLED');
          expect(revisions).toBe(0);
          expect(expired).toHaveLength(0);
        } else {
          expect(approval).toMatchObject({ status: 'rejected', decidedBy: 'orchestrator:timeout' });
          expect((results[0] as PromiseRejectedResult).reason).toBeInstanceOf(ApprovalError);
          expect(plan.status).toBe('CANCELLED');
          expect(revisions).toBe(1);
          expect(expired).toHaveLength(1);
          expect(expired[0]!.body).toMatchObject({ policy: 'reject', checkpoint: 'SCENE_WRITTEN' });
        }
        expect([...a.messages, ...b.messages].filter((m) => m.kind === 'approval_expired').length - expiredBefore).toBe(approval.status === 'approved' ? 0 : 1);
        expect(await entryInSnapshot('prj_pm_expire', approvalId)).toMatchObject({ status: approval.status, decidedBy: approval.decidedBy });
      }
      // One revision per request rejected by the timeout, none for the approved ones.
      const rejected = (await store().listApprovals('prj_pm_expire', 'rejected')).length;
      expect(await revisionsOf('prj_pm_expire', 'approval request expired')).toHaveLength(rejected);
    } finally {
      await a.stop();
      await b.stop();
    }
  });

  it('two sweeps of the remind policy at once: one reminder, the request extended once and still decidable', async () => {
    const config = { approval: { timeoutMinutes: 0.0005, timeoutPolicy: 'remind' as const } };
    const a = await orchestratorProcess('pm-a3', config);
    const b = await orchestratorProcess('pm-b3', config);
    try {
      await createProject(a, 'prj_pm_remind');
      const { approvalId } = await checkpoint(a, 'prj_pm_remind', 0);
      const requested = (await store().getApproval(approvalId))!;
      await waitFor(async () => requested.expiresAt!.getTime() < Date.now(), { what: 'the request past its expiry' });
      const results = await Promise.allSettled([a.orchestrator.approvals.sweepExpired(), b.orchestrator.approvals.sweepExpired()]);
      expect(results.map((r) => r.status)).toEqual(['fulfilled', 'fulfilled']);
      const all = [...a.messages, ...b.messages];
      expect(all.filter((m) => m.kind === 'approval_requested' && m.body.approvalId === approvalId && m.body.reminder === true)).toHaveLength(1);
      expect(all.filter((m) => m.kind === 'approval_expired' && m.body.approvalId === approvalId)).toHaveLength(1);
      const reminded = (await store().getApproval(approvalId))!;
      expect(reminded.status).toBe('pending');
      expect(reminded.expiresAt!.getTime()).toBeGreaterThan(requested.expiresAt!.getTime());
      expect(await entryInSnapshot('prj_pm_remind', approvalId)).toMatchObject({ status: 'reminded', reminders: 1, expiresAt: reminded.expiresAt!.getTime() });
      await b.orchestrator.decide('prj_pm_remind', { approvalId, decision: 'approved', by: 'late reviewer' });
      expect((await store().getApproval(approvalId))!.status).toBe('approved');
    } finally {
      await a.stop();
      await b.stop();
    }
  });

  it('a step decided on a stale copy is refused by the compare-and-set and decided again on the fresh row', async () => {
    // B's next commit is preceded by one of A's, after B decided: B's write finds the row moved on.
    let beforeB: (() => Promise<unknown>) | null = null;
    const commits: { expected: number; written: boolean }[] = [];
    const a = await orchestratorProcess('pm-a4', {});
    const b = await orchestratorProcess('pm-b4', {}, (projects) =>
      intercept(projects, async (method, args, next) => {
        if (method !== 'commitProjectStep') return next();
        const interleave = beforeB;
        beforeB = null;
        if (interleave) await interleave();
        const result = await next();
        commits.push({ expected: (args[0] as { expectedVersion: number }).expectedVersion, written: result !== null });
        return result;
      }),
    );
    try {
      await createProject(a, 'prj_pm_stale');
      await b.orchestrator.core.projectActors.load('prj_pm_stale');
      const v1 = (await store().getProject('prj_pm_stale'))!.version;

      // A pauses between B's decision (cancel) and B's write: B's write is refused, B decides again.
      beforeB = () => a.orchestrator.pauseProject('prj_pm_stale', 'a look first');
      const cancelled = await b.orchestrator.cancelProject('prj_pm_stale', 'client left');
      expect(commits).toEqual([
        { expected: v1, written: false },
        { expected: v1 + 1, written: true },
      ]);
      expect(cancelled).toMatchObject({ state: 'cancelled', version: v1 + 2 });
      const stored = (await store().getProjectSnapshot('prj_pm_stale'))!;
      expect(stored.project.state).toBe('cancelled');
      expect(stored.snapshot).toMatchObject({ value: { lifecycle: 'cancelled' }, context: { reason: 'client left' } });
      // Both steps were announced, each once, by the instance that committed it.
      expect(a.messages.filter((m) => m.kind === 'project').map((m) => m.body)).toContainEqual({ projectId: 'prj_pm_stale', state: 'paused', reason: 'a look first' });
      expect(b.messages.filter((m) => m.kind === 'project' && m.body.state === 'cancelled')).toHaveLength(1);
      expect(b.messages.filter((m) => m.kind === 'project' && m.body.state === 'paused')).toHaveLength(0);
    } finally {
      await a.stop();
      await b.stop();
    }
  });

  it('a decision whose request another instance decided between the read and the write: refused, decided again, ApprovalError', async () => {
    let beforeB: (() => Promise<unknown>) | null = null;
    const commits: boolean[] = [];
    const a = await orchestratorProcess('pm-a5', {});
    const b = await orchestratorProcess('pm-b5', {}, (projects) =>
      intercept(projects, async (method, _args, next) => {
        if (method !== 'commitProjectStep') return next();
        const interleave = beforeB;
        beforeB = null;
        if (interleave) await interleave();
        const result = await next();
        commits.push(result !== null);
        return result;
      }),
    );
    try {
      await createProject(a, 'prj_pm_stale2');
      const { approvalId, planId } = await checkpoint(a, 'prj_pm_stale2', 0);
      beforeB = () => a.orchestrator.decide('prj_pm_stale2', { approvalId, decision: 'approved', by: 'a' });
      await expect(b.orchestrator.decide('prj_pm_stale2', { approvalId, decision: 'rejected', comment: 'no', by: 'b' })).rejects.toThrow(/already approved by a/);
      // B's one write was refused; deciding again on the fresh row refused the event before any write.
      expect(commits).toEqual([false]);
      expect((await store().getApproval(approvalId))!).toMatchObject({ status: 'approved', decidedBy: 'a' });
      expect((await tasks().getTask(planId))!.status).not.toBe('CANCELLED');
      expect(await revisionsOf('prj_pm_stale2', 'no')).toHaveLength(0);
    } finally {
      await a.stop();
      await b.stop();
    }
  });
});
