import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { QUERY_LIMITS, type ApprovalDecided, type ControlRequest, type DeadLetterMessage, type Heartbeat, type TaskDispatch, type TaskResult } from '../../src/domain/messages.js';
import type { PipelineEventInput } from '../../src/domain/pipeline.js';
import { ProjectNotFoundError, ServiceUnavailableError, StaleFencingTokenError, ValidationError } from '../../src/errors.js';
import type { EventBus, InboundSubscription, Outbound } from '../../src/ports/event-bus.js';
import { Gates, turns } from '../helpers/gates.js';
import { RecordingHandlers, eventBody, keyOf, uid } from '../helpers/recording-handlers.js';
import { waitFor } from '../helpers/wait.js';

export type InboundKind = 'event' | 'result' | 'heartbeat' | 'decision';

export type ControlReply = { ok: true; result: unknown } | { ok: false; error: { code: string; message: string } };

/** What one adapter gives the contract for one test (its own bus, subjects and streams). */
export interface EventBusHarness {
  bus: EventBus;
  /**
   * Inbound messages as agents and services send them. Each resolves once the message is
   * sent (stored, where the bus stores), not once it is handled; messages sent one after
   * the other arrive in that order.
   */
  send: {
    event(event: PipelineEventInput): Promise<void>;
    result(projectId: string, result: TaskResult): Promise<void>;
    /** The batch form, `{"results":[…]}`. */
    results(projectId: string, results: TaskResult[]): Promise<void>;
    heartbeat(projectId: string, heartbeat: Heartbeat): Promise<void>;
    decision(projectId: string, decision: ApprovalDecided): Promise<void>;
    /** Any JSON value as the body of a `kind` message of `projectId`, unchecked by the sender. */
    body(kind: InboundKind, projectId: string, body: unknown): Promise<void>;
    /** Raw bytes as the body: only buses that parse bytes (see `parsesBytes`). */
    text?(kind: InboundKind, projectId: string, text: string): Promise<void>;
  };
  /** A control request, as the request-reply subject answers it. */
  control(projectId: string, request: ControlRequest): Promise<ControlReply>;
  /** A query of `kind` (`<prefix>.query.<kind>`) with any JSON body, as the request-reply subject answers it. */
  query(kind: string, body: unknown): Promise<ControlReply>;
  /** Inbound messages sent and not yet settled (acknowledged or dead-lettered). */
  unsettled(): Promise<number>;
  /** Dead letters, as subscribers of the dead-letter subject see them. */
  dlq: DeadLetterMessage[];
  /** The subject a dead letter names for a message of `rest` (`results.p1`, `tasks.painter`). */
  subject(rest: string): string;
  /** What subscribers of the outbound subjects received, by kind. */
  outbound: Outbound[];
  /** Starts an agent receiving the dispatches of `agent`; resolves with its stop. */
  agent(agent: string, onTask: (task: TaskDispatch) => void): Promise<() => Promise<void>>;
  close(): Promise<void>;
}

export interface EventBusContractOptions {
  /**
   * The harness was built with `maxDeliveries` 3 and a short retry delay (a few ms to a
   * few hundred): the contract counts deliveries.
   */
  maxDeliveries: 3;
  /** The bus reads bytes (and so dead-letters text that is not JSON): `send.text` exists. */
  parsesBytes: boolean;
}

export type EventBusFactory = () => Promise<EventBusHarness>;

const completed = (taskId: string): TaskResult => ({ taskId, status: 'completed', fencingToken: 1, output: { n: 1 } });
const event = (projectId: string, id: string, type = 'SCRIPT_READY'): PipelineEventInput =>
  eventBody(projectId, id, type) as unknown as PipelineEventInput;
const decision = (approvalId: string): ApprovalDecided => ({ approvalId, decision: 'approved', by: 'alice' });

/** The EventBus port's contract; every adapter runs it from its own *.test.ts file. */
export function eventBusContract(name: string, factory: EventBusFactory, options: EventBusContractOptions): void {
  describe(`EventBus contract: ${name}`, () => {
    let h: EventBusHarness;
    let handlers: RecordingHandlers;
    let gates: Gates;
    let sub: InboundSubscription;

    beforeEach(async () => {
      h = await factory();
      handlers = new RecordingHandlers();
      gates = new Gates();
      handlers.behaviour = gates.behaviour;
      sub = await h.bus.consume(handlers);
    });
    afterEach(async () => {
      gates.openAll();
      await sub.close();
      await h.close();
    });

    const lettersOf = (key: string) => h.dlq.filter((d) => d.data.includes(key));
    const settledAll = () => waitFor(async () => (await h.unsettled()) === 0, { what: 'every message settled' });
    /** A valid event of `projectId` that must be handled once the messages sent before it are. */
    async function marker(projectId = 'pm'): Promise<void> {
      const id = uid('marker');
      await h.send.event(event(projectId, id, 'MARKER'));
      await waitFor(() => handlers.doneFor(id).length === 1, { what: `marker ${id}` });
    }

    describe('handing over', () => {
      it('hands events, results, heartbeats and decisions to their handlers with parsed bodies', async () => {
        const [e, t, a] = [uid('ev'), uid('task'), uid('appr')];
        const occurredAt = '2026-11-27T10:00:00.000Z';
        await h.send.event({ id: e, type: 'SCRIPT_READY', projectId: 'p1', payload: { scenes: 3 }, occurredAt, extra: 'ignored' } as PipelineEventInput);
        await h.send.result('p1', { taskId: t, status: 'completed', fencingToken: 4, output: { url: 's3://x' }, actualCost: 1.25 });
        await h.send.heartbeat('p1', { taskId: t, fencingToken: 4 });
        await h.send.decision('p1', { approvalId: a, decision: 'rejected', by: 'alice', comment: 'redo', shots: [1, 2] });
        await waitFor(() => handlers.done.length === 4, { what: 'four calls' });
        const [ev] = handlers.doneFor(e);
        expect(ev).toEqual({ kind: 'event', body: { id: e, type: 'SCRIPT_READY', projectId: 'p1', payload: { scenes: 3 }, occurredAt: new Date(occurredAt) } });
        expect(handlers.doneFor(t)).toEqual([
          { kind: 'result', projectId: 'p1', body: { taskId: t, status: 'completed', fencingToken: 4, output: { url: 's3://x' }, actualCost: 1.25 } },
          { kind: 'heartbeat', projectId: 'p1', body: { taskId: t, fencingToken: 4 } },
        ]);
        expect(handlers.doneFor(a)).toEqual([
          { kind: 'decision', projectId: 'p1', body: { approvalId: a, decision: 'rejected', by: 'alice', comment: 'redo', shots: [1, 2] } },
        ]);
        await settledAll();
        expect(h.dlq).toEqual([]);
      });

      it('settles a message only once its handler resolved', async () => {
        const id = uid('slow');
        gates.hold(id, 'slow');
        await h.send.result('p1', completed(id));
        await waitFor(() => gates.entered('slow'), { what: 'handler entered' });
        await turns();
        expect(await h.unsettled()).toBe(1);
        gates.open('slow');
        await settledAll();
        expect(handlers.doneFor(id)).toHaveLength(1);
      });

      it('keeps what is sent while nobody consumes, and what a closing consumer had not started, for the next consumer', async () => {
        const [e1, e2] = [uid('e1'), uid('e2')];
        gates.hold(e1, 'e1');
        await h.send.event(event('p1', e1));
        await h.send.event(event('p1', e2)); // waits for e1, its project's barrier
        await waitFor(() => gates.entered('e1'), { what: 'e1 running' });
        const closed = sub.close().then(() => gates.log.push('closed'));
        await turns();
        expect(gates.log).toEqual(['enter e1']); // close() waits for the running handler
        gates.open('e1');
        await closed;
        expect(gates.log).toEqual(['enter e1', 'exit e1', 'closed']);
        const offline = uid('offline');
        await h.send.result('p1', completed(offline));
        await turns();
        expect(handlers.callsFor(e2)).toHaveLength(0);
        expect(handlers.callsFor(offline)).toHaveLength(0);

        handlers = new RecordingHandlers();
        sub = await h.bus.consume(handlers);
        await waitFor(() => handlers.doneFor(e2).length === 1 && handlers.doneFor(offline).length === 1, { what: 'kept messages handled' });
        await settledAll();
        expect(handlers.callsFor(e1)).toHaveLength(0);
        expect(h.dlq).toEqual([]);
      });
    });

    describe('control', () => {
      it("answers a control request with the handler's result or error; a request that breaks the schema never reaches it", async () => {
        const seen: unknown[] = [];
        handlers.control = async (projectId, request) => {
          seen.push([projectId, request]);
          if (request.action === 'cancel') throw new Error('boom');
          if (request.action === 'resume') return undefined;
          return { limit: request.action === 'set_budget' ? request.limit : null };
        };
        expect(await h.control('pa', { action: 'set_budget', limit: 12.5, extra: true } as ControlRequest)).toEqual({ ok: true, result: { limit: 12.5 } });
        expect(await h.control('pa', { action: 'resume' })).toEqual({ ok: true, result: null });
        expect(await h.control('pa', { action: 'cancel' })).toEqual({ ok: false, error: { code: 'ERR_INTERNAL', message: 'boom' } });
        expect(await h.control('pa', { action: 'explode' } as unknown as ControlRequest)).toEqual({
          ok: false,
          error: { code: 'ERR_VALIDATION', message: expect.stringMatching(/^schema violation: /) },
        });
        expect(seen).toEqual([
          ['pa', { action: 'set_budget', limit: 12.5 }],
          ['pa', { action: 'resume' }],
          ['pa', { action: 'cancel' }],
        ]);
      });

      it("answers a query with the handler's page or error, the limits defaulted; an unknown kind or a body that breaks the schema never reaches it", async () => {
        const seen: unknown[] = [];
        handlers.query = async (request) => {
          seen.push(request);
          if (request.query === 'tasks' && request.projectId === 'missing') throw new ProjectNotFoundError('missing');
          return { items: [request.query], next: null };
        };
        expect(await h.query('projects', { states: ['active'], extra: 1 })).toEqual({ ok: true, result: { items: ['projects'], next: null } });
        expect(await h.query('tasks', { projectId: 'pa', after: 't1', limit: 2 })).toEqual({ ok: true, result: { items: ['tasks'], next: null } });
        expect(await h.query('dead_letters', {})).toEqual({ ok: true, result: { items: ['dead_letters'], next: null } });
        expect(await h.query('tasks', { projectId: 'missing' })).toEqual({ ok: false, error: { code: 'ERR_PROJECT_NOT_FOUND', message: 'project missing does not exist' } });
        for (const [kind, body] of [
          ['bogus', {}],
          ['projects', { limit: 0 }],
          ['projects', { limit: QUERY_LIMITS.projects.max + 1 }],
          ['projects', { states: ['sleeping'] }],
          ['tasks', {}],
          ['tasks', { projectId: 'has.dot' }],
          ['dead_letters', { after: -1 }],
          ['projects', [1]],
          ['projects', 'text'],
        ] as const) {
          expect(await h.query(kind, body), `${kind} ${JSON.stringify(body)}`).toEqual({ ok: false, error: { code: 'ERR_VALIDATION', message: expect.any(String) } });
        }
        expect(seen).toEqual([
          { query: 'projects', states: ['active'], limit: QUERY_LIMITS.projects.default },
          { query: 'tasks', projectId: 'pa', after: 't1', limit: 2 },
          { query: 'dead_letters', limit: QUERY_LIMITS.dead_letters.default },
          { query: 'tasks', projectId: 'missing', limit: QUERY_LIMITS.tasks.default },
        ]);
        // Handlers that answer no queries: a typed refusal, not a silence.
        delete handlers.query;
        expect(await h.query('projects', {})).toEqual({ ok: false, error: { code: 'ERR_VALIDATION', message: 'this orchestrator answers no queries' } });
      });
    });

    describe('order per project', () => {
      it("handles a project's events and decisions one at a time, in the order sent", async () => {
        const ids = { e1: uid('e1'), d1: uid('d1'), e2: uid('e2') };
        for (const [label, id] of Object.entries(ids)) gates.hold(id, label);
        await h.send.event(event('pa', ids.e1));
        await h.send.decision('pa', decision(ids.d1));
        await h.send.event(event('pa', ids.e2));
        await waitFor(() => gates.entered('e1'), { what: 'e1 started' });
        await turns();
        expect(gates.log).toEqual(['enter e1']);
        gates.open('e1');
        await waitFor(() => gates.entered('d1'), { what: 'd1 started' });
        await turns();
        expect(gates.log).toEqual(['enter e1', 'exit e1', 'enter d1']);
        gates.open('d1');
        await waitFor(() => gates.entered('e2'), { what: 'e2 started' });
        gates.open('e2');
        await settledAll();
        expect(gates.log).toEqual(['enter e1', 'exit e1', 'enter d1', 'exit d1', 'enter e2', 'exit e2']);
      });

      it("does not hold other projects' events back behind a slow one", async () => {
        const ids = { a1: uid('a1'), a2: uid('a2'), b1: uid('b1'), b2: uid('b2'), c1: uid('c1') };
        gates.hold(ids.a1, 'a1');
        await h.send.event(event('pa', ids.a1));
        await h.send.decision('pa', decision(ids.a2));
        await h.send.event(event('pb', ids.b1));
        await h.send.decision('pb', decision(ids.b2));
        await h.send.event(event('pc', ids.c1));
        await waitFor(() => [ids.b1, ids.b2, ids.c1].every((id) => handlers.doneFor(id).length === 1), { what: 'pb and pc handled' });
        expect(handlers.calls.map(keyOf).filter((k) => k === ids.a1 || k === ids.a2)).toEqual([ids.a1]); // a2 waits for a1
        expect(handlers.done.map(keyOf).indexOf(ids.b1)).toBeLessThan(handlers.done.map(keyOf).indexOf(ids.b2));
        gates.open('a1');
        await waitFor(() => handlers.doneFor(ids.a2).length === 1, { what: 'a2 handled after a1' });
        await settledAll();
        expect(handlers.done.map(keyOf).indexOf(ids.a1)).toBeLessThan(handlers.done.map(keyOf).indexOf(ids.a2));
      });

      it('holds no result, heartbeat or control request behind a slow event of their project', async () => {
        const [e, r, hb] = [uid('ev'), uid('r'), uid('hb')];
        gates.hold(e, 'e');
        handlers.control = async (projectId, request) => {
          if (projectId === 'missing') throw new ProjectNotFoundError(projectId);
          return { state: 'active', action: request.action };
        };
        await h.send.event(event('pa', e));
        await waitFor(() => gates.entered('e'), { what: 'event running' });
        await h.send.result('pa', completed(r));
        await h.send.heartbeat('pa', { taskId: hb, fencingToken: 1 });
        expect(await h.control('pa', { action: 'status' })).toEqual({ ok: true, result: { state: 'active', action: 'status' } });
        expect(await h.control('missing', { action: 'status' })).toEqual({
          ok: false,
          error: { code: 'ERR_PROJECT_NOT_FOUND', message: 'project missing does not exist' },
        });
        await waitFor(() => handlers.doneFor(r).length === 1 && handlers.doneFor(hb).length === 1, { what: 'result and heartbeat handled' });
        expect(await h.unsettled()).toBe(1);
        expect(gates.log).toEqual(['enter e']);
        gates.open('e');
        await settledAll();
      });

      it('handles results and heartbeats side by side: a held one holds back no other', async () => {
        const [a, b, c] = [uid('ra'), uid('rb'), uid('hc')];
        gates.hold(a, 'a');
        await h.send.result('p1', completed(a));
        await h.send.result('p1', completed(b));
        await h.send.heartbeat('p1', { taskId: c, fencingToken: 1 });
        await waitFor(() => handlers.doneFor(b).length === 1 && handlers.doneFor(c).length === 1, { what: 'b and c handled' });
        await waitFor(async () => (await h.unsettled()) === 1, { what: 'only a unsettled' });
        expect(gates.log).toEqual(['enter a']);
        gates.open('a');
        await settledAll();
        expect(gates.log).toEqual(['enter a', 'exit a']);
      });
    });

    describe('retries', () => {
      /** The first call of `key` fails retryably; later calls are held by the gate `label`. */
      function failOnceThenHold(key: string, label: string): void {
        gates.hold(key, label);
        handlers.behaviour = (call) => {
          if (keyOf(call) === key && handlers.callsFor(key).length === 1) throw new ServiceUnavailableError('postgres', 'connection lost');
          return gates.behaviour(call);
        };
      }

      it('hands a result whose handler failed retryably over again, until it succeeds; nothing waits for it', async () => {
        const [flaky, other, e] = [uid('flaky'), uid('other'), uid('ev')];
        failOnceThenHold(flaky, 'flaky');
        await h.send.result('pa', completed(flaky));
        await waitFor(() => gates.entered('flaky'), { what: 'second delivery running' });
        await h.send.result('pa', completed(other));
        await h.send.event(event('pa', e));
        await waitFor(() => handlers.doneFor(other).length === 1 && handlers.doneFor(e).length === 1, { what: 'the others handled meanwhile' });
        gates.open('flaky');
        await settledAll();
        expect(handlers.callsFor(flaky)).toHaveLength(2);
        expect(handlers.doneFor(flaky)).toHaveLength(1);
        expect(h.dlq).toEqual([]);
      });

      it("retries an event in its turn: its project's next event waits for it, nothing else does", async () => {
        const ids = { e1: uid('e1'), e2: uid('e2'), b1: uid('b1'), r: uid('r') };
        failOnceThenHold(ids.e1, 'e1');
        await h.send.event(event('pa', ids.e1));
        await h.send.event(event('pa', ids.e2));
        await h.send.event(event('pb', ids.b1));
        await h.send.result('pa', completed(ids.r));
        await waitFor(() => gates.entered('e1'), { what: 'e1 retried' });
        await waitFor(() => handlers.doneFor(ids.b1).length === 1 && handlers.doneFor(ids.r).length === 1, { what: 'the others handled meanwhile' });
        await turns();
        expect(handlers.callsFor(ids.e2)).toHaveLength(0);
        gates.open('e1');
        await waitFor(() => handlers.doneFor(ids.e2).length === 1, { what: 'e2 handled' });
        await settledAll();
        const keys = handlers.calls.map(keyOf).filter((k) => k === ids.e1 || k === ids.e2);
        expect(keys).toEqual([ids.e1, ids.e1, ids.e2]);
        expect(h.dlq).toEqual([]);
      });

      it('keeps an event being retried when the consumer closes, in its turn, for the next consumer', async () => {
        const [e1, e2] = [uid('e1'), uid('e2')];
        handlers.behaviour = (call) => {
          if (keyOf(call) !== e1) return;
          void sub.close(); // the consumer closes while the first delivery fails
          throw new ServiceUnavailableError('postgres', 'connection lost');
        };
        await h.send.event(event('pa', e1));
        await h.send.event(event('pa', e2));
        await waitFor(() => handlers.callsFor(e1).length === 1, { what: 'first delivery' });
        await sub.close();
        expect(handlers.calls.map(keyOf)).toEqual([e1]);

        handlers = new RecordingHandlers();
        sub = await h.bus.consume(handlers);
        await waitFor(() => handlers.doneFor(e2).length === 1, { what: 'both handled by the next consumer' });
        await settledAll();
        expect(handlers.done.map(keyOf)).toEqual([e1, e2]);
        expect(h.dlq).toEqual([]);
      });

      it('dead-letters a message still failing after maxDeliveries, with the reason; an unexpected error counts as retryable', async () => {
        const [doomed, down, after] = [uid('doomed'), uid('down'), uid('after')];
        handlers.behaviour = (call) => {
          if (keyOf(call) === doomed) throw new Error('database is down');
          if (keyOf(call) === down) throw new ServiceUnavailableError('postgres', 'connection lost');
        };
        await h.send.result('pa', completed(doomed));
        await h.send.event(event('pa', down));
        await h.send.event(event('pa', after));
        await waitFor(() => lettersOf(doomed).length === 1 && lettersOf(down).length === 1, { what: 'two dead letters' });
        expect(handlers.callsFor(doomed)).toHaveLength(options.maxDeliveries);
        expect(handlers.callsFor(down)).toHaveLength(options.maxDeliveries);
        expect(lettersOf(doomed)[0]).toMatchObject({ subject: h.subject('results.pa'), reason: `gave up after ${options.maxDeliveries} deliveries: database is down` });
        expect(lettersOf(down)[0]!.reason).toBe(`gave up after ${options.maxDeliveries} deliveries: ERR_SERVICE_UNAVAILABLE: connection lost`);
        await waitFor(() => handlers.doneFor(after).length === 1, { what: 'the next event handled' });
        await settledAll();
        expect(lettersOf(doomed)).toHaveLength(1);
      });
    });

    describe('dead letters', () => {
      it('dead-letters a message its handler refused (non-retryable), once, with the reason; it is not retried and later messages flow', async () => {
        const [stale, badEvent, next, nextEvent] = [uid('stale'), uid('bad'), uid('next'), uid('nextev')];
        handlers.behaviour = (call) => {
          if (keyOf(call) === stale) throw new StaleFencingTokenError(stale, 1, 2);
          if (keyOf(call) === badEvent) throw new ValidationError('invalid event', ['shots: expected an array']);
        };
        const refused: TaskResult = { taskId: stale, status: 'failed', fencingToken: 1, error: 'late' };
        await h.send.result('pa', refused);
        await h.send.event(event('pa', badEvent));
        await h.send.result('pa', completed(next));
        await h.send.event(event('pa', nextEvent));
        await waitFor(() => handlers.doneFor(next).length === 1 && handlers.doneFor(nextEvent).length === 1, { what: 'later messages handled' });
        await settledAll();
        expect(handlers.callsFor(stale)).toHaveLength(1);
        expect(handlers.callsFor(badEvent)).toHaveLength(1);
        expect(lettersOf(stale)).toHaveLength(1);
        const letter = lettersOf(stale)[0]!;
        expect(letter.subject).toBe(h.subject('results.pa'));
        expect(letter.reason).toBe(`ERR_STALE_FENCING_TOKEN: task ${stale}: fencing token 1 is older than the current token 2`);
        expect(JSON.parse(letter.data)).toEqual(refused);
        expect(lettersOf(badEvent)).toEqual([
          expect.objectContaining({ subject: h.subject('events.pa.SCRIPT_READY'), reason: 'ERR_VALIDATION: invalid event: shots: expected an array' }),
        ]);
        expect(h.dlq).toHaveLength(2);
      });

      it('dead-letters a body that breaks its schema, or names another project, before any handler sees it', async () => {
        const [t, a, e] = [uid('t'), uid('a'), uid('e')];
        await h.send.body('result', 'pa', { taskId: t, status: 'done' });
        await h.send.body('decision', 'pa', { approvalId: a, decision: 'maybe', by: 'bob' });
        await h.send.body('heartbeat', 'pa', { taskId: t, fencingToken: 1, projectId: 'pz' });
        await h.send.body('event', 'pa', { id: e, type: 'SCRIPT_READY', projectId: 'pa', occurredAt: 'x' });
        await marker('pa');
        await settledAll();
        expect(h.dlq.map((d) => [d.subject, d.reason])).toEqual([
          [h.subject('results.pa'), expect.stringMatching(/^schema violation: .*fencingToken/)],
          [h.subject('approvals.decided.pa'), expect.stringMatching(/^schema violation: decision: /)],
          [h.subject('heartbeats.pa'), expect.stringMatching(/^subject\/body mismatch: .*pa.*pz/)],
          [h.subject('events.pa.SCRIPT_READY'), expect.stringMatching(/^schema violation: .*occurredAt/)],
        ]);
        expect(JSON.parse(h.dlq[0]!.data)).toEqual({ taskId: t, status: 'done' });
        expect(handlers.callsFor(t)).toHaveLength(0);
        expect(handlers.callsFor(a)).toHaveLength(0);
        expect(handlers.callsFor(e)).toHaveLength(0);
      });

      if (options.parsesBytes) {
        it('dead-letters text that is not JSON, and goes on', async () => {
          const text = `{"taskId": "${uid('nj')}", oops`;
          await h.send.text!('result', 'pa', text);
          await marker('pa');
          await settledAll();
          expect(h.dlq).toEqual([{ subject: h.subject('results.pa'), reason: expect.stringMatching(/^not JSON: /), data: text }]);
        });
      }
    });

    describe('a results batch', () => {
      it('hands every entry over as if alone, and settles the batch once every entry is durable', async () => {
        const ids = [uid('b1'), uid('b2'), uid('b3')];
        gates.hold(ids[2]!, 'b3');
        await h.send.results('pa', ids.map(completed));
        await waitFor(() => ids.every((id) => handlers.callsFor(id).length === 1), { what: 'every entry handed over' });
        await waitFor(() => handlers.doneFor(ids[0]!).length === 1 && handlers.doneFor(ids[1]!).length === 1, { what: 'two entries durable' });
        expect(handlers.doneFor(ids[0]!)).toEqual([{ kind: 'result', projectId: 'pa', body: completed(ids[0]!) }]);
        await turns();
        expect(await h.unsettled()).toBe(1);
        gates.open('b3');
        await settledAll();
        expect(h.dlq).toEqual([]);
      });

      it('dead-letters a refused entry alone; the others stay handled', async () => {
        const [good, stale] = [uid('good'), uid('stale')];
        handlers.behaviour = (call) => {
          if (keyOf(call) === stale) throw new StaleFencingTokenError(stale, 1, 2);
        };
        await h.send.results('pa', [completed(good), completed(stale)]);
        await waitFor(() => lettersOf(stale).length === 1, { what: 'dead letter' });
        await settledAll();
        expect(h.dlq).toEqual([{ subject: h.subject('results.pa'), reason: expect.stringMatching(/^ERR_STALE_FENCING_TOKEN: /), data: JSON.stringify(completed(stale)) }]);
        expect(handlers.doneFor(good)).toHaveLength(1);
        expect(handlers.callsFor(stale)).toHaveLength(1);
      });

      it('after a retryable failure, hands over again only the entries not yet durable or dead-lettered', async () => {
        const [done, flaky, refused] = [uid('done'), uid('flaky'), uid('refused')];
        handlers.behaviour = (call) => {
          if (keyOf(call) === flaky && handlers.callsFor(flaky).length === 1) throw new ServiceUnavailableError('postgres', 'connection lost');
          if (keyOf(call) === refused) throw new StaleFencingTokenError(refused, 1, 2);
        };
        await h.send.results('pa', [completed(done), completed(flaky), completed(refused)]);
        await waitFor(() => handlers.doneFor(flaky).length === 1, { what: 'flaky handled on the second delivery' });
        await settledAll();
        expect(handlers.callsFor(done)).toHaveLength(1);
        expect(handlers.callsFor(flaky)).toHaveLength(2);
        expect(handlers.callsFor(refused)).toHaveLength(1);
        expect(h.dlq.map((d) => [d.data, d.reason])).toEqual([[JSON.stringify(completed(refused)), expect.stringMatching(/^ERR_STALE_FENCING_TOKEN: /)]]);
      });

      it('dead-letters the entries still failing after maxDeliveries, with the reason', async () => {
        const [ok, doomed] = [uid('ok'), uid('doomed')];
        handlers.behaviour = (call) => {
          if (keyOf(call) === doomed) throw new Error('database is down');
        };
        await h.send.results('pa', [completed(ok), completed(doomed)]);
        await waitFor(() => lettersOf(doomed).length === 1, { what: 'dead letter' });
        await settledAll();
        expect(lettersOf(doomed)[0]!.reason).toBe(`gave up after ${options.maxDeliveries} deliveries: database is down`);
        expect(handlers.callsFor(doomed)).toHaveLength(options.maxDeliveries);
        expect(handlers.callsFor(ok)).toHaveLength(1);
        expect(h.dlq).toHaveLength(1);
      });
    });

    describe('outbound', () => {
      const dispatch = (agentTaskId: string): TaskDispatch => ({
        taskId: agentTaskId,
        projectId: 'pa',
        taskType: 'GENERATE_KEYFRAME',
        input: { prompt: 'a lighthouse' },
        attempt: 1,
        deadline: '2026-11-27T10:10:00.000Z',
        fencingToken: 7,
      });

      it("dispatchTask delivers the task to its agent, also to one that starts listening after the dispatch", async () => {
        const painter: TaskDispatch[] = [];
        const sculptor: TaskDispatch[] = [];
        const stops = [await h.agent('painter', (t) => painter.push(t))];
        try {
          const [first, early] = [dispatch(uid('tsk')), dispatch(uid('tsk'))];
          await h.bus.dispatchTask('painter', first);
          await h.bus.dispatchTask('sculptor', early);
          await waitFor(() => painter.length === 1, { what: 'painter received its task' });
          expect(painter).toEqual([first]);
          stops.push(await h.agent('sculptor', (t) => sculptor.push(t)));
          await waitFor(() => sculptor.length === 1, { what: 'sculptor received the task dispatched before it listened' });
          expect(sculptor).toEqual([early]);
          expect(painter).toEqual([first]);
        } finally {
          for (const stop of stops) await stop();
        }
      });

      it('dispatchTasks delivers each dispatch to its agent and resolves with null for each; an invalid agent name fails every one', async () => {
        const got: TaskDispatch[] = [];
        const stop = await h.agent('engraver', (t) => got.push(t));
        try {
          const tasks = [dispatch(uid('tsk')), dispatch(uid('tsk')), dispatch(uid('tsk'))];
          expect(h.bus.dispatchBatchSize('engraver')).toBe(1);
          expect(await h.bus.dispatchTasks('engraver', tasks.map((task) => ({ task })))).toStrictEqual([null, null, null]);
          await waitFor(() => got.length === 3, { what: 'engraver received the three tasks' });
          expect(new Set(got.map((t) => t.taskId))).toStrictEqual(new Set(tasks.map((t) => t.taskId)));
          const refused = await h.bus.dispatchTasks('no.dots', [{ task: dispatch(uid('tsk')) }, { task: dispatch(uid('tsk')) }]);
          expect(refused).toHaveLength(2);
          for (const err of refused) expect(err).toBeInstanceOf(ValidationError);
        } finally {
          await stop();
        }
      });

      it('refuses a dispatch to an agent name that is not a single subject token', async () => {
        await expect(h.bus.dispatchTask('no.dots', dispatch(uid('tsk')))).rejects.toBeInstanceOf(ValidationError);
        await expect(h.bus.dispatchTask('', dispatch(uid('tsk')))).rejects.toBeInstanceOf(ValidationError);
      });

      it('publish delivers status, budget, project and approval messages to subscribers', async () => {
        const at = '2026-11-27T10:00:00.000Z';
        const messages: Outbound[] = [
          { kind: 'status', body: { taskId: 't1', projectId: 'pa', taskType: 'WRITE_SCRIPT', from: 'READY', to: 'RUNNING', at, attempt: 1 } },
          {
            kind: 'budget',
            body: {
              projectId: 'pa', limit: 25, spent: 2.68, reserved: 0.1, remaining: 22.22, ratio: 0.111, level: 'ok',
              forecast: { remainingCost: 7.7, total: 10.48, exceedsBudget: false },
            },
          },
          { kind: 'project', body: { projectId: 'pa', state: 'paused', reason: 'budget_exhausted' } },
          { kind: 'approval_requested', body: { approvalId: 'apr_1', projectId: 'pa', checkpoint: 'SCENE_WRITTEN', summary: { script: 'S' }, counts: { tasks: 1 }, details: 'status', expiresAt: null } },
          { kind: 'approval_expired', body: { approvalId: 'apr_1', projectId: 'pa', checkpoint: 'SCENE_WRITTEN', policy: 'remind', at } },
        ];
        for (const m of messages) await h.bus.publish(m);
        const letter: DeadLetterMessage = { subject: h.subject('results.pa'), reason: 'ERR_VALIDATION: published', data: '{}' };
        await h.bus.publish({ kind: 'dlq', body: letter });
        await waitFor(() => h.outbound.length >= messages.length && h.dlq.length === 1, { what: 'every message received' });
        expect(h.outbound).toEqual(messages);
        expect(h.dlq).toEqual([letter]);
      });
    });
  });
}
