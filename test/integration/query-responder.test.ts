import type { NatsConnection } from '@nats-io/transport-node';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { NatsEventBus } from '../../src/adapters/nats/event-bus.js';
import type { QueryRequest } from '../../src/domain/messages.js';
import type { InboundSubscription } from '../../src/ports/event-bus.js';
import { RecordingHandlers } from '../helpers/recording-handlers.js';
import { connectTestNats, deleteStreams, randomNatsScope } from '../helpers/nats.js';

/**
 * The NATS query responder (`<prefix>.query.<kind>`) beyond the EventBus contract: an answer
 * over the server's max_payload is refused with a typed error instead of never arriving, and
 * an empty body is the query with its defaults.
 */
let nc: NatsConnection;
let asker: NatsConnection;
const scope = randomNatsScope();
let inbound: InboundSubscription | undefined;
const handlers = new RecordingHandlers();

beforeAll(async () => {
  nc = await connectTestNats('query-responder');
  asker = await connectTestNats('query-asker');
  const bus = new NatsEventBus({ connection: nc, subjectPrefix: scope.subjectPrefix, streamPrefix: scope.streamPrefix });
  inbound = await bus.consume(handlers);
});
afterAll(async () => {
  await inbound?.close();
  await deleteStreams(nc, scope.streamPrefix);
  await nc.close();
  await asker.close();
});

const ask = async (kind: string, body: string) =>
  JSON.parse((await asker.request(`${scope.subjectPrefix}.query.${kind}`, body, { timeout: 10_000 })).string()) as { ok: boolean; result?: unknown; error?: { code: string; message: string } };

it('refuses an answer larger than the server takes, naming the limit, instead of never answering', async () => {
  const max = nc.info!.max_payload;
  handlers.query = async () => ({ items: ['x'.repeat(max)], next: null });
  const reply = await ask('projects', '{}');
  expect(reply).toMatchObject({ ok: false, error: { code: 'ERR_VALIDATION', message: expect.stringContaining(`over the server's max_payload of ${max}: ask for a smaller limit`) } });
});

it('takes an empty body as the query with its defaults', async () => {
  const seen: QueryRequest[] = [];
  handlers.query = async (request) => (seen.push(request), { items: [], next: null });
  expect(await ask('dead_letters', '')).toEqual({ ok: true, result: { items: [], next: null } });
  expect(seen).toEqual([{ query: 'dead_letters', limit: 50 }]);
});
