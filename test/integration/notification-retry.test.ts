import { afterEach, describe, expect, it } from 'vitest';
import { InProcessEventBus } from '../../src/adapters/memory/event-bus.js';
import { ServiceUnavailableError } from '../../src/errors.js';
import { silentLogger } from '../../src/logger.js';
import { OrchestratorFactory } from '../../src/orchestrator/factory.js';
import type { Outbound } from '../../src/ports/event-bus.js';
import { embedded } from '../helpers/blackboards.js';
import { waitFor } from '../helpers/wait.js';

/**
 * Status and budget publishes follow the commit, at least once: a publish the bus refuses
 * is tried again until the bus takes it. The in-process bus, with a fault: it refuses the
 * first `refusals(key)` tries of each status message.
 */
class RefusingBus extends InProcessEventBus {
  readonly tries = new Map<string, number>();
  readonly published: Outbound[] = [];

  constructor(private readonly refusals: (message: Outbound) => number) {
    super();
  }

  override async publish(message: Outbound): Promise<void> {
    const key = keyOf(message);
    const tries = (this.tries.get(key) ?? 0) + 1;
    this.tries.set(key, tries);
    if (tries <= this.refusals(message)) throw new ServiceUnavailableError('nats', 'publish refused (injected)');
    this.published.push(message);
    return super.publish(message);
  }
}

const keyOf = (m: Outbound): string =>
  m.kind === 'status' ? `status:${m.body.taskId}:${m.body.from ?? 'null'}→${m.body.to}` : m.kind === 'budget' ? `budget:${m.body.projectId}:${m.body.level}` : `${m.kind}:${JSON.stringify(m.body)}`;

let cleanup: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const fn of cleanup.reverse()) await fn();
  cleanup = [];
});

async function start(bus: RefusingBus) {
  const { blackboard, dispose } = await embedded.create();
  cleanup.push(dispose);
  bus.registerAgent('script_writer', (task) => {
    void bus.sendResult(task.projectId, { taskId: task.taskId, fencingToken: task.fencingToken, status: 'completed', output: { script: 'S' }, actualCost: 0.5 });
  });
  const orchestrator = await OrchestratorFactory.createAndStart(
    blackboard,
    bus,
    { instanceId: 'notices', scheduler: { intervalSeconds: 0.02 }, approval: { enabled: false }, budget: { warningThreshold: 0.5 } },
    { logger: silentLogger() },
  );
  cleanup.push(() => orchestrator.stop());
  await orchestrator.handleEvent({ id: 'n-1', type: 'PROJECT_CREATED', projectId: 'prj_n', payload: { title: 'N', budget: 1 }, occurredAt: new Date().toISOString() });
  const [task] = await blackboard.tasks.listByProject('prj_n');
  await waitFor(async () => (await blackboard.tasks.getTask(task!.taskId))!.status === 'COMPLETED', { what: 'WRITE_SCRIPT completed' });
  return { blackboard, orchestrator, taskId: task!.taskId };
}

describe('notifications (statuses, budget)', () => {
  it('a status or budget publish the bus refuses is published on a later try', async () => {
    const bus = new RefusingBus((m) => (m.kind === 'status' || m.kind === 'budget' ? 1 : 0));
    const { blackboard, taskId } = await start(bus);
    const steps = (await blackboard.tasks.listTransitions(taskId)).map((t) => `${t.fromStatus ?? 'null'}→${t.toStatus}`);
    expect(steps.at(-1)).toBe('RUNNING→COMPLETED');
    // Every step of the audit log was published, once, after one refusal each.
    await waitFor(() => steps.every((s) => bus.published.some((m) => keyOf(m) === `status:${taskId}:${s}`)), { what: 'every status published' });
    for (const s of steps) {
      expect(bus.tries.get(`status:${taskId}:${s}`), s).toBe(2);
      expect(bus.published.filter((m) => keyOf(m) === `status:${taskId}:${s}`), s).toHaveLength(1);
    }
    // The budget warning crossed (0.5 of 1 spent, threshold 0.5) was published too.
    await waitFor(() => bus.published.some((m) => m.kind === 'budget' && m.body.level !== 'ok'), { what: 'the budget crossing published' });
  });

  it('a status the bus refuses for longer than a few tries stays pending and is published once the bus takes it', async () => {
    // Refused until the first status has been tried more than 3 times (where it used to be dropped).
    let down = true;
    const bus = new RefusingBus((m) => (m.kind === 'status' && down ? Number.POSITIVE_INFINITY : 0));
    const { blackboard, orchestrator, taskId } = await start(bus);
    const steps = (await blackboard.tasks.listTransitions(taskId)).map((t) => `${t.fromStatus ?? 'null'}→${t.toStatus}`);
    await waitFor(() => (bus.tries.get(`status:${taskId}:${steps[0]}`) ?? 0) > 3, { what: 'the first status tried more than 3 times' });
    expect(bus.published.filter((m) => m.kind === 'status')).toStrictEqual([]);
    // The task went on meanwhile, and its notices wait: the tracker holds them.
    expect(orchestrator.core.notices.idle).toBe(false);
    down = false;
    await waitFor(() => steps.every((s) => bus.published.some((m) => keyOf(m) === `status:${taskId}:${s}`)), { what: 'every status published' });
    await waitFor(() => orchestrator.core.notices.idle, { what: 'nothing left pending' });
    for (const s of steps) expect(bus.published.filter((m) => keyOf(m) === `status:${taskId}:${s}`), s).toHaveLength(1);
  });
});
