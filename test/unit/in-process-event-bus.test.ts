import { describe, expect, it } from 'vitest';
import { InProcessEventBus } from '../../src/adapters/memory/event-bus.js';
import type { DeadLetterMessage } from '../../src/domain/messages.js';
import { ServiceUnavailableError, ValidationError } from '../../src/errors.js';
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
    event: (id: string, projectId = 'p1') => bus.sendEvent({ id, type: 'SCRIPT_READY', projectId, payload: {}, occurredAt: new Date() }),
    decision: (approvalId: string, projectId = 'p1') => bus.sendDecision(projectId, { approvalId, decision: 'approved', by: 'alice' }),
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
  it('an event runs alongside the results before and after it: results neither wait for it nor hold it back', async () => {
    const { bus, gates, send } = await setup();
    const ids = { r1: uid('r1'), ev: uid('ev'), r2: uid('r2') };
    for (const [label, id] of Object.entries(ids)) gates.hold(id, label);
    void send.result(ids.r1);
    void send.event(ids.ev);
    void send.result(ids.r2);
    await turns();
    expect(gates.log).toEqual(['enter r1', 'enter ev', 'enter r2']);
    gates.open('ev');
    await waitFor(() => gates.exited('ev'), { what: 'event done' });
    gates.open('r2', 'r1');
    await bus.idle();
    expect(gates.log).toEqual(['enter r1', 'enter ev', 'enter r2', 'exit ev', 'exit r2', 'exit r1']);
  });

  it('barriers (events, decisions) run one at a time, in the order sent; the results after a waiting barrier go on', async () => {
    const { bus, gates, send } = await setup();
    const ids = { e1: uid('e1'), d: uid('dec'), r: uid('r'), e2: uid('e2'), h: uid('hb') };
    for (const [label, id] of Object.entries(ids)) gates.hold(id, label);
    void send.event(ids.e1);
    void send.decision(ids.d);
    void send.result(ids.r);
    void send.event(ids.e2);
    void send.heartbeat(ids.h);
    await turns();
    expect(gates.log).toEqual(['enter e1', 'enter r', 'enter h']); // d and e2 wait for e1
    gates.open('r', 'h');
    await waitFor(() => gates.exited('r') && gates.exited('h'), { what: 'r and h done' });
    await turns();
    expect(gates.log).toEqual(['enter e1', 'enter r', 'enter h', 'exit r', 'exit h']);
    gates.open('e1');
    await waitFor(() => gates.entered('d'), { what: 'decision started' });
    await turns();
    expect(gates.log.slice(5)).toEqual(['exit e1', 'enter d']); // e2 still waits
    gates.open('d');
    await waitFor(() => gates.entered('e2'), { what: 'e2 started' });
    gates.open('e2');
    await bus.idle();
    expect(gates.log.slice(5)).toEqual(['exit e1', 'enter d', 'exit d', 'enter e2', 'exit e2']);
  });

  it("barriers are per project: one project's waiting barriers do not hold back another's", async () => {
    const { bus, gates, send } = await setup();
    const ids = { a1: uid('a1'), b1: uid('b1'), a2: uid('a2'), b2: uid('b2') };
    for (const [label, id] of Object.entries(ids)) gates.hold(id, label);
    void send.event(ids.a1, 'pa');
    void send.event(ids.b1, 'pb');
    void send.decision(ids.a2, 'pa');
    void send.event(ids.b2, 'pb');
    await turns();
    expect(gates.log).toEqual(['enter a1', 'enter b1']); // a2 waits for a1, b2 for b1
    gates.open('b1');
    await waitFor(() => gates.entered('b2'), { what: 'b2 started' });
    await turns();
    expect(gates.log).toEqual(['enter a1', 'enter b1', 'exit b1', 'enter b2']); // a1 still running, a2 waits
    gates.open('b2', 'a1');
    await waitFor(() => gates.entered('a2'), { what: 'a2 started' });
    gates.open('a2');
    await bus.idle();
    const log = gates.log;
    expect(log.indexOf('exit a1')).toBeLessThan(log.indexOf('enter a2'));
    expect(log.filter((l) => l.startsWith('exit'))).toHaveLength(4);
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
    expect(handlers.done.map(keyOf)).toEqual([e, b]);
    gates.open('a');
    await waitFor(() => idle.done, { what: 'idle' });
    expect(handlers.done.map(keyOf)).toEqual([e, b, a]);
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

  it('a retried event keeps its turn: the next event waits for its retries, a result does not', async () => {
    const { bus, handlers, send } = await setup({ retryDelay: { baseMs: 1, maxMs: 5 } });
    const [e, r, e2] = [uid('ev'), uid('r'), uid('ev2')];
    handlers.behaviour = (call) => {
      if (keyOf(call) === e && handlers.callsFor(e).length < 3) throw new ServiceUnavailableError('postgres', 'connection lost');
    };
    void send.event(e);
    void send.result(r);
    void send.event(e2);
    await bus.idle();
    expect(handlers.calls.map(keyOf)).toEqual([e, r, e, e, e2]);
  });
});
