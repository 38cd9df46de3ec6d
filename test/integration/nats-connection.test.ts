import { jetstream } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectNats } from '../../src/adapters/nats/connection.js';
import { NatsEventBus } from '../../src/adapters/nats/event-bus.js';
import { createAgentWorker } from '../../src/agent/worker.js';
import { ConfigError, ServiceRefusedError, ServiceUnavailableError } from '../../src/errors.js';
import { createLogger } from '../../src/logger.js';
import { TestNatsServer } from '../helpers/nats-server.js';
import { randomNatsScope, waitFor } from '../helpers/nats.js';
import { RecordingHandlers, eventBody, uid } from '../helpers/recording-handlers.js';

/** These tests run their own nats-server (user/password auth, JetStream, a temp store) and restart it. */
const USER = 'orchestrator';
const PASSWORD = 's3cret-pa55word';

let server: TestNatsServer;

beforeAll(async () => {
  server = await TestNatsServer.start({ user: USER, pass: PASSWORD });
});

afterAll(async () => {
  await server?.dispose();
});

function capturingLogger(): { logger: ReturnType<typeof createLogger>; lines: string[] } {
  const lines: string[] = [];
  const logger = createLogger({ level: 'debug', destination: { write: (s: string) => void lines.push(s) } });
  return { logger, lines };
}

function options(overrides: Partial<Parameters<typeof connectNats>[0]> = {}): Parameters<typeof connectNats>[0] {
  return { servers: [server.url], user: USER, password: PASSWORD, reconnectTimeWaitMs: 100, name: 'test-conn', ...overrides };
}

describe('connectNats', () => {
  it('connects with user and password and never logs the password', async () => {
    const { logger, lines } = capturingLogger();
    const nc = await connectNats(options(), logger);
    try {
      expect(nc.info?.jetstream).toBe(true);
      expect(lines.join('\n')).toContain('connected to NATS');
    } finally {
      await nc.close();
    }
    await waitFor(() => lines.some((l) => l.includes('NATS connection closed')), 'close logged');
    expect(lines.join('\n')).not.toContain(PASSWORD);
  });

  it('reports a refused login as a permanent ServiceRefusedError, a server not reached as a retryable ServiceUnavailableError, without the secret', async () => {
    const { logger } = capturingLogger();
    const wrong = await connectNats(options({ password: 'wrong-password' }), logger).then(
      () => null,
      (e: unknown) => e,
    );
    expect(wrong).toBeInstanceOf(ServiceRefusedError);
    expect((wrong as ServiceRefusedError).retryable).toBe(false);
    expect((wrong as Error).message).toMatch(new RegExp(`^NATS at nats://127.0.0.1:${server.port} refused the connection: Authorization Violation; check the credentials`));
    expect((wrong as Error).message).not.toContain('wrong-password');
    const nobody = await connectNats({ servers: ['nats://127.0.0.1:1'], connectTimeoutMs: 2_000 }, logger).then(
      () => null,
      (e: unknown) => e,
    );
    expect(nobody).toBeInstanceOf(ServiceUnavailableError);
    expect(nobody).not.toBeInstanceOf(ServiceRefusedError);
    expect((nobody as ServiceUnavailableError).retryable).toBe(true);
    expect((nobody as Error).message).toMatch(/^cannot reach NATS at nats:\/\/127.0.0.1:1: /);
  });

  it('rejects an unreadable credentials or seed file with a ConfigError', async () => {
    const { logger } = capturingLogger();
    await expect(connectNats(options({ credsFile: '/nonexistent/user.creds' }), logger)).rejects.toBeInstanceOf(ConfigError);
    await expect(connectNats(options({ nkeySeedFile: '/nonexistent/seed.nk' }), logger)).rejects.toBeInstanceOf(ConfigError);
  });
});

describe('after a NATS server restart', () => {
  let nc: NatsConnection | undefined;
  let agentNc: NatsConnection | undefined;
  afterAll(async () => {
    await nc?.close();
    await agentNc?.close();
  });

  it('the bus and an agent worker reconnect and keep consuming', async () => {
    const scope = randomNatsScope();
    const { logger, lines } = capturingLogger();
    nc = await connectNats(options(), logger);
    agentNc = await connectNats(options({ name: 'test-agent' }), logger.child({ side: 'agent' }));
    const bus = new NatsEventBus({ connection: nc, subjectPrefix: scope.subjectPrefix, streamPrefix: scope.streamPrefix, logger });
    const handlers = new RecordingHandlers();
    const sub = await bus.consume(handlers);
    const worker = await createAgentWorker({
      connection: agentNc,
      agent: 'editor',
      subjectPrefix: scope.subjectPrefix,
      streamPrefix: scope.streamPrefix,
      handle: async () => ({ output: { cut: true }, actualCost: 1 }),
    });
    const js = jetstream(agentNc);
    const sendEvent = async (id: string) => {
      // Right after a restart JetStream may still be recovering: retry the publish until stored.
      await waitFor(
        () =>
          js
            .publish(`${scope.subjectPrefix}.events.p1.SCRIPT_READY`, JSON.stringify(eventBody('p1', id)), { msgID: id })
            .then(() => true, () => false),
        `event ${id} stored`,
        30_000,
        200,
      );
    };
    try {
      const before = uid('before');
      await sendEvent(before);
      await waitFor(() => handlers.doneFor(before).length === 1, 'event before the restart');

      await server.restart();
      await waitFor(() => lines.filter((l) => l.includes('NATS reconnected')).length >= 2, 'both connections reconnected', 30_000);
      expect(lines.some((l) => l.includes('NATS disconnected'))).toBe(true);

      const after = uid('after');
      await sendEvent(after);
      await waitFor(() => handlers.doneFor(after).length === 1, 'event after the restart', 60_000);

      const taskId = uid('task');
      const task = { taskId, projectId: 'p1', taskType: 'EDIT', input: {}, attempt: 1, deadline: new Date().toISOString(), fencingToken: 2 };
      await waitFor(() => bus.dispatchTask('editor', task).then(() => true, () => false), 'dispatch accepted', 30_000, 200);
      await waitFor(() => handlers.doneFor(taskId).some((c) => c.kind === 'result'), 'result of a task dispatched after the restart', 60_000);
      expect(lines.join('\n')).not.toContain(PASSWORD);
    } finally {
      await worker.stop();
      await sub.close();
    }
  });
});
