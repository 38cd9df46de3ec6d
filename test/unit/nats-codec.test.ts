import { describe, expect, it } from 'vitest';
import { buildConnectOptions, describeNatsServers } from '../../src/adapters/nats/connection.js';
import { readControlRequest } from '../../src/adapters/nats/control.js';
import { retryDelay } from '../../src/adapters/inbound-order.js';
import { decodeInbound } from '../../src/adapters/nats/inbound.js';
import { defaultStreamPrefix, streamNames } from '../../src/adapters/nats/streams.js';
import { natsSubjects, parseControlSubject, parseInboundSubject } from '../../src/adapters/nats/subjects.js';
import { ConfigError } from '../../src/errors.js';

const enc = (v: unknown) => new TextEncoder().encode(typeof v === 'string' ? v : JSON.stringify(v));
const event = (projectId: string, type = 'SCRIPT_READY') => ({ id: 'e1', type, projectId, payload: {}, occurredAt: '2025-01-01T00:00:00Z' });

describe('NATS subjects', () => {
  it('builds the contract subjects under a prefix', () => {
    const s = natsSubjects('lap');
    expect(s.status('p1', 't1')).toBe('lap.status.p1.t1');
    expect(s.approvalRequested('p1')).toBe('lap.approvals.requested.p1');
    expect(s.task('render')).toBe('lap.tasks.render');
    expect(s.inbound).toEqual(['lap.events.>', 'lap.results.>', 'lap.heartbeats.>', 'lap.approvals.decided.>']);
    expect(natsSubjects('a.b').dlq).toBe('a.b.dlq');
  });

  it('parses inbound subjects, joining dotted project ids', () => {
    expect(parseInboundSubject('lap', 'lap.events.p1.SCRIPT_READY')).toEqual({ kind: 'event', projectId: 'p1', eventType: 'SCRIPT_READY' });
    expect(parseInboundSubject('lap', 'lap.events.a.b.X')).toEqual({ kind: 'event', projectId: 'a.b', eventType: 'X' });
    expect(parseInboundSubject('a.b', 'a.b.results.p1')).toEqual({ kind: 'result', projectId: 'p1' });
    expect(parseInboundSubject('lap', 'lap.approvals.decided.p1')).toEqual({ kind: 'decision', projectId: 'p1' });
    expect(parseInboundSubject('lap', 'lap.events.p1')).toBeNull();
    expect(parseInboundSubject('lap', 'lap.approvals.requested.p1')).toBeNull();
    expect(parseInboundSubject('lap', 'other.results.p1')).toBeNull();
    expect(parseControlSubject('lap', 'lap.control.p.1')).toBe('p.1');
    expect(parseControlSubject('lap', 'lap.control')).toBeNull();
  });

  it('derives stream names', () => {
    expect(defaultStreamPrefix('lap')).toBe('LAP');
    expect(defaultStreamPrefix('a.b-c')).toBe('A_B-C');
    expect(streamNames('LAP')).toEqual({ inbound: 'LAP_INBOUND', tasks: 'LAP_TASKS', dlq: 'LAP_DLQ' });
    expect(() => streamNames('A.B')).toThrow(ConfigError);
  });
});

describe('decodeInbound', () => {
  it('accepts valid bodies of the four kinds', () => {
    const ev = decodeInbound('lap', 'lap.events.p1.SCRIPT_READY', enc(event('p1')), 1000);
    expect(ev.ok && ev.message.kind === 'event' && ev.message.body.occurredAt).toBeInstanceOf(Date);
    expect(decodeInbound('lap', 'lap.heartbeats.p1', enc({ taskId: 't', fencingToken: 0 }), 1000)).toEqual({
      ok: true,
      message: { kind: 'heartbeat', projectId: 'p1', body: { taskId: 't', fencingToken: 0 } },
    });
  });

  it('accepts the batch form of results, and rejects the whole message when one entry is invalid', () => {
    const ok = { taskId: 't1', status: 'completed', fencingToken: 3, output: { a: 1 } };
    const failed = { taskId: 't2', status: 'failed', fencingToken: 4, error: 'boom' };
    expect(decodeInbound('lap', 'lap.results.p1', enc({ results: [ok, failed] }), 1000)).toEqual({
      ok: true,
      message: { kind: 'results', projectId: 'p1', body: [ok, failed] },
    });
    const reason = (body: unknown) => {
      const d = decodeInbound('lap', 'lap.results.p1', enc(body), 1_000_000);
      return d.ok ? 'ok' : d.reason;
    };
    expect(reason({ results: [ok, { taskId: 't3', status: 'failed', fencingToken: 1 }] })).toBe('schema violation: results.1.error: a failed result needs error');
    expect(reason({ results: [] })).toMatch(/^schema violation: results: /);
    expect(reason({ results: Array.from({ length: 1001 }, () => ok) })).toMatch(/^schema violation: results: /);
    expect(reason({ results: [ok], projectId: 'p2' })).toMatch(/^subject\/body mismatch: subject names project p1/);
    // A single result with an extra `results` field stays a single result.
    const single = decodeInbound('lap', 'lap.results.p1', enc({ ...ok, results: [] }), 1000);
    expect(single.ok && single.message.kind).toBe('result');
  });

  it('rejects, in order: size, subject, JSON, mismatch, schema', () => {
    const reason = (subject: string, data: Uint8Array, max = 1000) => {
      const d = decodeInbound('lap', subject, data, max);
      return d.ok ? 'ok' : d.reason;
    };
    expect(reason('lap.results.p1', enc('x'.repeat(11)), 10)).toBe('payload of 11 bytes exceeds the limit of 10 bytes');
    expect(reason('lap.results.bad!id', enc({}))).toMatch(/does not name a valid project id/);
    expect(reason('lap.results.p1', enc('{nope'))).toMatch(/^not JSON: /);
    expect(reason('lap.results.p1', enc([1]))).toBe('schema violation: (root): expected a JSON object');
    expect(reason('lap.events.p1.SCRIPT_READY', enc(event('p2')))).toMatch(/^subject\/body mismatch: subject names project p1, body names "p2"$/);
    expect(reason('lap.events.p1.OTHER', enc(event('p1')))).toMatch(/^subject\/body mismatch: .*event type OTHER/);
    expect(reason('lap.results.p1', enc({ taskId: 't', status: 'failed', fencingToken: 1 }))).toBe('schema violation: error: a failed result needs error');
  });
});

describe('readControlRequest', () => {
  it('validates the subject, size, JSON and schema', () => {
    expect(readControlRequest('lap', 'lap.control.p1', enc({ action: 'pause', reason: 'x' }), 100)).toEqual({
      ok: true,
      projectId: 'p1',
      request: { action: 'pause', reason: 'x' },
    });
    const bad = readControlRequest('lap', 'lap.control.p1', enc({ action: 'nope' }), 100);
    expect(bad.ok === false && bad.reply).toMatchObject({ ok: false, error: { code: 'ERR_VALIDATION' } });
  });
});

describe('connection options and retry delays', () => {
  it('builds NATS.js options from the config without touching secrets', async () => {
    const opts = await buildConnectOptions({ servers: ['nats://a:4222', 'nats://b:4222'], user: 'u', password: 'p', tls: { caFile: '/ca.pem' } });
    expect(opts).toMatchObject({ servers: ['nats://a:4222', 'nats://b:4222'], user: 'u', pass: 'p', maxReconnectAttempts: -1, tls: { caFile: '/ca.pem' } });
    expect(opts.authenticator).toBeUndefined();
    expect(describeNatsServers(['nats://u:secret@h:4222'])).toBe('nats://u:***@h:4222');
  });

  it('doubles the nak delay up to the cap', () => {
    expect([1, 2, 3, 4, 10].map((n) => retryDelay(n, 100, 500))).toEqual([100, 200, 400, 500, 500]);
  });
});
