import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectNats } from '../../src/adapters/nats/connection.js';
import { ServiceRefusedError } from '../../src/errors.js';
import { silentLogger } from '../../src/logger.js';
import { TestNatsServer } from '../helpers/nats-server.js';
import { makeSelfSignedCert, type SelfSignedCert } from '../helpers/tls-cert.js';

/**
 * A private nats-server that requires client certificates (`--tlsverify`, the CA of the
 * client certificates it trusts). A refusal ended nats.js's connect with `timeout` alone,
 * reported as a server to start: the error names the cause the client can know — no
 * client certificate configured, or one the server does not trust (unknown CA).
 */

let serverCert: SelfSignedCert;
let clientCert: SelfSignedCert;
let strangerCert: SelfSignedCert;
let server: TestNatsServer;

beforeAll(async () => {
  [serverCert, clientCert, strangerCert] = await Promise.all([makeSelfSignedCert(), makeSelfSignedCert(), makeSelfSignedCert()]);
  server = await TestNatsServer.start({ mutualTls: { certFile: serverCert.certFile, keyFile: serverCert.keyFile, caFile: clientCert.certFile } });
});

afterAll(async () => {
  await server?.dispose();
  await Promise.all([serverCert, clientCert, strangerCert].map((c) => c?.dispose()));
});

const connectWith = (tls: { caFile?: string; certFile?: string; keyFile?: string }) =>
  connectNats({ servers: [server.url], tls, connectTimeoutMs: 2_000 }, silentLogger());

describe('NATS with mutual TLS: a refusal names its cause', () => {
  it('no client certificate configured: refused, saying the server requires one and which settings give it', async () => {
    const err = await connectWith({ caFile: serverCert.certFile }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ServiceRefusedError);
    expect((err as Error).message).toMatch(/requires a client certificate .*none is configured: set NATS_TLS_CERT_FILE and NATS_TLS_KEY_FILE/);
    expect((err as Error).message).not.toMatch(/cannot reach/);
  });

  it('a client certificate from a CA the server does not trust: refused, naming the certificate and the unknown CA', async () => {
    const err = await connectWith({ caFile: serverCert.certFile, certFile: strangerCert.certFile, keyFile: strangerCert.keyFile }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ServiceRefusedError);
    expect((err as Error).message).toContain(`refused the client certificate ${strangerCert.certFile}`);
    expect((err as Error).message).toMatch(/unknown CA/);
  });

  it('the trusted client certificate connects', async () => {
    const nc = await connectWith({ caFile: serverCert.certFile, certFile: clientCert.certFile, keyFile: clientCert.keyFile });
    try {
      await nc.flush();
    } finally {
      await nc.close();
    }
  });
});
