import { jetstream, jetstreamManager, type JetStreamClient, type JetStreamManager } from '@nats-io/jetstream';
import { headers, type NatsConnection } from '@nats-io/transport-node';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { NatsEventBus } from '../../src/adapters/nats/event-bus.js';
import { createAgentWorker } from '../../src/agent/worker.js';
import type { DeadLetterMessage, TaskDispatch } from '../../src/domain/messages.js';
import { ProjectNotFoundError, ServiceUnavailableError, StaleFencingTokenError, ValidationError } from '../../src/errors.js';
import type { InboundSubscription } from '../../src/ports/event-bus.js';
import { atMost, collect, connectTestNats, deleteStreams, gate, randomNatsScope, waitFor, type Collected } from '../helpers/nats.js';
import { Gates, turns } from '../helpers/gates.js';
import { RecordingHandlers, eventBody, keyOf, uid } from '../helpers/recording-handlers.js';

const scope = randomNatsScope();
const P = scope.subjectPrefix;
const MAX_PAYLOAD = 4096;

let nc: NatsConnection; // the orchestrator's connection
let agent: NatsConnection; // an agent's / another service's connection
let js: JetStreamClient;
let jsm: JetStreamManager;
let bus: NatsEventBus;
let dlq: Collected<DeadLetterMessage>[];
let handlers: RecordingHandlers;
let sub: InboundSubscription;

beforeAll(async () => {
  nc = await connectTestNats('bus');
  agent = await connectTestNats('agent');
  js = jetstream(agent);
  jsm = await jetstreamManager(agent);
  bus = new NatsEventBus({
    connection: nc,
    subjectPrefix: P,
    streamPrefix: scope.streamPrefix,
    maxPayloadBytes: MAX_PAYLOAD,
    maxDeliveries: 3,
    ackWaitMs: 10_000,
    retryDelay: { baseMs: 50, maxMs: 200 },
  });
  await bus.ensureStreams();
  dlq = collect<DeadLetterMessage>(agent, `${P}.dlq`).messages;
  await agent.flush();
});

afterAll(async () => {
  try {
    await atMost(sub?.close(), 10_000);
    if (nc) await deleteStreams(nc, scope.streamPrefix);
  } finally {
    await nc?.close();
    await agent?.close();
  }
});

beforeEach(async () => {
  handlers = new RecordingHandlers();
  sub = await bus.consume(handlers);
});

afterEach(async () => {
  await sub.close();
});

/** Publishes through JetStream (stored when this resolves). */
async function send(subject: string, body: unknown, msgID?: string): Promise<void> {
  const data = typeof body === 'string' ? body : JSON.stringify(body);
  await js.publish(subject, data, msgID === undefined ? undefined : { msgID });
}

/** A valid event that must be handled after whatever was sent before it. */
async function marker(): Promise<void> {
  const id = uid('marker');
  await send(`${P}.events.p1.MARKER`, eventBody('p1', id, 'MARKER'));
  await waitFor(() => handlers.doneFor(id).length === 1, `marker ${id}`);
}

async function inboundConsumerInfo() {
  return jsm.consumers.info(bus.streams.inbound, 'orchestrator');
}

/** Waits until the inbound consumer holds `ackPending` unacknowledged messages and `pending` wait in the stream. */
async function holding(ackPending: number, pending = 0): Promise<void> {
  await waitFor(async () => {
    const info = await inboundConsumerInfo();
    return info.num_ack_pending === ackPending && info.num_pending === pending;
  }, `${ackPending} unacknowledged, ${pending} in the stream`);
}

const sendResult = (taskId: string) => send(`${P}.results.p1`, { taskId, status: 'completed', fencingToken: 1 });
const sendHeartbeat = (taskId: string) => send(`${P}.heartbeats.p1`, { taskId, fencingToken: 1 });
const sendEvent = (id: string, projectId = 'p1') => send(`${P}.events.${projectId}.SCRIPT_READY`, eventBody(projectId, id));
const sendDecision = (approvalId: string, projectId = 'p1') =>
  send(`${P}.approvals.decided.${projectId}`, { approvalId, decision: 'approved', by: 'alice' });

describe('NatsEventBus inbound', () => {
  it('hands events, results, heartbeats and decisions to the handlers with parsed bodies', async () => {
    const [e, t, a, d] = [uid('ev'), uid('task'), uid('appr'), uid('ev')];
    await send(`${P}.events.p1.SCRIPT_READY`, eventBody('p1', e, 'SCRIPT_READY', { scenes: 3 }));
    await send(`${P}.results.p1`, { taskId: t, status: 'completed', fencingToken: 4, output: { url: 's3://x' }, actualCost: 1.25 });
    await send(`${P}.heartbeats.p1`, { taskId: t, fencingToken: 4 });
    await send(`${P}.approvals.decided.p1`, { approvalId: a, decision: 'rejected', by: 'alice', comment: 'redo', shots: [1, 2] });
    await send(`${P}.events.proj-2.SHOTS_READY`, eventBody('proj-2', d, 'SHOTS_READY'));
    await waitFor(() => handlers.done.length >= 5, 'five calls');
    const [event] = handlers.doneFor(e);
    expect(event).toMatchObject({ kind: 'event', body: { id: e, type: 'SCRIPT_READY', projectId: 'p1', payload: { scenes: 3 } } });
    expect(event!.kind === 'event' && event!.body.occurredAt).toBeInstanceOf(Date);
    expect(handlers.doneFor(t).map((c) => c.kind)).toEqual(['result', 'heartbeat']);
    expect(handlers.doneFor(t)[0]).toEqual({
      kind: 'result',
      projectId: 'p1',
      body: { taskId: t, status: 'completed', fencingToken: 4, output: { url: 's3://x' }, actualCost: 1.25 },
    });
    expect(handlers.doneFor(t)[1]).toEqual({ kind: 'heartbeat', projectId: 'p1', body: { taskId: t, fencingToken: 4 } });
    expect(handlers.doneFor(a)).toEqual([
      { kind: 'decision', projectId: 'p1', body: { approvalId: a, decision: 'rejected', by: 'alice', comment: 'redo', shots: [1, 2] } },
    ]);
    expect(handlers.doneFor(d)[0]).toMatchObject({ kind: 'event', body: { projectId: 'proj-2', type: 'SHOTS_READY' } });
  });

  it('redelivers a message whose handler failed with a retryable error, until it succeeds', async () => {
    const id = uid('flaky');
    handlers.behaviour = (call) => {
      if (call.kind === 'event' && call.body.id === id && handlers.callsFor(id).length === 1) {
        throw new ServiceUnavailableError('postgres', 'connection lost');
      }
    };
    await send(`${P}.events.p1.SCRIPT_READY`, eventBody('p1', id));
    await waitFor(() => handlers.doneFor(id).length === 1, 'handled on the second delivery');
    await marker();
    await waitFor(async () => (await inboundConsumerInfo()).num_ack_pending === 0, 'all acknowledged');
    expect(handlers.callsFor(id)).toHaveLength(2);
    expect(dlq.filter((m) => m.body.data.includes(id))).toHaveLength(0);
  });

  describe('dead-letters bad input and goes on with the next message', () => {
    async function expectDeadLetter(subject: string, data: string, reason: RegExp): Promise<void> {
      const before = dlq.length;
      await send(subject, data);
      await marker();
      await waitFor(() => dlq.length > before, 'dead letter');
      const letter = dlq.slice(before).find((m) => m.body.data === data);
      expect(letter?.subject).toBe(`${P}.dlq`);
      expect(letter?.body.subject).toBe(subject);
      expect(letter?.body.reason).toMatch(reason);
    }

    it('not JSON', async () => {
      await expectDeadLetter(`${P}.events.p1.SCRIPT_READY`, `{"id": "${uid('nj')}", oops`, /^not JSON: /);
    });

    it('schema violation, with the issues', async () => {
      const data = JSON.stringify({ taskId: uid('t'), status: 'done' });
      await expectDeadLetter(`${P}.results.p1`, data, /^schema violation: .*fencingToken/);
      const decision = JSON.stringify({ approvalId: uid('a'), decision: 'maybe', by: 'bob' });
      await expectDeadLetter(`${P}.approvals.decided.p1`, decision, /^schema violation: decision: /);
    });

    it('oversize payload, before parsing', async () => {
      const data = JSON.stringify({ ...eventBody('p1', uid('big')), payload: { blob: 'x'.repeat(MAX_PAYLOAD) } });
      await expectDeadLetter(`${P}.events.p1.SCRIPT_READY`, data, new RegExp(`^payload of ${data.length} bytes exceeds the limit of ${MAX_PAYLOAD} bytes`));
    });

    it('subject/body mismatch (project id, event type)', async () => {
      const id = uid('mm');
      await expectDeadLetter(`${P}.events.p1.SCRIPT_READY`, JSON.stringify(eventBody('p2', id)), /^subject\/body mismatch: .*p1.*p2/);
      await expectDeadLetter(`${P}.events.p1.SCRIPT_READY`, JSON.stringify(eventBody('p1', id, 'OTHER')), /^subject\/body mismatch: .*event type/);
      const hb = JSON.stringify({ taskId: uid('t'), fencingToken: 1, projectId: 'p9' });
      await expectDeadLetter(`${P}.heartbeats.p1`, hb, /^subject\/body mismatch/);
      expect(handlers.callsFor(id)).toHaveLength(0);
    });

    it('a non-retryable handler error such as a stale fencing token', async () => {
      const taskId = uid('stale');
      handlers.behaviour = (call) => {
        if (call.kind === 'result' && call.body.taskId === taskId) throw new StaleFencingTokenError(taskId, 1, 2);
      };
      const data = JSON.stringify({ taskId, status: 'failed', fencingToken: 1, error: 'late' });
      await expectDeadLetter(`${P}.results.p1`, data, /^ERR_STALE_FENCING_TOKEN: task .* fencing token 1 is older than the current token 2$/);
      expect(handlers.callsFor(taskId)).toHaveLength(1);
    });

    it('keeps the dead letters in the DLQ stream', async () => {
      await waitFor(async () => (await jsm.streams.info(bus.streams.dlq)).state.messages >= 8, 'stored dead letters');
    });
  });

  it('delivers a message repeated with the same Nats-Msg-Id once', async () => {
    const id = uid('dup');
    for (let i = 0; i < 3; i++) {
      const h = headers();
      h.set('Nats-Msg-Id', id);
      agent.publish(`${P}.events.p1.SCRIPT_READY`, JSON.stringify(eventBody('p1', id)), { headers: h });
    }
    await agent.flush();
    await marker();
    expect(handlers.callsFor(id)).toHaveLength(1);
  });

  it('captures core publishes made while no orchestrator consumes, and handles them once it is back', async () => {
    await sub.close();
    const id = uid('offline');
    agent.publish(`${P}.events.p1.SCRIPT_READY`, JSON.stringify(eventBody('p1', id)));
    await agent.flush();
    await waitFor(async () => (await inboundConsumerInfo()).num_pending >= 1, 'message stored');
    expect(handlers.callsFor(id)).toHaveLength(0);
    handlers = new RecordingHandlers();
    sub = await bus.consume(handlers);
    await waitFor(() => handlers.doneFor(id).length === 1, 'handled after restart');
  });

  it('refuses a second consume() while one runs', async () => {
    await expect(bus.consume(new RecordingHandlers())).rejects.toBeInstanceOf(ValidationError);
  });
});

describe('NatsEventBus inbound concurrency and order', () => {
  let gates: Gates;

  beforeEach(async () => {
    await holding(0); // nothing of an earlier test left
    gates = new Gates();
    handlers.behaviour = gates.behaviour;
  });

  it('an event runs alongside the results before and after it: results neither wait for it nor hold it back', async () => {
    const ids = { r1: uid('r1'), ev: uid('ev'), r2: uid('r2') };
    for (const [label, id] of Object.entries(ids)) gates.hold(id, label);
    await sendResult(ids.r1);
    await sendEvent(ids.ev);
    await sendResult(ids.r2);
    await waitFor(() => gates.running === 3, 'all three running');
    expect(gates.log).toEqual(['enter r1', 'enter ev', 'enter r2']);
    gates.open('ev');
    await holding(2); // the event acknowledged, both results still held
    gates.open('r2', 'r1');
    await holding(0);
    expect(gates.log).toEqual(['enter r1', 'enter ev', 'enter r2', 'exit ev', 'exit r2', 'exit r1']);
  });

  it('barriers (events, decisions) run one at a time, in stream order; the results after a waiting barrier go on', async () => {
    const ids = { e1: uid('e1'), d: uid('dec'), r: uid('r'), e2: uid('e2'), h: uid('hb') };
    for (const [label, id] of Object.entries(ids)) gates.hold(id, label);
    await sendEvent(ids.e1);
    await sendDecision(ids.d);
    await sendResult(ids.r);
    await sendEvent(ids.e2);
    await sendHeartbeat(ids.h);
    await holding(5);
    await waitFor(() => gates.running === 3, 'e1, r and h running');
    await turns();
    expect(gates.log).toEqual(['enter e1', 'enter r', 'enter h']); // d and e2 wait for e1
    gates.open('r', 'h');
    await holding(3);
    await turns();
    expect(gates.log).toEqual(['enter e1', 'enter r', 'enter h', 'exit r', 'exit h']);
    gates.open('e1');
    await waitFor(() => gates.entered('d'), 'decision started');
    await turns();
    expect(gates.log.slice(5)).toEqual(['exit e1', 'enter d']); // e2 still waits
    gates.open('d');
    await waitFor(() => gates.entered('e2'), 'e2 started');
    gates.open('e2');
    await holding(0);
    expect(gates.log.slice(5)).toEqual(['exit e1', 'enter d', 'exit d', 'enter e2', 'exit e2']);
  });

  it("barriers are per project: one project's waiting barriers do not hold back another's", async () => {
    const ids = { a1: uid('a1'), b1: uid('b1'), a2: uid('a2'), b2: uid('b2') };
    for (const [label, id] of Object.entries(ids)) gates.hold(id, label);
    await sendEvent(ids.a1, 'pa');
    await sendEvent(ids.b1, 'pb');
    await sendDecision(ids.a2, 'pa');
    await sendEvent(ids.b2, 'pb');
    await holding(4);
    await waitFor(() => gates.running === 2, 'a1 and b1 running');
    await turns();
    expect(gates.log).toEqual(['enter a1', 'enter b1']); // a2 waits for a1, b2 for b1
    gates.open('b1');
    await waitFor(() => gates.entered('b2'), 'b2 started');
    await turns();
    expect(gates.log).toEqual(['enter a1', 'enter b1', 'exit b1', 'enter b2']); // a1 still running, a2 waits
    gates.open('b2', 'a1');
    await waitFor(() => gates.entered('a2'), 'a2 started');
    gates.open('a2');
    await holding(0);
    const log = gates.log;
    expect(log.indexOf('exit a1')).toBeLessThan(log.indexOf('enter a2'));
    expect(log.filter((l) => l.startsWith('exit'))).toHaveLength(4);
  });

  it('holds at most inboundConcurrency messages: the others stay in the stream until a slot frees', async () => {
    const small = randomNatsScope();
    const smallBus = new NatsEventBus({
      connection: nc,
      subjectPrefix: small.subjectPrefix,
      streamPrefix: small.streamPrefix,
      inboundConcurrency: 3,
    });
    const recorded = new RecordingHandlers();
    const window = new Gates();
    recorded.behaviour = window.behaviour;
    let smallSub: InboundSubscription | undefined;
    const state = (ackPending: number, pending: number) =>
      waitFor(async () => {
        const info = await jsm.consumers.info(smallBus.streams.inbound, 'orchestrator');
        return info.num_ack_pending === ackPending && info.num_pending === pending;
      }, `${ackPending} unacknowledged, ${pending} in the stream`);
    try {
      await smallBus.ensureStreams();
      const ids = Array.from({ length: 7 }, (_, i) => uid(`w${i}`));
      ids.forEach((id, i) => window.hold(id, `w${i}`));
      for (const id of ids) {
        await js.publish(`${small.subjectPrefix}.results.p1`, JSON.stringify({ taskId: id, status: 'completed', fencingToken: 1 }));
      }
      smallSub = await smallBus.consume(recorded);
      await waitFor(() => window.running === 3, 'three running');
      await state(3, 4);
      expect(recorded.calls).toHaveLength(3);

      window.open('w0');
      await waitFor(() => recorded.calls.length === 4, 'a fourth taken once a slot freed');
      await state(3, 3);
      expect(window.running).toBe(3);

      window.open('w1', 'w2', 'w3');
      await waitFor(() => recorded.calls.length === 7, 'the last three taken');
      await state(3, 0);
      window.openAll();
      await state(0, 0);
      expect(recorded.done).toHaveLength(7);
      expect(window.maxRunning).toBe(3);
    } finally {
      await atMost(smallSub?.close(), 10_000);
      await deleteStreams(nc, small.streamPrefix);
    }
  });

  it('holds at most inboundMaxBytes of big messages: a backlog of them is not taken a window at a time (issue 16, memory on big messages)', async () => {
    const big = randomNatsScope();
    const SIZE = 100 * 1024;
    const BUDGET = 1024 * 1024;
    const bigBus = new NatsEventBus({
      connection: nc,
      subjectPrefix: big.subjectPrefix,
      streamPrefix: big.streamPrefix,
      maxPayloadBytes: 512 * 1024,
      inboundMaxBytes: BUDGET,
    });
    const recorded = new RecordingHandlers();
    const window = new Gates();
    recorded.behaviour = window.behaviour;
    let bigSub: InboundSubscription | undefined;
    const COUNT = 40;
    /** The most messages the server has had delivered and unacknowledged at once, over the checks. */
    let mostHeld = 0;
    const held = async () => {
      const info = await jsm.consumers.info(bigBus.streams.inbound, 'orchestrator');
      mostHeld = Math.max(mostHeld, info.num_ack_pending);
      return info;
    };
    try {
      await bigBus.ensureStreams();
      const ids = Array.from({ length: COUNT }, (_, i) => uid(`big${i}`));
      ids.forEach((id, i) => window.hold(id, `big${i}`));
      const pad = 'x'.repeat(SIZE - 100);
      for (const id of ids) {
        const body = JSON.stringify({ taskId: id, status: 'completed', fencingToken: 1, output: { pad } });
        await js.publish(`${big.subjectPrefix}.results.p1`, body);
      }
      // A backlog of 40 results of 100 KB (4 MB) and a window of 256 messages but 1 MiB:
      // the consumer takes what fits in 1 MiB and leaves the rest in the stream.
      bigSub = await bigBus.consume(recorded);
      await waitFor(async () => window.running >= 1 && (await held()).num_ack_pending >= 1, 'the first taken');
      await waitFor(async () => (await held()).num_ack_pending === window.running && window.running >= Math.floor(BUDGET / SIZE) - 2, 'the window filled');
      await nc.flush();
      const info = await held();
      expect(info.num_ack_pending * SIZE).toBeLessThanOrEqual(BUDGET);
      expect(mostHeld * SIZE).toBeLessThanOrEqual(BUDGET);
      expect(info.num_pending).toBeGreaterThan(0);
      expect(recorded.calls.length * SIZE).toBeLessThanOrEqual(BUDGET);

      window.openAll();
      await waitFor(() => recorded.done.length === COUNT, 'every one handled in the end');
      expect(mostHeld * SIZE).toBeLessThanOrEqual(BUDGET);
    } finally {
      window.openAll();
      await atMost(bigSub?.close(), 10_000);
      await deleteStreams(nc, big.streamPrefix);
    }
  });

  it('rejects an inboundConcurrency that is not a positive integer', () => {
    expect(() => new NatsEventBus({ connection: nc, subjectPrefix: P, inboundConcurrency: 0 })).toThrow(ValidationError);
    expect(() => new NatsEventBus({ connection: nc, subjectPrefix: P, inboundConcurrency: 2.5 })).toThrow(ValidationError);
  });
});

describe('NatsEventBus dispatch and outbound', () => {
  function dispatch(overrides: Partial<TaskDispatch> = {}): TaskDispatch {
    return {
      taskId: uid('task'),
      projectId: 'p1',
      taskType: 'GENERATE_IMAGE',
      input: { prompt: 'a cat' },
      attempt: 1,
      deadline: new Date(Date.now() + 60_000).toISOString(),
      fencingToken: 7,
      ...overrides,
    };
  }

  it('reaches a core subscriber and an agent worker started after the dispatch (once per attempt)', async () => {
    const { messages: seen, sub: seenSub } = collect<TaskDispatch>(agent, `${P}.tasks.painter`);
    await agent.flush();
    const task = dispatch();
    await bus.dispatchTask('painter', task);
    await bus.dispatchTask('painter', task); // same taskId:fencingToken → dropped by the stream
    await waitFor(() => seen.length >= 1, 'core subscriber');
    expect(seen[0]!.body).toEqual(task);
    seenSub.unsubscribe();
    const received: TaskDispatch[] = [];
    const worker = await createAgentWorker({
      connection: agent,
      agent: 'painter',
      subjectPrefix: P,
      streamPrefix: scope.streamPrefix,
      handle: async (t) => {
        received.push(t);
        return { output: { image: 'cat.png' }, actualCost: 0.5 };
      },
    });
    try {
      const results = () => handlers.doneFor(task.taskId).filter((c) => c.kind === 'result');
      await waitFor(() => results().length === 1, 'result handled');
      await marker();
      expect(received).toEqual([task]);
      expect(results()).toHaveLength(1);
      expect(results()[0]).toEqual({
        kind: 'result',
        projectId: 'p1',
        body: { taskId: task.taskId, status: 'completed', fencingToken: 7, output: { image: 'cat.png' }, actualCost: 0.5 },
      });
    } finally {
      await worker.stop();
    }
  });

  it('publishes outbound messages on their subjects', async () => {
    const { messages: out, sub: outSub } = collect(agent, `${P}.>`);
    await agent.flush();
    const at = new Date().toISOString();
    await bus.publish({ kind: 'status', body: { taskId: 't1', projectId: 'p1', taskType: 'X', from: 'READY', to: 'RUNNING', at, attempt: 1 } });
    await bus.publish({ kind: 'project', body: { projectId: 'p1', state: 'paused', reason: 'budget' } });
    await bus.publish({ kind: 'approval_expired', body: { approvalId: 'a1', projectId: 'p1', checkpoint: 'C', policy: 'reject', at } });
    await bus.publish({ kind: 'dlq', body: { subject: 'elsewhere', reason: 'test', data: '{}' } });
    await waitFor(() => out.length >= 4, 'four messages');
    expect(out.map((m) => m.subject)).toEqual([`${P}.status.p1.t1`, `${P}.projects.p1`, `${P}.approvals.expired.p1`, `${P}.dlq`]);
    expect(out[1]!.body).toEqual({ projectId: 'p1', state: 'paused', reason: 'budget' });
    outSub.unsubscribe();
  });
});

describe('NatsEventBus control', () => {
  async function request(projectId: string, data: string): Promise<unknown> {
    const reply = await agent.request(`${P}.control.${projectId}`, data, { timeout: 10_000 });
    return reply.json();
  }

  it('answers with the handler result or its error, and rejects bad requests', async () => {
    const seen: unknown[] = [];
    handlers.control = async (projectId, req) => {
      seen.push([projectId, req]);
      if (projectId === 'missing') throw new ProjectNotFoundError(projectId);
      return { state: 'active', limit: req.action === 'set_budget' ? req.limit : null };
    };
    expect(await request('p1', JSON.stringify({ action: 'set_budget', limit: 12.5 }))).toEqual({ ok: true, result: { state: 'active', limit: 12.5 } });
    expect(await request('missing', JSON.stringify({ action: 'status' }))).toEqual({
      ok: false,
      error: { code: 'ERR_PROJECT_NOT_FOUND', message: 'project missing does not exist' },
    });
    expect(await request('p1', 'pause please')).toMatchObject({ ok: false, error: { code: 'ERR_VALIDATION', message: expect.stringMatching(/^not JSON/) } });
    expect(await request('p1', JSON.stringify({ action: 'explode' }))).toMatchObject({ ok: false, error: { code: 'ERR_VALIDATION' } });
    expect(seen).toEqual([['p1', { action: 'set_budget', limit: 12.5 }], ['missing', { action: 'status' }]]);
  });
});

describe('NatsEventBus close()', () => {
  it('waits for every handler in flight; the barriers waiting for their turn go back to the stream, in order', async () => {
    await holding(0);
    const gates = new Gates();
    handlers.behaviour = gates.behaviour;
    const ids = { r1: uid('r1'), e1: uid('e1'), r2: uid('r2'), e2: uid('e2'), d3: uid('d3'), r3: uid('r3') };
    for (const [label, id] of Object.entries(ids)) gates.hold(id, label);
    await sendResult(ids.r1);
    await sendEvent(ids.e1);
    await sendResult(ids.r2);
    await sendEvent(ids.e2);
    await sendDecision(ids.d3);
    await sendResult(ids.r3);
    await holding(6);
    await waitFor(() => gates.running === 4, 'r1, e1, r2, r3 running');
    const closed = sub.close().then(() => gates.log.push('closed'));
    await turns();
    gates.open('r2', 'r3');
    await waitFor(() => gates.exited('r2') && gates.exited('r3'), 'r2, r3 done');
    gates.open('e1');
    await waitFor(() => gates.exited('e1'), 'e1 done');
    await turns();
    expect(gates.log).toEqual(['enter r1', 'enter e1', 'enter r2', 'enter r3', 'exit r2', 'exit r3', 'exit e1']); // e2, d3 not started
    gates.open('r1');
    await closed;
    expect(gates.log.slice(7)).toEqual(['exit r1', 'closed']);
    expect(handlers.callsFor(ids.e2)).toHaveLength(0);
    expect(handlers.callsFor(ids.d3)).toHaveLength(0);
    // r1, e1, r2, r3 acknowledged; e2 and d3 nak'd (unacknowledged for the server until redelivered).
    await waitFor(async () => (await inboundConsumerInfo()).num_ack_pending === 2, 'the others acknowledged');

    // The next consumer gets them, in stream order, once each.
    handlers = new RecordingHandlers();
    sub = await bus.consume(handlers);
    await waitFor(() => handlers.doneFor(ids.e2).length === 1 && handlers.doneFor(ids.d3).length === 1, 'handed-back messages handled');
    expect(handlers.calls.map(keyOf)).toEqual([ids.e2, ids.d3]);
    await holding(0);
  });

  it('stops taking messages and waits for the handler in flight, whose message is then acknowledged', async () => {
    const id = uid('inflight');
    const release = gate();
    const order: string[] = [];
    handlers.behaviour = async (call) => {
      if (call.kind === 'event' && call.body.id === id) {
        await release.promise;
        order.push('handler done');
      }
    };
    await send(`${P}.events.p1.SCRIPT_READY`, eventBody('p1', id));
    await waitFor(() => handlers.callsFor(id).length === 1, 'handler entered');
    const closed = sub.close().then(() => order.push('closed'));
    for (let i = 0; i < 20; i++) await new Promise((resolve) => setImmediate(resolve));
    expect(order).toEqual([]);
    release.open();
    await closed;
    expect(order).toEqual(['handler done', 'closed']);
    await waitFor(async () => (await inboundConsumerInfo()).num_ack_pending === 0, 'acknowledged');
    const later = uid('later');
    await send(`${P}.events.p1.SCRIPT_READY`, eventBody('p1', later));
    await waitFor(async () => (await inboundConsumerInfo()).num_pending >= 1, 'stored, not taken');
    expect(handlers.callsFor(later)).toHaveLength(0);
  });
});
