import { afterEach, describe, expect, it } from 'vitest';
import { CLAIM_TTL_MS } from '../../src/dispatch/dispatcher.js';
import { ServiceUnavailableError } from '../../src/errors.js';
import type { EventBus } from '../../src/ports/event-bus.js';
import {
  allCompleted,
  completed,
  completionsPerTask,
  coreAgent,
  createDefectScope,
  createProject,
  eventually,
  intercept,
  startInstance,
  type Instance,
} from '../helpers/defects.js';
import { connectTestNats } from '../helpers/nats.js';

/**
 * Issue 15, "reactions come from the durable outbox": a RUNNING attempt whose dispatch was
 * never confirmed published survives its instance. Two orchestrator instances on the real
 * PostgreSQL, Redis and NATS; the agent is a core subscriber of `<prefix>.tasks.>`, so it
 * sees exactly the dispatches that were published.
 *
 * Before the dispatch outbox, an instance that died between the RUNNING commit and a
 * confirmed publish left the attempt to its timeout (10 minutes here) unless an instance
 * started: a live one never took it over (its lease was lengthened to the deadline at once).
 */
let cleanup: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const fn of cleanup.reverse()) await fn().catch(() => undefined);
  cleanup = [];
});

/** The bus, with dispatches that `mode()` says hang for ever (a publish that never resolves) or fail (NATS down). */
function faultyDispatches(mode: () => 'hang' | 'fail' | 'pass') {
  return (bus: EventBus): EventBus =>
    intercept(bus, (method, _args, next) => {
      if (method !== 'dispatchTask') return next();
      const m = mode();
      if (m === 'hang') return new Promise(() => undefined);
      if (m === 'fail') return Promise.reject(new ServiceUnavailableError('nats', 'dispatch not confirmed (injected)'));
      return next();
    });
}

/** Every task of the list RUNNING, written so by `by`: the instance committed RUNNING. */
async function runningBy(instance: Instance, taskIds: readonly string[], by: string): Promise<void> {
  await eventually(
    async () => (await instance.raw.tasks.getTasks(taskIds)).every((t) => t.status === 'RUNNING'),
    `the ${taskIds.length} tasks RUNNING`,
    async () => (await instance.raw.tasks.getTasks(taskIds)).map((t) => `${t.taskId}=${t.status}`).join(' '),
  );
  for (const id of taskIds) {
    const dispatch = (await instance.raw.tasks.listTransitions(id)).find((t) => t.toStatus === 'RUNNING');
    expect(dispatch?.by, `${id} written RUNNING by ${by}`).toBe(by);
  }
}

/** A defect scope (private names on the shared servers) and an agent on a core subscription answering every dispatch. */
async function agentScope() {
  const scope = await createDefectScope();
  cleanup.push(() => scope.cleanup());
  const agentNc = await connectTestNats(`agent-${scope.id}`, scope.natsUrl);
  cleanup.push(() => agentNc.close());
  const agent = coreAgent(agentNc, scope.subjectPrefix, (t) => completed(t));
  await agentNc.flush();
  return { scope, agent, agentNc };
}

describe('the dispatch outbox', () => {
  it('a live instance takes over, long before the timeout, the attempts an instance wrote RUNNING and died before publishing', async () => {
    const { scope, agent } = await agentScope();

    // B is up first, and stays up (it does not restart). A's dispatches never leave: its bus never confirms them.
    const b = await startInstance(scope, 'b');
    cleanup.push(() => b.stop());
    const a = await startInstance(scope, 'a', { wrapBus: faultyDispatches(() => 'hang') });
    cleanup.push(() => a.stop());
    await createProject(a.orchestrator, 'prj_do1');
    const { taskIds } = await a.orchestrator.submitTasks(
      'prj_do1',
      Array.from({ length: 3 }, () => ({ taskType: 'ANALYZE_BRIEF' as const, timeoutMs: 600_000 })),
    );
    await runningBy(a, taskIds, 'a');
    const tokens = new Map((await a.raw.tasks.getTasks(taskIds)).map((t) => [t.taskId, t.fencingToken]));

    // A dies: no stop, its leases stay until they expire.
    await a.kill();

    // Within two minutes: the tasks' timeout is ten.
    const rows = await allCompleted(b.raw, 'prj_do1', 3, 120_000, () => `deliveries ${agent.deliveries.length}`);
    // The same attempt, under the token A wrote it RUNNING with, sent once (by B) and completed once.
    expect(Object.fromEntries(taskIds.map((id) => [id, agent.count(id)]))).toStrictEqual(Object.fromEntries(taskIds.map((id) => [id, 1])));
    for (const d of agent.deliveries) expect(d).toMatchObject({ attempt: 1, fencingToken: tokens.get(d.taskId) });
    expect(Object.fromEntries(await completionsPerTask(b.raw, taskIds))).toStrictEqual(Object.fromEntries(taskIds.map((id) => [id, 1])));
    expect(rows.every((t) => t.attempts === 1)).toBe(true);
    // Nothing is left unconfirmed.
    expect(await b.raw.tasks.listUnconfirmedDispatches({ before: new Date(Date.now() + 60_000), limit: 10 })).toStrictEqual([]);
  }, 180_000);

  it('a live instance keeps its unconfirmed attempts: it renews their leases and sends them itself once NATS is back', async () => {
    const { scope, agent, agentNc } = await agentScope();

    const b = await startInstance(scope, 'b');
    cleanup.push(() => b.stop());
    let down = true;
    const a = await startInstance(scope, 'a', { wrapBus: faultyDispatches(() => (down ? 'fail' : 'pass')) });
    cleanup.push(() => a.stop());
    await createProject(a.orchestrator, 'prj_do2');
    const { taskIds } = await a.orchestrator.submitTasks(
      'prj_do2',
      Array.from({ length: 2 }, () => ({ taskType: 'ANALYZE_BRIEF' as const, timeoutMs: 600_000 })),
    );
    await runningBy(a, taskIds, 'a');

    // Long enough for B's sweep to find them unconfirmed past the claim TTL, several times.
    await eventually(
      async () =>
        (await b.raw.tasks.listUnconfirmedDispatches({ before: new Date(Date.now() - CLAIM_TTL_MS - 10_000), limit: 10 })).length === taskIds.length,
      'the dispatches unconfirmed for longer than the claim TTL and two reconciles',
      () => `deliveries ${agent.deliveries.length}`,
      90_000,
      500,
    );
    await agentNc.flush();
    expect(agent.deliveries, 'nothing sent while A cannot publish and holds the leases').toStrictEqual([]);

    // NATS is back for A: its own retries deliver each attempt, once.
    down = false;
    await allCompleted(a.raw, 'prj_do2', 2, 60_000, () => `deliveries ${agent.deliveries.length}`);
    expect(Object.fromEntries(taskIds.map((id) => [id, agent.count(id, 1)]))).toStrictEqual(Object.fromEntries(taskIds.map((id) => [id, 1])));
    expect(Object.fromEntries(await completionsPerTask(a.raw, taskIds))).toStrictEqual(Object.fromEntries(taskIds.map((id) => [id, 1])));
    await eventually(
      async () => (await a.raw.tasks.listUnconfirmedDispatches({ before: new Date(Date.now() + 60_000), limit: 10 })).length === 0,
      'the confirmed dispatches out of the outbox',
    );
  }, 180_000);
});
