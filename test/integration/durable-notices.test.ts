import { afterEach, describe, expect, it } from 'vitest';
import type { BudgetStatus, TaskStatusMessage } from '../../src/domain/messages.js';
import { ServiceUnavailableError } from '../../src/errors.js';
import type { EventBus, Outbound } from '../../src/ports/event-bus.js';
import type { Blackboard } from '../../src/ports/blackboard.js';
import { completed, coreAgent, createDefectScope, createProject, eventually, intercept, startInstance, type DefectScope } from '../helpers/defects.js';
import { connectTestNats } from '../helpers/nats.js';
import { NatsWatch } from '../helpers/nats-watch.js';

/**
 * Issue 15, "reactions come from the durable outbox", for status and budget notices: every
 * committed transition is announced at least once, even when the bus refuses publishes for
 * a long while or the instance that committed it dies before announcing it. Real
 * PostgreSQL, Redis and NATS (own schema, key prefix, subject and stream prefixes); the
 * subscriber is a core subscription of the status and budget subjects.
 *
 * Before: a status or budget publish the bus refused was tried 3 times (100 and 200 ms
 * apart), then logged and dropped; one the process did not get to was lost.
 */
let cleanup: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const fn of cleanup.reverse()) await fn().catch(() => undefined);
  cleanup = [];
});

const isNotice = (m: Outbound | undefined): boolean => m?.kind === 'status' || m?.kind === 'budget';

/** The bus, with status and budget publishes that `mode()` says fail (NATS down), hang for ever (the process stalls before them) or pass. */
function faultyNotices(mode: () => 'fail' | 'hang' | 'pass', refusals: { count: number }) {
  return (bus: EventBus): EventBus =>
    intercept(bus, (method, args, next) => {
      if (method !== 'publish' || !isNotice(args[0] as Outbound)) return next();
      const m = mode();
      if (m === 'hang') return new Promise(() => undefined);
      if (m === 'fail') {
        refusals.count++;
        return Promise.reject(new ServiceUnavailableError('nats', 'publish refused (injected)'));
      }
      return next();
    });
}

async function watchScope() {
  const scope = await createDefectScope();
  cleanup.push(() => scope.cleanup());
  const nc = await connectTestNats(`watch-${scope.id}`, scope.natsUrl);
  cleanup.push(() => nc.close());
  const agent = coreAgent(nc, scope.subjectPrefix, (t) => completed(t, 0.25));
  const watch = await NatsWatch.start(nc, [`${scope.subjectPrefix}.status.>`, `${scope.subjectPrefix}.budget.>`]);
  cleanup.push(async () => watch.close());
  return { scope, agent, watch };
}

const stepOf = (taskId: string, from: string | null, to: string, at: string) => `${taskId} ${from ?? 'null'}→${to} @${at}`;

/** Every audit row of the project, as the step its status notice names. */
async function auditSteps(blackboard: Blackboard, taskIds: readonly string[]): Promise<string[]> {
  const steps: string[] = [];
  for (const id of taskIds) {
    for (const t of await blackboard.tasks.listTransitions(id)) steps.push(stepOf(t.taskId, t.fromStatus, t.toStatus, t.at.toISOString()));
  }
  return steps;
}

function received(watch: NatsWatch, scope: DefectScope): Set<string> {
  return new Set(watch.on<TaskStatusMessage>(`${scope.subjectPrefix}.status.`).map(({ body: b }) => stepOf(b.taskId, b.from, b.to, b.at)));
}

/** Waits until the last budget status received for the project has the project row's final amounts. */
async function finalBudgetReceived(watch: NatsWatch, scope: DefectScope, blackboard: Blackboard, projectId: string): Promise<BudgetStatus> {
  let last: BudgetStatus | undefined;
  await eventually(
    async () => {
      const project = await blackboard.projects.getProject(projectId);
      last = watch.on<BudgetStatus>(`${scope.subjectPrefix}.budget.${projectId}`).at(-1)?.body;
      return last !== undefined && project !== null && last.spent === project.spent && last.reserved === project.reserved;
    },
    'the final budget status received',
    async () => `last received ${JSON.stringify(last)}, project ${JSON.stringify(await blackboard.projects.getProject(projectId))}`,
    60_000,
  );
  return last!;
}

describe('status and budget notices, at least once', () => {
  it('the bus refuses notices for a while as tasks complete: every status is received afterwards, and the budget as it ended', async () => {
    const { scope, agent, watch } = await watchScope();
    let down = true;
    const refusals = { count: 0 };
    const a = await startInstance(scope, 'a', { wrapBus: faultyNotices(() => (down ? 'fail' : 'pass'), refusals) });
    cleanup.push(() => a.stop());
    await createProject(a.orchestrator, 'prj_dn1', { budget: 100 });
    const { taskIds } = await a.orchestrator.submitTasks(
      'prj_dn1',
      Array.from({ length: 4 }, () => ({ taskType: 'ANALYZE_BRIEF' as const })),
    );
    await eventually(
      async () => (await a.raw.tasks.getTasks(taskIds)).every((t) => t.status === 'COMPLETED'),
      'the tasks COMPLETED',
      () => `deliveries ${agent.deliveries.length}`,
      60_000,
    );
    const steps = await auditSteps(a.raw, taskIds);
    // Refused for longer than the old bound: each notice tried several times (the retries go on).
    await eventually(() => refusals.count >= steps.length + 5, 'the refused notices tried again several times', () => `refusals ${refusals.count}`);
    expect(received(watch, scope).size, 'nothing received while the bus refuses').toBe(0);

    down = false;
    await eventually(
      () => steps.every((s) => received(watch, scope).has(s)),
      'every audit row announced',
      () => `missing ${steps.filter((s) => !received(watch, scope).has(s)).join(', ')}`,
      60_000,
    );
    const budget = await finalBudgetReceived(watch, scope, a.raw, 'prj_dn1');
    expect(budget).toMatchObject({ projectId: 'prj_dn1', spent: 1, reserved: 0 });
    // Every notice the live path published was matched to its commit: nothing is left pending.
    await eventually(() => a.orchestrator.core.notices.idle, 'the tracker idle', () => JSON.stringify(a.orchestrator.core.notices.counts));
    expect(a.orchestrator.core.notices.counts).toStrictEqual({ inFlight: 0, pending: 0, refused: 0, owedBudgets: 0, replaying: false });
  }, 180_000);

  it('an instance that committed transitions and died before announcing them: a live instance claims its row and announces them', async () => {
    const { scope, agent, watch } = await watchScope();
    const config = { notices: { staleAfterSeconds: 2 } };
    const b = await startInstance(scope, 'b', { config });
    cleanup.push(() => b.stop());
    // A's notices never leave: its publishes of statuses and budgets hang (the process stalls, then dies).
    const a = await startInstance(scope, 'a', { config, wrapBus: faultyNotices(() => 'hang', { count: 0 }) });
    cleanup.push(() => a.stop());
    await createProject(a.orchestrator, 'prj_dn2', { budget: 100 });
    // Not awaited: its reaction (the statuses) never finishes on A.
    let taskIds: string[] = [];
    void a.orchestrator
      .submitTasks('prj_dn2', Array.from({ length: 3 }, () => ({ taskType: 'ANALYZE_BRIEF' as const })))
      .then((r) => (taskIds = r.taskIds), () => undefined);
    await eventually(
      async () => {
        const rows = await a.raw.tasks.listByProject('prj_dn2');
        taskIds = rows.map((t) => t.taskId);
        return rows.length === 3 && rows.every((t) => t.status === 'COMPLETED');
      },
      'the tasks COMPLETED',
      () => `deliveries ${agent.deliveries.length}`,
      90_000,
    );
    const byA = (await Promise.all(taskIds.map((id) => a.raw.tasks.listTransitions(id)))).flat().filter((t) => t.by === 'a');
    expect(byA.length, 'A committed transitions').toBeGreaterThan(0);
    const steps = await auditSteps(a.raw, taskIds);
    const fromA = byA.map((t) => stepOf(t.taskId, t.fromStatus, t.toStatus, t.at.toISOString()));
    expect(fromA.filter((s) => received(watch, scope).has(s)), 'none of A\'s statuses received while it lives').toStrictEqual([]);

    // A dies: no stop, its heartbeat stops. B claims its row once it is stale and announces A's rows.
    await a.kill();
    await eventually(
      () => steps.every((s) => received(watch, scope).has(s)),
      'every audit row announced',
      () => `missing ${steps.filter((s) => !received(watch, scope).has(s)).join(', ')}`,
      60_000,
    );
    await finalBudgetReceived(watch, scope, b.raw, 'prj_dn2');
    // The replayed statuses carry what the live path's carry.
    const dispatched = watch.on<TaskStatusMessage>(`${scope.subjectPrefix}.status.`, (m) => m.to === 'RUNNING' && m.taskId === taskIds[0]).map((m) => m.body);
    expect(dispatched[0]).toMatchObject({ taskId: taskIds[0], projectId: 'prj_dn2', taskType: 'ANALYZE_BRIEF', attempt: 1 });
    // A's row is gone once it was announced.
    await eventually(async () => (await b.raw.notices.get('a')) === null, 'A\'s row released by B');
  }, 180_000);
});
