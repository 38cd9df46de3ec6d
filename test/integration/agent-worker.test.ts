import { jetstream, jetstreamManager, type JetStreamManager } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { NatsEventBus } from '../../src/adapters/nats/event-bus.js';
import { createAgentWorker, type AgentWorker, type AgentWorkerOptions } from '../../src/agent/worker.js';
import type { DeadLetterMessage, Heartbeat, TaskDispatch, TaskResult, TaskResultBatch } from '../../src/domain/messages.js';
import { atMost, collect, connectTestNats, deleteStreams, gate, randomNatsScope, waitFor, type Collected } from '../helpers/nats.js';
import { uid } from '../helpers/recording-handlers.js';

const scope = randomNatsScope();
const P = scope.subjectPrefix;

let orchestrator: NatsConnection;
let agentNc: NatsConnection;
let jsm: JetStreamManager;
let bus: NatsEventBus;
/** Results messages as published: one result, or a batch. */
let messages: Collected<TaskResult | TaskResultBatch>[];
let heartbeats: Collected<Heartbeat>[];
let dlq: Collected<DeadLetterMessage>[];
const workers: AgentWorker[] = [];

beforeAll(async () => {
  orchestrator = await connectTestNats('orchestrator');
  agentNc = await connectTestNats('worker');
  jsm = await jetstreamManager(orchestrator);
  bus = new NatsEventBus({ connection: orchestrator, subjectPrefix: P, streamPrefix: scope.streamPrefix });
  await bus.ensureStreams();
  messages = collect<TaskResult | TaskResultBatch>(orchestrator, `${P}.results.>`).messages;
  heartbeats = collect<Heartbeat>(orchestrator, `${P}.heartbeats.>`).messages;
  dlq = collect<DeadLetterMessage>(orchestrator, `${P}.dlq`).messages;
  await orchestrator.flush();
});

afterEach(async () => {
  await atMost(Promise.all(workers.splice(0).map((w) => w.stop({ abort: true }))), 10_000);
});

afterAll(async () => {
  try {
    if (orchestrator) await deleteStreams(orchestrator, scope.streamPrefix);
  } finally {
    await orchestrator?.close();
    await agentNc?.close();
  }
});

async function startWorker(options: Omit<AgentWorkerOptions, 'connection' | 'subjectPrefix' | 'streamPrefix'>): Promise<AgentWorker> {
  const worker = await createAgentWorker({ connection: agentNc, subjectPrefix: P, streamPrefix: scope.streamPrefix, ...options });
  workers.push(worker);
  return worker;
}

/** A worker whose handler records each task it starts, then waits until `release.open()`; resolves with `output(task)`. */
async function startHeld(
  agent: string,
  options: Omit<AgentWorkerOptions, 'connection' | 'subjectPrefix' | 'streamPrefix' | 'agent' | 'handle'>,
  output: (t: TaskDispatch) => Record<string, unknown> | undefined = () => undefined,
) {
  const release = gate();
  const started: string[] = [];
  const worker = await startWorker({
    agent,
    ...options,
    handle: async (t) => {
      started.push(t.taskId);
      await release.promise;
      const out = output(t);
      return out ? { output: out } : {};
    },
  });
  return { worker, release, started };
}

const newTask = (overrides: Partial<TaskDispatch> = {}): TaskDispatch => ({
  taskId: uid('task'),
  projectId: 'p1',
  taskType: 'RENDER_SHOT',
  input: { shot: 1 },
  attempt: 1,
  deadline: new Date(Date.now() + 60_000).toISOString(),
  fencingToken: 3,
  ...overrides,
});

async function dispatch(agent: string, overrides: Partial<TaskDispatch> = {}): Promise<TaskDispatch> {
  const task = newTask(overrides);
  await bus.dispatchTask(agent, task);
  return task;
}

/** Every result published, batches taken apart, each with the subject of its message. */
const results = (): Collected<TaskResult>[] =>
  messages.flatMap((m) => ('results' in m.body ? m.body.results : [m.body]).map((body) => ({ subject: m.subject, body })));
const resultOf = (taskId: string) => results().find((r) => r.body.taskId === taskId);
const messageOf = (taskId: string) => messages.find((m) => ('results' in m.body ? m.body.results : [m.body]).some((r) => r.taskId === taskId));
const heartbeatsOf = (taskId: string) => heartbeats.filter((h) => h.body.taskId === taskId);

async function pendingFor(agent: string): Promise<number> {
  return (await jsm.consumers.info(bus.streams.tasks, `agent_${agent}`)).num_pending;
}

describe('agent worker', () => {
  it('receives a task dispatched before it started, heartbeats while running and publishes the completed result', async () => {
    const agent = uid('a');
    const task = await dispatch(agent, { projectId: 'proj-7' });
    const deliveries: number[] = [];
    await startWorker({
      agent,
      heartbeatMs: 50,
      handle: async (t, ctx) => {
        deliveries.push(ctx.delivery);
        await waitFor(() => heartbeatsOf(t.taskId).length >= 3, 'three heartbeats');
        return { output: { video: 'shot-1.mp4' }, actualCost: 2.75 };
      },
    });
    await waitFor(() => resultOf(task.taskId) !== undefined, 'result');
    expect(resultOf(task.taskId)).toEqual({
      subject: `${P}.results.proj-7`,
      body: { taskId: task.taskId, status: 'completed', fencingToken: 3, output: { video: 'shot-1.mp4' }, actualCost: 2.75 },
    });
    expect(heartbeatsOf(task.taskId)[0]).toEqual({ subject: `${P}.heartbeats.proj-7`, body: { taskId: task.taskId, fencingToken: 3 } });
    expect(deliveries).toEqual([1]);
    await waitFor(async () => (await jsm.consumers.info(bus.streams.tasks, `agent_${agent}`)).num_ack_pending === 0, 'task acknowledged');
  });

  it('publishes a failed result with the error message when the handler throws, or returns an invalid outcome', async () => {
    const agent = uid('a');
    await startWorker({
      agent,
      handle: async (t) => {
        if (t.input.mode === 'throw') throw new Error('model refused the prompt');
        return { actualCost: -1 };
      },
    });
    const thrown = await dispatch(agent, { input: { mode: 'throw' }, fencingToken: 9 });
    const invalid = await dispatch(agent, { input: { mode: 'invalid' } });
    await waitFor(() => resultOf(thrown.taskId) !== undefined && resultOf(invalid.taskId) !== undefined, 'two results');
    expect(resultOf(thrown.taskId)!.body).toEqual({ taskId: thrown.taskId, status: 'failed', fencingToken: 9, error: 'model refused the prompt' });
    expect(resultOf(invalid.taskId)!.body).toMatchObject({ status: 'failed', error: expect.stringMatching(/^invalid handler outcome: actualCost: /) });
  });

  it('runs up to `concurrency` tasks at once and leaves the rest in the stream', async () => {
    const agent = uid('a');
    const { worker, release, started } = await startHeld(agent, { concurrency: 2 });
    const tasks = [await dispatch(agent), await dispatch(agent), await dispatch(agent)];
    await waitFor(() => started.length === 2, 'two running');
    await waitFor(async () => (await pendingFor(agent)) === 1, 'third waits in the stream');
    expect(worker.running).toBe(2);
    release.open();
    await waitFor(() => tasks.every((t) => resultOf(t.taskId)?.body.status === 'completed'), 'three results');
    expect(started).toHaveLength(3);
  });

  it('sends the results of one project that finish together in one message, one message each with batchResults: false', async () => {
    for (const batchResults of [true, false]) {
      const agent = uid('a');
      const { release, started } = await startHeld(agent, { concurrency: 4, batchResults }, (t) => ({ n: t.input.shot }));
      const tasks = [
        await dispatch(agent, { projectId: 'pa', input: { shot: 1 } }),
        await dispatch(agent, { projectId: 'pa', input: { shot: 2 } }),
        await dispatch(agent, { projectId: 'pa', input: { shot: 3 } }),
        await dispatch(agent, { projectId: 'pb', input: { shot: 4 } }),
      ];
      await waitFor(() => started.length === 4, 'four running');
      release.open();
      await waitFor(() => tasks.every((t) => resultOf(t.taskId) !== undefined), 'four results');
      await waitFor(async () => (await jsm.consumers.info(bus.streams.tasks, `agent_${agent}`)).num_ack_pending === 0, 'dispatches acknowledged');
      const [a1, a2, a3, b] = tasks.map((t) => messageOf(t.taskId)!);
      if (batchResults) {
        expect(a1).toBe(a2);
        expect(a1).toBe(a3);
        expect(a1!.subject).toBe(`${P}.results.pa`);
        expect(a1!.body).toEqual({ results: tasks.slice(0, 3).map((t, i) => ({ taskId: t.taskId, status: 'completed', fencingToken: 3, output: { n: i + 1 } })) });
        expect(b).toEqual({ subject: `${P}.results.pb`, body: { taskId: tasks[3]!.taskId, status: 'completed', fencingToken: 3, output: { n: 4 } } });
      } else {
        expect(new Set([a1, a2, a3, b]).size).toBe(4);
        expect([a1, a2, a3, b].every((m) => !('results' in m!.body))).toBe(true);
      }
    }
  });

  it('keeps a results message within resultBatchBytes: results that do not fit go in messages of their own', async () => {
    const agent = uid('a');
    const { release, started } = await startHeld(agent, { concurrency: 3, resultBatchBytes: 1 });
    const tasks = [await dispatch(agent, { projectId: 'pc' }), await dispatch(agent, { projectId: 'pc' }), await dispatch(agent, { projectId: 'pc' })];
    await waitFor(() => started.length === 3, 'three running');
    release.open();
    await waitFor(() => tasks.every((t) => resultOf(t.taskId) !== undefined), 'three results');
    const sent = tasks.map((t) => messageOf(t.taskId)!);
    expect(new Set(sent).size).toBe(3);
    expect(sent.every((m) => !('results' in m.body))).toBe(true);
  });

  it('stop() stops pulling, lets the running handler finish and publish, then resolves', async () => {
    const agent = uid('a');
    const release = gate();
    const order: string[] = [];
    const worker = await startWorker({
      agent,
      handle: async (t) => {
        order.push(`start ${t.input.n}`);
        if (t.input.n === 1) await release.promise;
        order.push(`end ${t.input.n}`);
        return { output: { n: t.input.n } };
      },
    });
    const first = await dispatch(agent, { input: { n: 1 } });
    await waitFor(() => order.length === 1, 'first started');
    const stopped = worker.stop().then(() => order.push('stopped'));
    for (let i = 0; i < 20; i++) await new Promise((resolve) => setImmediate(resolve));
    expect(order).toEqual(['start 1']);
    release.open();
    await stopped;
    expect(order).toEqual(['start 1', 'end 1', 'stopped']);
    await waitFor(() => resultOf(first.taskId) !== undefined, 'first result');
    const second = await dispatch(agent, { input: { n: 2 } });
    await waitFor(async () => (await pendingFor(agent)) === 1, 'second waits for a worker');
    expect(order).not.toContain('start 2');
    await startWorker({ agent, handle: async () => ({}) });
    await waitFor(() => resultOf(second.taskId) !== undefined, 'second result by a new worker');
  });

  it('stop({ abort: true }) aborts the signal of the running handlers', async () => {
    const agent = uid('a');
    const worker = await startWorker({
      agent,
      handle: (_t, ctx) =>
        new Promise((_resolve, reject) => {
          ctx.signal.addEventListener('abort', () => reject(new Error('aborted by the worker')));
        }),
    });
    const task = await dispatch(agent);
    await waitFor(() => worker.running === 1, 'running');
    await worker.stop({ abort: true });
    await waitFor(() => resultOf(task.taskId) !== undefined, 'result');
    expect(resultOf(task.taskId)!.body).toMatchObject({ status: 'failed', error: 'aborted by the worker' });
  });

  it('dead-letters a dispatch that is not a valid TaskDispatch and goes on', async () => {
    const agent = uid('a');
    await startWorker({ agent, handle: async () => ({}) });
    await jetstream(orchestrator).publish(`${P}.tasks.${agent}`, JSON.stringify({ taskId: 'x' }));
    const task = await dispatch(agent);
    await waitFor(() => resultOf(task.taskId) !== undefined, 'next task handled');
    await waitFor(() => dlq.some((d) => d.body.subject === `${P}.tasks.${agent}`), 'dead letter');
    expect(dlq.find((d) => d.body.subject === `${P}.tasks.${agent}`)!.body.reason).toMatch(/^schema violation: /);
  });
});

describe('agent worker: several dispatches per message (DISPATCH_BATCH)', () => {
  /** A bus that sends `agent` up to `max` dispatches per message, as DISPATCH_BATCH=<agent>=<max> does. */
  async function batchingBus(agent: string, max: number): Promise<NatsEventBus> {
    const b = new NatsEventBus({ connection: orchestrator, subjectPrefix: P, streamPrefix: scope.streamPrefix, dispatchBatch: { [agent]: max } });
    await b.ensureStreams();
    return b;
  }
  const task = (overrides: Partial<TaskDispatch> = {}): TaskDispatch => newTask({ projectId: 'pq', fencingToken: 5, ...overrides });
  const stored = async (agent: string) => (await jsm.consumers.info(bus.streams.tasks, `agent_${agent}`)).num_pending;

  it('goes as one message, runs each dispatch as if it had come alone, and is acknowledged once every result is stored', async () => {
    const agent = uid('a');
    const batching = await batchingBus(agent, 10);
    expect(batching.dispatchBatchSize(agent)).toBe(10);
    expect(batching.dispatchBatchSize('another_agent')).toBe(1);
    // The agent's consumer first (a worker started and stopped), to count the messages the stream stores.
    await (await startWorker({ agent, handle: async () => ({}) })).stop();
    const tasks = [1, 2, 3, 4].map((shot) => task({ input: { shot } }));
    expect(await batching.dispatchTasks(agent, tasks.map((t) => ({ task: t })))).toStrictEqual([null, null, null, null]);
    expect(await stored(agent)).toBe(1);
    const { release: go, started: ran } = await startHeld(agent, { concurrency: 4 }, (t) => ({ n: t.input.shot }));
    await waitFor(() => ran.length === 4, 'four running');
    go.open();
    await waitFor(() => tasks.every((t) => resultOf(t.taskId)?.body.status === 'completed'), 'four results');
    expect(tasks.map((t) => resultOf(t.taskId)!.body)).toStrictEqual(tasks.map((t, i) => ({ taskId: t.taskId, status: 'completed', fencingToken: 5, output: { n: i + 1 } })));
    await waitFor(async () => (await jsm.consumers.info(bus.streams.tasks, `agent_${agent}`)).num_ack_pending === 0, 'message acknowledged');
    expect(await stored(agent)).toBe(0);
  });

  it('runs no more of a message\'s dispatches than `concurrency` at once; the message stays unacknowledged until the last result', async () => {
    const agent = uid('a');
    const batching = await batchingBus(agent, 10);
    const tasks = [1, 2, 3, 4, 5].map((shot) => task({ input: { shot } }));
    await batching.dispatchTasks(agent, tasks.map((t) => ({ task: t })));
    const held = gate();
    const order: string[] = [];
    let inHandler = 0;
    let most = 0;
    const worker = await startWorker({
      agent,
      concurrency: 2,
      handle: async (t) => {
        most = Math.max(most, ++inHandler);
        order.push(t.taskId);
        if (order.length <= 2) await held.promise;
        inHandler--;
        return {};
      },
    });
    await waitFor(() => order.length === 2, 'two running');
    expect(worker.running).toBe(2);
    expect((await jsm.consumers.info(bus.streams.tasks, `agent_${agent}`)).num_ack_pending).toBe(1);
    held.open();
    await waitFor(() => tasks.every((t) => resultOf(t.taskId) !== undefined), 'five results');
    expect(order).toStrictEqual(tasks.map((t) => t.taskId));
    expect(most).toBe(2);
    await waitFor(async () => (await jsm.consumers.info(bus.streams.tasks, `agent_${agent}`)).num_ack_pending === 0, 'message acknowledged');
  });

  it('sends a dispatch bigger than a message\'s share alone, and every dispatch to an agent not named in its own message', async () => {
    const agent = uid('a');
    const other = uid('a');
    const batching = await batchingBus(agent, 10);
    for (const a of [agent, other]) await (await startWorker({ agent: a, handle: async () => ({}) })).stop();
    const big = task({ input: { prompt: 'x'.repeat(70 * 1024) } });
    expect(await batching.dispatchTasks(agent, [task(), task(), big, task()].map((t) => ({ task: t })))).toStrictEqual([null, null, null, null]);
    expect(await stored(agent)).toBe(3);
    await batching.dispatchTasks(other, [task(), task()].map((t) => ({ task: t })));
    expect(await stored(other)).toBe(2);
  });

  it('dead-letters an entry that is no TaskDispatch with the reason, and runs the others', async () => {
    const agent = uid('a');
    await startWorker({ agent, handle: async () => ({}) });
    const [a, b] = [task(), task()];
    await jetstream(orchestrator).publish(`${P}.tasks.${agent}`, JSON.stringify({ dispatches: [a, { taskId: 'x' }, b] }));
    await waitFor(() => resultOf(a.taskId) !== undefined && resultOf(b.taskId) !== undefined, 'the two valid ones handled');
    await waitFor(() => dlq.some((d) => d.body.subject === `${P}.tasks.${agent}`), 'dead letter');
    const letter = dlq.find((d) => d.body.subject === `${P}.tasks.${agent}`)!.body;
    expect(letter.reason).toMatch(/^schema violation in a dispatches batch: /);
    expect(JSON.parse(letter.data)).toStrictEqual({ taskId: 'x' });
    await waitFor(async () => (await jsm.consumers.info(bus.streams.tasks, `agent_${agent}`)).num_ack_pending === 0, 'message acknowledged');
  });

  it('a plain stop() runs the dispatches of a message it took; stop({ abort }) hands the message back, and another worker runs all of it', async () => {
    const agent = uid('a');
    const batching = await batchingBus(agent, 10);
    const ran: string[] = [];
    const held = gate();
    const first = await startWorker({
      agent,
      handle: async (t) => {
        ran.push(t.taskId);
        if (ran.length === 1) await held.promise;
        return {};
      },
    });
    const plain = [task(), task(), task()];
    await batching.dispatchTasks(agent, plain.map((t) => ({ task: t })));
    await waitFor(() => ran.length === 1, 'first running');
    const stopped = first.stop();
    held.open();
    await stopped;
    expect(ran).toStrictEqual(plain.map((t) => t.taskId));
    await waitFor(() => plain.every((t) => resultOf(t.taskId) !== undefined), 'three results');

    const aborted = [task(), task(), task()];
    const deliveries: Record<string, number[]> = {};
    const second = await startWorker({
      agent,
      handle: (t, ctx) => {
        (deliveries[t.taskId] ??= []).push(ctx.delivery);
        return new Promise((_resolve, reject) => ctx.signal.addEventListener('abort', () => reject(new Error('aborted'))));
      },
    });
    await batching.dispatchTasks(agent, aborted.map((t) => ({ task: t })));
    await waitFor(() => second.running === 1, 'first of three running');
    await second.stop({ abort: true });
    expect(Object.keys(deliveries)).toStrictEqual([aborted[0]!.taskId]);
    await startWorker({
      agent,
      handle: async (t, ctx) => {
        (deliveries[t.taskId] ??= []).push(ctx.delivery);
        return {};
      },
    });
    const completed = (taskId: string) => results().some((r) => r.body.taskId === taskId && r.body.status === 'completed');
    await waitFor(() => aborted.every((t) => completed(t.taskId)), 'all three completed by the next worker', 30_000);
    expect(deliveries).toStrictEqual({ [aborted[0]!.taskId]: [1, 2], [aborted[1]!.taskId]: [2], [aborted[2]!.taskId]: [2] });
  });
});
