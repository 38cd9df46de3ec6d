import { describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { loadConfig, redactedConfig, redactUrl } from '../../src/config/config.js';
import { SETTINGS } from '../../src/config/settings.js';
import { ConfigError } from '../../src/errors.js';

function problemsOf(env: NodeJS.ProcessEnv, overrides = {}): string[] {
  try {
    loadConfig(env, overrides);
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return (err as ConfigError).problems.map((p) => (p.value === undefined ? `${p.key}: ${p.reason}` : `${p.key}=${p.value}: ${p.reason}`));
  }
  throw new Error('expected a ConfigError');
}

describe('configuration', () => {
  it('defaults to the original design values', () => {
    const c = loadConfig({});
    expect(c.queue.key).toBe('orchestrator:task_queue');
    expect(c.scheduler).toMatchObject({ maxConcurrentTasks: 10, intervalMs: 1000, taskTimeoutMs: 300_000 });
    expect(c.budget).toEqual({ checkEnabled: true, warningThreshold: 0.9 });
    expect(c.approval).toMatchObject({ enabled: true, timeoutMs: 60 * 60_000 });
    expect(c.redis).toMatchObject({ host: '127.0.0.1', port: 6379, db: 0 });
    expect(c.nats.subjectPrefix).toBe('lap');
    expect(c.nats.servers).toEqual(['nats://127.0.0.1:4222']);
    expect(c.ingest).toEqual({ maxTasksPerEvent: 10_000 });
  });

  it('reads and converts every kind of variable', () => {
    const c = loadConfig({
      MAX_CONCURRENT_TASKS: ' 25 ',
      SCHEDULER_INTERVAL: '0.25',
      TASK_TIMEOUT: '90',
      BUDGET_CHECK_ENABLED: 'false',
      BUDGET_WARNING_THRESHOLD: '0.75',
      APPROVAL_ENABLED: 'no',
      APPROVAL_TIMEOUT: '5',
      NATS_URL: 'nats://a:4222, tls://b:4223',
      TASK_QUEUE_KEY: 'q',
      REDIS_DB: '3',
      MAX_TASKS_PER_EVENT: '500',
    });
    expect(c.ingest.maxTasksPerEvent).toBe(500);
    expect(c.scheduler).toMatchObject({ maxConcurrentTasks: 25, intervalMs: 250, taskTimeoutMs: 90_000 });
    expect(c.budget).toEqual({ checkEnabled: false, warningThreshold: 0.75 });
    expect(c.approval).toMatchObject({ enabled: false, timeoutMs: 300_000 });
    expect(c.nats.servers).toEqual(['nats://a:4222', 'tls://b:4223']);
    expect(c.queue.key).toBe('q');
    expect(c.redis.db).toBe(3);
  });

  it('reads the TLS CA files of Redis and NATS', () => {
    const c = loadConfig({ REDIS_TLS_CA_FILE: '/etc/ssl/redis-ca.pem', NATS_TLS_CA_FILE: '/etc/ssl/nats-ca.pem' });
    expect(c.redis.tls).toEqual({ caFile: '/etc/ssl/redis-ca.pem' });
    expect(c.nats.tls).toEqual({ caFile: '/etc/ssl/nats-ca.pem' });
    expect(loadConfig({ REDIS_TLS_CA_FILE: ' ' }).redis.tls).toBeUndefined();
    expect(loadConfig({}, { redis: { tls: { caFile: '/ca.pem' } } }).redis.tls).toEqual({ caFile: '/ca.pem' });
  });

  it('treats an empty variable as unset', () => {
    expect(loadConfig({ MAX_CONCURRENT_TASKS: '' }).scheduler.maxConcurrentTasks).toBe(10);
  });

  it('names every bad variable and why, in one error', () => {
    expect(
      problemsOf({
        MAX_CONCURRENT_TASKS: 'abc',
        NATS_URL: 'http://example:80',
        REDIS_PORT: '70000',
        BUDGET_WARNING_THRESHOLD: '1.5',
        APPROVAL_ENABLED: 'maybe',
        SCHEDULER_INTERVAL: '-1',
      }),
    ).toEqual([
      'REDIS_PORT=70000: expected a port number (1-65535)',
      'MAX_CONCURRENT_TASKS=abc: expected a positive integer',
      'SCHEDULER_INTERVAL=-1: expected a positive number of seconds',
      'BUDGET_WARNING_THRESHOLD=1.5: expected a number between 0 and 1',
      'APPROVAL_ENABLED=maybe: expected true or false',
      'NATS_URL=http://example:80: expected nats://host:port (comma-separated for a cluster)',
    ]);
    expect(problemsOf({ MAX_CONCURRENT_TASKS: '2.5' })).toEqual(['MAX_CONCURRENT_TASKS=2.5: expected a positive integer']);
    expect(problemsOf({ MAX_CONCURRENT_TASKS: '0' })).toEqual(['MAX_CONCURRENT_TASKS=0: expected a positive integer']);
    expect(problemsOf({ MAX_TASKS_PER_EVENT: '0' })).toEqual(['MAX_TASKS_PER_EVENT=0: expected a positive number of tasks']);
    expect(problemsOf({ MAX_TASKS_PER_EVENT: 'many' })).toEqual(['MAX_TASKS_PER_EVENT=many: expected a positive number of tasks']);
  });

  it('never shows a secret in an error', () => {
    const problems = problemsOf({
      DATABASE_URL: 'mysql://admin:hunter2@db/x',
      REDIS_URL: 'http://:s3cret@r:6379',
      NATS_URL: 'foo://user:natspw@n:4222',
    });
    const text = problems.join('\n');
    for (const secret of ['hunter2', 's3cret', 'natspw']) expect(text).not.toContain(secret);
    expect(text).toContain('DATABASE_URL=mysql://admin:***@db/x: expected a postgres:// URL');
  });

  it('overrides in code win over the environment and are validated the same way', () => {
    const c = loadConfig({ MAX_CONCURRENT_TASKS: '5' }, { scheduler: { maxConcurrentTasks: 7 } });
    expect(c.scheduler.maxConcurrentTasks).toBe(7);
    expect(problemsOf({}, { scheduler: { maxConcurrentTasks: -1 } })).toEqual([
      'scheduler.maxConcurrentTasks=-1: expected a positive integer',
    ]);
  });

  it('redacts secrets from the printable configuration', () => {
    const c = loadConfig({
      DATABASE_URL: 'postgres://app:dbpw@db:5432/x',
      REDIS_PASSWORD: 'redispw',
      NATS_TOKEN: 'tok',
      NATS_URL: 'nats://u:p4ss@n:4222',
    });
    const text = JSON.stringify(redactedConfig(c));
    for (const secret of ['dbpw', 'redispw', '"tok"', 'p4ss']) expect(text).not.toContain(secret);
    expect(redactUrl('redis://:pw@h:1')).toBe('redis://:***@h:1');
  });

  it('redacts a password made of any character a URL allows in it, as given or escaped', () => {
    // unreserved and sub-delims as they are (',' among them), ':' inside the password, the rest escaped
    const raw = "Az09-._~!$&'()*+,;=:";
    const escaped = `${raw}%40%2F%3F%23%25%20%2C`;
    for (const pw of [raw, escaped, 'xq,zw', ',xqzw', 'xqzw,', 'xq@zw']) {
      const natsPw = pw.replaceAll(',', '%2C'); // NATS_URL is a comma-separated list: a comma must be escaped there
      const c = loadConfig({
        DATABASE_URL: `postgres://app:${pw}@db:5432/x?sslmode=require`,
        REDIS_URL: `rediss://default:${pw}@cache:6380/1`,
        NATS_URL: `nats://u:${natsPw}@n1:4222,nats://v:${natsPw}@n2:4222`,
      });
      const text = JSON.stringify(redactedConfig(c));
      for (const secret of [pw, natsPw]) expect(text, pw).not.toContain(secret);
      expect(text, pw).toContain('postgres://app:***@db:5432/x?sslmode=require');
      expect(text, pw).toContain('rediss://default:***@cache:6380/1');
      expect(text, pw).toContain('["nats://u:***@n1:4222","nats://v:***@n2:4222"]');
      expect(redactUrl(`nats://u:${pw}@n1:4222,nats://v:${pw}@n2:4222`), pw).toBe('nats://u:***@n1:4222,nats://v:***@n2:4222');
      // refused values are shown redacted too
      const problems = problemsOf({ DATABASE_URL: `mysql://app:${pw}@db/x`, REDIS_URL: `http://:${pw}@cache`, NATS_URL: `nats://u:${pw}@n1:4222,n2` }).join('\n');
      expect(problems, pw).not.toContain(pw);
    }
    expect(redactUrl('nats://tok,en@n:4222')).toBe('nats://***@n:4222');
  });

  it('DISPATCH_BATCH: agent=dispatches pairs, none by default; a pair that is not one, or more than a message may carry, is refused', () => {
    expect(loadConfig({}).nats.dispatchBatch).toEqual({});
    expect(loadConfig({ DISPATCH_BATCH: 'image_generator=20, qa_checker=1' }).nats.dispatchBatch).toEqual({ image_generator: 20, qa_checker: 1 });
    expect(problemsOf({ DISPATCH_BATCH: 'image_generator=0' })).toEqual([
      'DISPATCH_BATCH=image_generator=0: expected agent=number pairs, such as image_generator=20,qa_checker=10',
    ]);
    expect(problemsOf({ DISPATCH_BATCH: 'image_generator=1001' })).toEqual(['DISPATCH_BATCH=image_generator=1001: expected at most 1000 dispatches per message']);
  });

  it('the README documents every variable', () => {
    const readme = readFileSync(new URL('../../README.md', import.meta.url), 'utf8');
    for (const s of SETTINGS) expect(readme, s.env).toContain(`| \`${s.env}\` |`);
  });
});
