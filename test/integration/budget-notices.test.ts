import { afterEach, describe, expect, it } from 'vitest';
import type { BudgetStatus, TaskDispatch } from '../../src/domain/messages.js';
import { ServiceUnavailableError } from '../../src/errors.js';
import type { Blackboard } from '../../src/ports/blackboard.js';
import type { EventBus, Outbound } from '../../src/ports/event-bus.js';
import { completed, coreAgent, createDefectScope, createProject, eventually, intercept, startInstance, type DefectScope, type Instance } from '../helpers/defects.js';
import { connectTestNats } from '../helpers/nats.js';
import { NatsWatch } from '../helpers/nats-watch.js';

/**
 * Issue 16, "the budget a watcher sees can lag the stored one": after every settle, the
 * last budget message of a project (`<prefix>.budget.<projectId>`) carries the projects
 * row's figures (spent, reserved, limit) — whichever instance settled, whatever failed on
 * the way (a publish that came late, a status that could not be read while PostgreSQL
 * restarted, an instance that died before publishing). Real PostgreSQL, Redis and NATS
 * (own schema, key prefix, subject and stream prefixes); agents that never answer, the
 * test hands each result to the instance it chooses.
 *
 * Before: a status read before a later settle could be published after that settle's
 * status (another instance's, or the same one's level announcement), and stayed the last
 * one; a status that could not be read was logged ("could not publish the budget status")
 * and dropped, and nothing published it again, not even after a restart.
 */
let cleanup: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const fn of cleanup.reverse()) await fn().catch(() => undefined);
  cleanup = [];
});

async function watchScope() {
  const scope = await createDefectScope();
  cleanup.push(() => scope.cleanup());
  const nc = await connectTestNats(`watch-${scope.id}`, scope.natsUrl);
  cleanup.push(() => nc.close());
  // Agents that take every dispatch and answer nothing: the test hands the results over.
  const agent = coreAgent(nc, scope.subjectPrefix, () => null);
  cleanup.push(async () => agent.close());
  const watch = await NatsWatch.start(nc, [`${scope.subjectPrefix}.budget.>`]);
  cleanup.push(async () => watch.close());
  await nc.flush();
  return { scope, agent, watch };
}

const budgets = (watch: NatsWatch, scope: DefectScope, projectId: string): BudgetStatus[] =>
  watch.on<BudgetStatus>(`${scope.subjectPrefix}.budget.${projectId}`).map((m) => m.body);

const figures = (b: { budgetLimit?: number | null; limit?: number | null; spent: number; reserved: number } | null | undefined) =>
  b ? { limit: 'budgetLimit' in b ? b.budgetLimit : b.limit, spent: b.spent, reserved: b.reserved } : null;

/** Waits until the last budget message received for the project carries the row's figures; then every tracker is idle. */
async function lastBudgetIsTheRow(watch: NatsWatch, scope: DefectScope, raw: Blackboard, projectId: string, instances: readonly Instance[]): Promise<void> {
  const describe = async () =>
    `messages ${JSON.stringify(budgets(watch, scope, projectId).map(figures))}, row ${JSON.stringify(figures(await raw.projects.getProject(projectId)))}`;
  await eventually(
    async () => {
      const last = budgets(watch, scope, projectId).at(-1);
      const row = await raw.projects.getProject(projectId);
      return last !== undefined && row !== null && JSON.stringify(figures(last)) === JSON.stringify(figures(row));
    },
    'the last budget message carries the row\'s figures',
    describe,
    20_000,
  );
  for (const i of instances) await eventually(() => i.orchestrator.core.notices.idle, `${i.name}'s notices idle`, () => JSON.stringify(i.orchestrator.core.notices.counts));
  const row = await raw.projects.getProject(projectId);
  expect(figures(budgets(watch, scope, projectId).at(-1)), await describe()).toStrictEqual(figures(row));
}

async function delivered(agent: { deliveries: TaskDispatch[] }, taskId: string): Promise<TaskDispatch> {
  await eventually(() => agent.deliveries.some((d) => d.taskId === taskId), `${taskId} dispatched`, () => `deliveries ${agent.deliveries.map((d) => d.taskId).join(', ')}`);
  return agent.deliveries.find((d) => d.taskId === taskId)!;
}

const isBudget = (m: unknown): boolean => (m as Outbound | undefined)?.kind === 'budget';

describe('the last budget message equals the stored figures', () => {
  it('two instances settle tasks of one project; the first instance\'s status arrives after the second\'s: the last message is the row', async () => {
    const { scope, agent, watch } = await watchScope();
    // A's first budget publish is held until the test lets it go: it was read before B's settle.
    let release!: () => void;
    const held = new Promise<void>((resolve) => (release = resolve));
    let heldCalls = 0;
    const holdFirst = (bus: EventBus): EventBus =>
      intercept(bus, (method, args, next) => {
        if (method !== 'publish' || !isBudget(args[0])) return next();
        if (heldCalls++ === 0) return held.then(next);
        return next();
      });
    const a = await startInstance(scope, 'a', { wrapBus: holdFirst });
    cleanup.push(() => a.stop());
    const b = await startInstance(scope, 'b');
    cleanup.push(() => b.stop());

    await createProject(a.orchestrator, 'prj_bl1', { budget: 100 });
    await a.orchestrator.submitTasks('prj_bl1', [
      { taskId: 'tsk_bl1a', taskType: 'ANALYZE_BRIEF' },
      { taskId: 'tsk_bl1b', taskType: 'ANALYZE_BRIEF' },
    ]);
    const first = await delivered(agent, 'tsk_bl1a');
    const second = await delivered(agent, 'tsk_bl1b');

    // A settles the first task; its status (spent 0.25) is read, then held at its bus.
    await a.orchestrator.handleResult('prj_bl1', completed(first, 0.25));
    await eventually(() => heldCalls >= 1, 'A\'s budget publish held');
    // B settles the second; its status (spent 0.75, the row's) goes out.
    await b.orchestrator.handleResult('prj_bl1', completed(second, 0.5));
    await eventually(() => budgets(watch, scope, 'prj_bl1').some((s) => s.spent === 0.75), 'B\'s status received', () => JSON.stringify(budgets(watch, scope, 'prj_bl1').map(figures)));

    // A's older status goes out after B's.
    release();
    await lastBudgetIsTheRow(watch, scope, a.raw, 'prj_bl1', [a, b]);
    expect((await a.raw.projects.getProject('prj_bl1'))).toMatchObject({ spent: 0.75, reserved: 0 });
  }, 120_000);

  it('the budget status cannot be read after a settle (PostgreSQL restarting): once it can, the last message is the row', async () => {
    const { scope, agent, watch } = await watchScope();
    let down = false;
    let failures = 0;
    // The status's forecast read fails while `down`, as a query fails while PostgreSQL restarts.
    const faultyReads = (bb: Blackboard) => ({
      tasks: intercept(bb.tasks, (method, _args, next) => {
        if (method !== 'summarizeProject' || !down) return next();
        failures++;
        return Promise.reject(new ServiceUnavailableError('postgres', 'connection terminated (injected)'));
      }),
    });
    const a = await startInstance(scope, 'a', { wrap: faultyReads });
    cleanup.push(() => a.stop());
    await createProject(a.orchestrator, 'prj_bl2', { budget: 100 });
    await a.orchestrator.submitTasks('prj_bl2', [
      { taskId: 'tsk_bl2a', taskType: 'ANALYZE_BRIEF' },
      { taskId: 'tsk_bl2b', taskType: 'ANALYZE_BRIEF' },
    ]);
    const first = await delivered(agent, 'tsk_bl2a');
    const second = await delivered(agent, 'tsk_bl2b');
    await a.orchestrator.handleResult('prj_bl2', completed(first, 0.25));
    await eventually(() => budgets(watch, scope, 'prj_bl2').some((s) => s.spent === 0.25), 'the first settle\'s status received');

    down = true;
    await a.orchestrator.handleResult('prj_bl2', completed(second, 0.5));
    await eventually(() => failures >= 1, 'the second settle\'s status read failed');
    down = false;

    await lastBudgetIsTheRow(watch, scope, a.raw, 'prj_bl2', [a]);
    expect(budgets(watch, scope, 'prj_bl2').at(-1)).toMatchObject({ spent: 0.75, reserved: 0 });
  }, 120_000);

  it('an instance that could not read the status after a settle dies; restarted (same instance id), the last message is the row', async () => {
    const { scope, agent, watch } = await watchScope();
    let failures = 0;
    const failReads = (bb: Blackboard) => ({
      tasks: intercept(bb.tasks, (method, _args, next) => {
        if (method !== 'summarizeProject') return next();
        failures++;
        return Promise.reject(new ServiceUnavailableError('postgres', 'connection terminated (injected)'));
      }),
    });
    const a = await startInstance(scope, 'a', { wrap: failReads });
    cleanup.push(() => a.stop());
    await createProject(a.orchestrator, 'prj_bl3', { budget: 100 });
    await a.orchestrator.submitTasks('prj_bl3', [{ taskId: 'tsk_bl3a', taskType: 'ANALYZE_BRIEF' }]);
    const task = await delivered(agent, 'tsk_bl3a');
    await a.orchestrator.handleResult('prj_bl3', completed(task, 0.25));
    await eventually(() => failures >= 1, 'the settle\'s status read failed');
    // Two heartbeats written after the failure (a heartbeat writes the watermark computed
    // from the sequence value the one before it read): the watermark as A leaves it.
    for (let beat = 0; beat < 2; beat++) {
      const before = (await a.raw.notices.get('a'))!.heartbeatAt.getTime();
      await eventually(async () => (await a.raw.notices.get('a'))!.heartbeatAt.getTime() > before, 'a heartbeat after the failure');
    }
    expect(budgets(watch, scope, 'prj_bl3').some((s) => s.spent === 0.25), 'nothing with the settle published yet').toBe(false);

    // A dies (no stop) and is started again under the same instance id.
    await a.kill();
    const again = await startInstance(scope, 'a');
    cleanup.push(() => again.stop());
    await lastBudgetIsTheRow(watch, scope, again.raw, 'prj_bl3', [again]);
    expect(budgets(watch, scope, 'prj_bl3').at(-1)).toMatchObject({ spent: 0.25, reserved: 0 });
  }, 120_000);
});
