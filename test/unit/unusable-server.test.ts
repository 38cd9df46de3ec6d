import { describe, expect, it } from 'vitest';
import { unusableServer } from '../../src/adapters/unusable-server.js';
import { ServiceRefusedError, ServiceUnavailableError } from '../../src/errors.js';

describe('unusableServer: a server that refused these settings is not one to start', () => {
  it.each([
    ['password authentication failed for user "app"'],
    ['SASL: SCRAM-SERVER-FIRST-MESSAGE: client password must be a string'],
    ['no pg_hba.conf entry for host "127.0.0.1", user "app", database "app", no encryption'],
    ['WRONGPASS invalid username-password pair or user is disabled.'],
    ['NOAUTH Authentication required.'],
    ['Authorization Violation'],
    ['self-signed certificate'],
  ])('refused: %s', (detail) => {
    const err = unusableServer('redis', 'Redis', 'redis://127.0.0.1:6379/0', detail, 'REDIS_URL', new Error(detail));
    expect(err).toBeInstanceOf(ServiceRefusedError);
    expect(err.retryable).toBe(false);
    expect(err.message).toBe(`Redis at redis://127.0.0.1:6379/0 refused the connection: ${detail}; check the credentials and TLS settings (REDIS_URL)`);
  });

  it.each([['connect ECONNREFUSED 127.0.0.1:1'], ['getaddrinfo ENOTFOUND db.internal'], ['Reached the max retries per request limit (which is 5).']])('not reached: %s', (detail) => {
    const err = unusableServer('postgres', 'PostgreSQL', 'postgres://app@127.0.0.1:1/app', detail, 'DATABASE_URL', new Error(detail));
    expect(err).toBeInstanceOf(ServiceUnavailableError);
    expect(err).not.toBeInstanceOf(ServiceRefusedError);
    expect(err.retryable).toBe(true);
    expect(err.message).toMatch(/^cannot reach PostgreSQL at postgres:\/\/app@127\.0\.0\.1:1\/app: .*; start it \(for example `docker compose up -d`\)/);
  });
});
