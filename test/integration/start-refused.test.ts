import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TestNatsServer } from '../helpers/nats-server.js';
import { PrivatePostgres } from '../helpers/private-postgres.js';
import { PrivateRedis } from '../helpers/private-redis.js';
import { runCli, startService } from '../helpers/service-process.js';

/**
 * `orchestrator start` against private servers that ask for credentials it does not give:
 * the start ends by itself, non-zero, with a message naming the server, and no secret in
 * its output. PostgreSQL waits up to authentication_timeout for a login the client never
 * finishes; it is set to the maximum here, so a client that leaves such a connection open
 * cannot exit by the server's doing. The limit given to runCli is a liveness bound only
 * (the process is killed past it): the checks are on the exit code and the output.
 */

const PG_PASSWORD = 'pg-Refused-s3cret';
const REDIS_PASSWORD = 'redis-Refused-s3cret';
const NATS_PASSWORD = 'nats-Refused-s3cret';
const SECRETS = [PG_PASSWORD, REDIS_PASSWORD, NATS_PASSWORD];

let postgres: PrivatePostgres;
let redis: PrivateRedis;
let nats: TestNatsServer;
let good: Record<string, string>;

beforeAll(async () => {
  [postgres, redis, nats] = await Promise.all([
    PrivatePostgres.start({ password: PG_PASSWORD, settings: { authentication_timeout: '600s' } }),
    PrivateRedis.start({ user: { name: 'orchestrator', password: REDIS_PASSWORD } }),
    TestNatsServer.start({ user: 'orchestrator', pass: NATS_PASSWORD }),
  ]);
  good = {
    DATABASE_URL: postgres.url,
    REDIS_URL: redis.url,
    NATS_URL: nats.url,
    NATS_USER: 'orchestrator',
    NATS_PASSWORD,
    NATS_SUBJECT_PREFIX: 'refused',
    LOG_LEVEL: 'info',
  };
}, 120_000);

afterAll(async () => {
  await Promise.all([postgres?.dispose(), redis?.stop(), nats?.dispose()]);
}, 60_000);

async function refusedStart(env: Record<string, string>) {
  const run = await runCli(['start'], { ...good, ...env }, 45_000);
  const output = `${run.stdout}\n${run.stderr}`;
  for (const secret of SECRETS) expect(output).not.toContain(secret);
  return run;
}

describe('orchestrator start refused by a server', () => {
  it('exits 1 naming PostgreSQL when DATABASE_URL has no password and the server asks for one', async () => {
    const run = await refusedStart({ DATABASE_URL: postgres.url.replace(`:${encodeURIComponent(PG_PASSWORD)}@`, '@') });
    expect(run.signal, run.stderr).toBeNull();
    expect(run.code).toBe(1);
    expect(run.stderr).toContain('PostgreSQL at postgres://');
    expect(run.stderr).toContain('refused the connection: SASL: SCRAM-SERVER-FIRST-MESSAGE: client password must be a string; check the credentials and TLS settings (DATABASE_URL)');
    // The server is up: no advice to start one.
    expect(run.stderr).not.toContain('docker compose');
  }, 60_000);

  it('exits 1 naming Redis with the refusal when REDIS_URL has no credentials', async () => {
    const run = await refusedStart({ REDIS_URL: `redis://127.0.0.1:${redis.port}` });
    expect(run.signal, run.stderr).toBeNull();
    expect(run.code).toBe(1);
    expect(run.stderr).toContain(`Redis at redis://127.0.0.1:${redis.port}/0 refused the connection`);
    expect(run.stderr).not.toContain('docker compose');
    expect(run.stderr).toMatch(/NOAUTH|NOPERM/);
  }, 60_000);
});

describe('orchestrator start refused by its own settings', () => {
  it('exits 1 before connecting when the review console would be open to other machines (HTTP_ADDR not loopback, no CONSOLE_TOKEN)', async () => {
    const run = await refusedStart({ HTTP_ADDR: '0.0.0.0:0' });
    expect(run.signal, run.stderr).toBeNull();
    expect(run.code).toBe(1);
    expect(run.stderr).toContain('HTTP_ADDR=0.0.0.0: other machines reach this address: the review console needs CONSOLE_TOKEN or CONSOLE_BASIC_AUTH there');
    expect(run.stdout).not.toContain(' running (NATS prefix ');
    // With a token (whatever its value, never printed) it starts and serves.
    const token = 'console-Token-s3cret';
    const started = await startService({ ...good, HTTP_ADDR: '0.0.0.0:0', CONSOLE_TOKEN: token });
    const exit = await started.stop('SIGTERM');
    expect(exit.code).toBe(0);
    expect(started.stdout).toContain('the review console at /');
    expect(`${started.stdout}${started.stderr}`).not.toContain(token);
  }, 60_000);
});
