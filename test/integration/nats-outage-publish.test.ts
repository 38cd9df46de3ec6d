import { jetstreamManager } from '@nats-io/jetstream';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { NatsEventBus } from '../../src/adapters/nats/event-bus.js';
import { JetStreamPublisher } from '../../src/adapters/nats/jetstream-publisher.js';
import { ServiceUnavailableError } from '../../src/errors.js';
import { TestNatsServer } from '../helpers/nats-server.js';
import { randomNatsScope, waitFor } from '../helpers/nats.js';

/**
 * Publishes while NATS is down (a private nats-server, killed and started again). nats.js
 * drops what is written while the connection is down (each dial resets its outbound
 * buffer) without an error: before this, a dispatch published then waited for its
 * acknowledgement timeout (10 s) before it was tried again, and a status notification was
 * taken as published and lost. Found by the chaos battery (`npm run chaos`, scenario 3:
 * dispatches resumed 11.6 s after a 10 s outage ended).
 */
let server: TestNatsServer;
let nc: NatsConnection;
const states: string[] = [];

beforeAll(async () => {
  server = await TestNatsServer.start();
  nc = await connect({ servers: server.url, maxReconnectAttempts: -1, reconnectTimeWait: 100 });
  void (async () => {
    for await (const s of nc.status()) states.push(s.type);
  })();
});

afterAll(async () => {
  await nc?.close();
  await server?.dispose();
});

/** Kills the server and waits until the client knows the connection is gone. */
async function outage(): Promise<void> {
  const before = states.filter((s) => s === 'disconnect').length;
  await server.kill();
  await waitFor(() => states.filter((s) => s === 'disconnect').length > before, 'the client saw the disconnect');
}

async function back(): Promise<void> {
  const before = states.filter((s) => s === 'reconnect').length;
  await server.startAgain();
  await waitFor(() => states.filter((s) => s === 'reconnect').length > before, 'the client reconnected', 30_000);
}

describe('publishing while NATS is down', () => {
  it('a JetStream publish is refused at once, and one waiting for its acknowledgement fails when the connection is lost', async () => {
    const { subjectPrefix, streamPrefix } = randomNatsScope();
    const jsm = await jetstreamManager(nc);
    await jsm.streams.add({ name: `${streamPrefix}_S`, subjects: [`${subjectPrefix}.>`] });
    // An acknowledgement timeout far beyond the test's: only the connection's state can end these publishes.
    const publisher = new JetStreamPublisher(nc, 3_600_000);
    expect((await publisher.publish(`${subjectPrefix}.a`, '{}', 'm-1')).duplicate).toBe(false);

    // Published and waiting for its acknowledgement when the server dies: it fails, it does not hang.
    await nc.flush();
    const waiting = publisher.publish(`${subjectPrefix}.a`, '{}', 'm-2').then(() => null, (err: unknown) => err);
    await server.kill();
    expect(await waiting).toBeInstanceOf(ServiceUnavailableError);
    await waitFor(() => states.includes('disconnect'), 'the client saw the disconnect');
    // While down: refused at once.
    await expect(publisher.publish(`${subjectPrefix}.a`, '{}', 'm-3')).rejects.toBeInstanceOf(ServiceUnavailableError);

    // Back: published and acknowledged again (m-2 found a duplicate if the stream had stored it).
    await back();
    await waitFor(async () => (await publisher.publish(`${subjectPrefix}.a`, '{}', 'm-2').then(() => true, () => false)), 'm-2 acknowledged', 30_000);
    expect((await publisher.publish(`${subjectPrefix}.a`, '{}', 'm-3')).stream).toBe(`${streamPrefix}_S`);
  });

  it('a notification is refused while the connection is down, not taken and lost', async () => {
    const { subjectPrefix } = randomNatsScope();
    const bus = new NatsEventBus({ connection: nc, subjectPrefix });
    const status = { kind: 'status' as const, body: { taskId: 'tsk_1', projectId: 'prj_1', taskType: 'WRITE_SCRIPT', from: 'READY' as const, to: 'RUNNING' as const, at: new Date().toISOString(), attempt: 1 } };
    await bus.publish(status);
    await outage();
    await expect(bus.publish(status)).rejects.toBeInstanceOf(ServiceUnavailableError);
    await back();
    await bus.publish(status);
  });
});
