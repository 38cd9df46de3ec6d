import { describe, expect, it } from 'vitest';
import { InProcessEventBus } from '../../src/adapters/memory/event-bus.js';
import type { DeadLetterMessage } from '../../src/domain/messages.js';
import { ServiceUnavailableError, StaleFencingTokenError, ValidationError } from '../../src/errors.js';
import type { Outbound } from '../../src/ports/event-bus.js';
import { Gates, turns } from '../helpers/gates.js';
import { RecordingHandlers, keyOf, uid } from '../helpers/recording-handlers.js';
import { waitFor } from '../helpers/wait.js';

/** A bus consuming into RecordingHandlers whose calls a Gates holds; dead letters collected. */
async function setup(options: ConstructorParameters<typeof InProcessEventBus>[0] = {}) {
  const bus = new InProcessEventBus(options);
  const handlers = new RecordingHandlers();
  const gates = new Gates();
  handlers.behaviour = gates.behaviour;
  const dlq: DeadLetterMessage[] = [];
  bus.subscribe((m: Outbound) => {
    if (m.kind === 'dlq') dlq.push(m.body);
  });
  const sub = await bus.consume(handlers);
  const send = {
    result: (taskId: string) => bus.sendResult('p1', { taskId, status: 'completed', fencingToken: 1 }),
    heartbeat: (taskId: string) => bus.sendHeartbeat('p1', { taskId, fencingToken: 1 }),
    event: (id: string) => bus.sendEvent({ id, type: 'SCRIPT_READY', projectId: 'p1', payload: {}, occurredAt: new Date() }),
    decision: (approvalId: string) => bus.sendDecision('p1', { approvalId, decision: 'approved', by: 'alice' }),
  };
  return { bus, handlers, gates, dlq, sub, send };
}

/** Tracks whether a promise has settled. */
function tracked(promise: Promise<unknown>): { done: boolean } {
  const state = { done: false };
  void promise.then(() => (state.done = true));
  return state;
}

describe('InProcessEventBus inbound concurrency and order', () => {
  it('handles results and heartbeats concurrently: a held result does not stop the next ones', async () => {
    const { gates, handlers, send } = await setup();
    const [a, b, c] = [uid('ra'), uid('rb'), uid('hc')];
    gates.hold(a, 'A');
    const sentA = tracked(send.result(a));
    await send.result(b);
    await send.heartbeat(c);
    expect(handlers.doneFor(b)).toHaveLength(1);
    expect(handlers.doneFor(c)).toHaveLength(1);
    expect(gates.log).toEqual(['enter A']);
    expect(sentA.done).toBe(false);
    gates.open('A');
    await waitFor(() => sentA.done, { what: 'A handled' });
    expect(gates.log).toEqual(['enter A', 'exit A']);
  });

  it('an event waits for every message before it, and the messages after it wait for the event', async () => {
    const { bus, gates, send } = await setup();
    const ids = { r1: uid('r1'), r2: uid('r2'), ev: uid('ev'), r3: uid('r3'), r4: uid('r4') };
    for (const [label, id] of Object.entries(ids)) gates.hold(id, label);
    void send.result(ids.r1);
    void send.result(ids.r2);
    void send.event(ids.ev);
    void send.result(ids.r3);
    void send.result(ids.r4);
    const idle = tracked(bus.idle());
    await turns();
    expect(gates.log).toEqual(['enter r1', 'enter r2']);

    gates.open('r2');
    await waitFor(() => gates.exited('r2'), { what: 'r2 done' });
    await turns();
    expect(gates.log).toEqual(['enter r1', 'enter r2', 'exit r2']); // r1 still running: the event waits

    gates.open('r1');
    await waitFor(() => gates.entered('ev'), { what: 'event started' });
    await turns();
    expect(gates.log).toEqual(['enter r1', 'enter r2', 'exit r2', 'exit r1', 'enter ev']); // r3, r4 wait

    gates.open('ev');
    await waitFor(() => gates.entered('r3') && gates.entered('r4'), { what: 'r3 and r4 running together' });
    gates.open('r4');
    await waitFor(() => gates.exited('r4'), { what: 'r4 done' });
    expect(idle.done).toBe(false);
    gates.open('r3');
    await waitFor(() => idle.done, { what: 'idle' });
    expect(gates.log).toEqual([
      'enter r1', 'enter r2', 'exit r2', 'exit r1',
      'enter ev', 'exit ev',
      'enter r3', 'enter r4', 'exit r4', 'exit r3',
    ]);
  });

  it('a decision is a barrier too, and consecutive barriers run one at a time', async () => {
    const { bus, gates, send } = await setup();
    const ids = { a: uid('ra'), d: uid('dec'), e: uid('ev'), b: uid('rb') };
    for (const [label, id] of Object.entries(ids)) gates.hold(id, label);
    void send.result(ids.a);
    void send.decision(ids.d);
    void send.event(ids.e);
    void send.result(ids.b);
    await turns();
    expect(gates.log).toEqual(['enter a']);
    gates.open('a');
    await waitFor(() => gates.entered('d'), { what: 'decision started' });
    await turns();
    expect(gates.log).toEqual(['enter a', 'exit a', 'enter d']);
    gates.open('d');
    await waitFor(() => gates.entered('e'), { what: 'event started' });
    await turns();
    expect(gates.log).toEqual(['enter a', 'exit a', 'enter d', 'exit d', 'enter e']);
    gates.open('e', 'b');
    await bus.idle();
    expect(gates.log).toEqual(['enter a', 'exit a', 'enter d', 'exit d', 'enter e', 'exit e', 'enter b', 'exit b']);
  });

  it('runs at most inboundConcurrency handlers; the others start as slots free, in order', async () => {
    const { bus, gates, handlers, send } = await setup({ inboundConcurrency: 3 });
    const ids = Array.from({ length: 7 }, (_, i) => uid(`w${i}`));
    ids.forEach((id, i) => gates.hold(id, `w${i}`));
    for (const id of ids) void send.result(id);
    await turns();
    expect(handlers.calls.map(keyOf)).toEqual(ids.slice(0, 3));
    gates.open('w1');
    await waitFor(() => handlers.calls.length === 4, { what: 'a fourth started once a slot freed' });
    await turns();
    expect(handlers.calls.map(keyOf)).toEqual(ids.slice(0, 4));
    expect(gates.running).toBe(3);
    gates.openAll();
    await bus.idle();
    expect(handlers.calls.map(keyOf)).toEqual(ids);
    expect(handlers.done).toHaveLength(7);
    expect(gates.maxRunning).toBe(3);
  });

  it('idle() resolves once everything sent has been handled', async () => {
    const { bus, gates, handlers, send } = await setup();
    const [a, e, b] = [uid('ra'), uid('ev'), uid('rb')];
    gates.hold(a, 'a');
    void send.result(a);
    void send.event(e);
    void send.result(b);
    const idle = tracked(bus.idle());
    await turns();
    expect(idle.done).toBe(false);
    gates.open('a');
    await waitFor(() => idle.done, { what: 'idle' });
    expect(handlers.done.map(keyOf)).toEqual([a, e, b]);
    await bus.idle(); // and at once when nothing is pending
  });

  it('close() waits for the handlers in flight', async () => {
    const { gates, sub, send } = await setup();
    const [a, b] = [uid('ra'), uid('rb')];
    gates.hold(a, 'a');
    gates.hold(b, 'b');
    void send.result(a);
    void send.result(b);
    await turns();
    const closed = sub.close().then(() => gates.log.push('closed'));
    await turns();
    gates.open('b');
    await waitFor(() => gates.exited('b'), { what: 'b done' });
    await turns();
    expect(gates.log).toEqual(['enter a', 'enter b', 'exit b']);
    gates.open('a');
    await closed;
    expect(gates.log).toEqual(['enter a', 'enter b', 'exit b', 'exit a', 'closed']);
  });

  it('rejects an inboundConcurrency that is not a positive integer', () => {
    expect(() => new InProcessEventBus({ inboundConcurrency: 0 })).toThrow(ValidationError);
    expect(() => new InProcessEventBus({ inboundConcurrency: 1.5 })).toThrow(ValidationError);
  });
});

describe('InProcessEventBus handler failures', () => {
  it('retries a retryable error, then the message is handled', async () => {
    const { handlers, dlq, send } = await setup({ retryDelay: { baseMs: 1, maxMs: 5 } });
    const id = uid('flaky');
    handlers.behaviour = (call) => {
      if (keyOf(call) === id && handlers.callsFor(id).length < 3) throw new ServiceUnavailableError('postgres', 'connection lost');
    };
    await send.result(id);
    expect(handlers.callsFor(id)).toHaveLength(3);
    expect(handlers.doneFor(id)).toHaveLength(1);
    expect(dlq).toEqual([]);
  });

  it('dead-letters a message whose handler keeps failing retryably after maxDeliveries attempts', async () => {
    const { handlers, dlq, send } = await setup({ maxDeliveries: 4, retryDelay: { baseMs: 1, maxMs: 5 } });
    const id = uid('doomed');
    handlers.behaviour = (call) => {
      if (keyOf(call) === id) throw new ServiceUnavailableError('postgres', 'down');
    };
    await send.result(id);
    expect(handlers.callsFor(id)).toHaveLength(4);
    expect(dlq).toHaveLength(1);
    expect(dlq[0]!.subject).toBe('results');
    expect(dlq[0]!.reason).toMatch(/^gave up after 4 deliveries: ERR_SERVICE_UNAVAILABLE: /);
  });

  it('dead-letters a non-retryable error, and a plain error, at once', async () => {
    const { handlers, dlq, send } = await setup({ retryDelay: { baseMs: 1, maxMs: 5 } });
    const [stale, buggy] = [uid('stale'), uid('buggy')];
    handlers.behaviour = (call) => {
      if (keyOf(call) === stale) throw new StaleFencingTokenError(stale, 1, 2);
      if (keyOf(call) === buggy) throw new Error('boom');
    };
    await send.result(stale);
    await send.heartbeat(buggy);
    expect(handlers.callsFor(stale)).toHaveLength(1);
    expect(handlers.callsFor(buggy)).toHaveLength(1);
    expect(dlq.map((d) => [d.subject, d.reason])).toEqual([
      ['results', expect.stringMatching(/^ERR_STALE_FENCING_TOKEN: /)],
      ['heartbeats', 'boom'],
    ]);
  });

  it('a retried event keeps its place: the messages after it wait for its retries', async () => {
    const { bus, handlers, send } = await setup({ retryDelay: { baseMs: 1, maxMs: 5 } });
    const [e, r] = [uid('ev'), uid('r')];
    handlers.behaviour = (call) => {
      if (keyOf(call) === e && handlers.callsFor(e).length < 3) throw new ServiceUnavailableError('postgres', 'connection lost');
    };
    void send.event(e);
    void send.result(r);
    await bus.idle();
    expect(handlers.calls.map(keyOf)).toEqual([e, e, e, r]);
  });
});
