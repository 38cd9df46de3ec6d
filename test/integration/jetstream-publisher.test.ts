import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { jetstreamManager } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import { JetStreamPublisher } from '../../src/adapters/nats/jetstream-publisher.js';
import { ServiceUnavailableError } from '../../src/errors.js';
import { connectTestNats, deleteStreams, randomNatsScope } from '../helpers/nats.js';

/** Dispatch publishes: acknowledged by the stream on one shared subscription. */
describe('JetStreamPublisher (real NATS)', () => {
  const scope = randomNatsScope();
  const stream = `${scope.streamPrefix}_PUB`;
  let nc: NatsConnection;

  beforeAll(async () => {
    nc = await connectTestNats('publisher');
    const jsm = await jetstreamManager(nc);
    await jsm.streams.add({ name: stream, subjects: [`${scope.subjectPrefix}.pub.>`], duplicate_window: 60_000_000_000 });
  });
  afterAll(async () => {
    await deleteStreams(nc, scope.streamPrefix);
    await nc.close();
  });

  it('resolves once the stream stored each message, many in flight at once, a repeated id as a duplicate', async () => {
    const publisher = new JetStreamPublisher(nc, 5_000);
    const acks = await Promise.all(
      Array.from({ length: 200 }, (_, i) => publisher.publish(`${scope.subjectPrefix}.pub.a`, JSON.stringify({ i }), `m-${i}`)),
    );
    expect(acks.every((a) => a.stream === stream && !a.duplicate)).toBe(true);
    expect(new Set(acks.map((a) => a.seq)).size).toBe(200);
    const again = await publisher.publish(`${scope.subjectPrefix}.pub.a`, '{}', 'm-7');
    expect(again).toMatchObject({ stream, duplicate: true });
    const jsm = await jetstreamManager(nc);
    expect((await jsm.streams.info(stream)).state.messages).toBe(200);
    expect(publisher.inFlight).toBe(0);
  });

  it('rejects a subject no stream takes with a typed error, and goes on publishing', async () => {
    const publisher = new JetStreamPublisher(nc, 5_000);
    const err = await publisher.publish(`${scope.subjectPrefix}.nowhere`, '{}', 'x-1').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ServiceUnavailableError);
    expect((err as Error).message).toContain('no stream');
    await expect(publisher.publish(`${scope.subjectPrefix}.pub.b`, '{}', 'x-2')).resolves.toMatchObject({ stream });
  });

  it('fails a publish nobody acknowledges after its timeout, and what still waits when the connection closes', async () => {
    // A core subscriber takes the subject and never answers: no stream, no 503 either.
    const silent = `${scope.subjectPrefix}.silent`;
    const listener = nc.subscribe(silent);
    try {
      const publisher = new JetStreamPublisher(nc, 1_000);
      const err = await publisher.publish(silent, '{}', 's-1').catch((e: unknown) => e);
      expect(err).toBeInstanceOf(ServiceUnavailableError);
      expect((err as Error).message).toContain('no acknowledgement');
      expect(publisher.inFlight).toBe(0);

      const own = await connectTestNats('publisher-close');
      const closing = new JetStreamPublisher(own, 60_000);
      const waiting = closing.publish(silent, '{}', 's-2').catch((e: unknown) => e);
      await own.flush();
      await own.close();
      expect(await waiting).toBeInstanceOf(ServiceUnavailableError);
      expect(closing.inFlight).toBe(0);
    } finally {
      listener.unsubscribe();
    }
  });
});
