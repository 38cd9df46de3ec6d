import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  createRedisClient,
  describeRedisTarget,
  reconnectDelay,
} from '../../src/adapters/redis/connection.js';
import { RedisTaskQueue } from '../../src/adapters/redis/task-queue.js';
import { ConfigError, ServiceUnavailableError } from '../../src/errors.js';
import {
  TEST_REDIS_URL,
  closeClients,
  connectTestRedis,
  deleteKeysWithPrefix,
  randomPrefix,
} from '../helpers/redis.js';
import { PrivateRedis } from '../helpers/private-redis.js';
import { makeSelfSignedCert, type SelfSignedCert } from '../helpers/tls-cert.js';

describe('createRedisClient', () => {
  it('queues commands issued while the connection is down and sends them once it is back', async () => {
    const prefix = randomPrefix('conn');
    const victim = createRedisClient({ url: TEST_REDIS_URL, connectionName: 'test-conn-victim', reconnect: { baseDelayMs: 20 } });
    const admin = connectTestRedis('conn-admin');
    try {
      const queue = new RedisTaskQueue({ redis: victim, key: `${prefix}:ready` });
      await queue.put({ taskId: 'before', priority: 1 });
      const id = await victim.client('ID');
      const closed = new Promise((resolve) => victim.once('close', resolve));
      await admin.client('KILL', 'ID', String(id));
      await closed;
      expect(victim.status).not.toBe('ready');
      await queue.put({ taskId: 'while-down', priority: 2 });
      expect(victim.status).toBe('ready');
      expect(await victim.client('ID')).not.toBe(id);
      expect(await queue.getMany(10)).toEqual(['while-down', 'before']);
    } finally {
      await deleteKeysWithPrefix(admin, prefix);
      await closeClients([victim, admin]);
    }
  });

  it('rejects a command with a retryable error after a bounded number of reconnection attempts', async () => {
    const errors: Error[] = [];
    const client = createRedisClient({
      host: '127.0.0.1',
      port: 1, // nothing listens there
      maxRetriesPerRequest: 2,
      reconnect: { baseDelayMs: 1, maxDelayMs: 5 },
      onError: (err) => errors.push(err),
    });
    try {
      const queue = new RedisTaskQueue({ redis: client, key: 'never-used' });
      const err = await queue.size().then(
        () => null,
        (e: unknown) => e,
      );
      expect(err).toBeInstanceOf(ServiceUnavailableError);
      expect((err as ServiceUnavailableError).retryable).toBe(true);
      expect(String((err as Error).cause)).toMatch(/max retries per request limit \(which is 2\)/);
      expect(errors.length).toBeGreaterThan(0);
    } finally {
      client.disconnect();
    }
  });

  it('does not connect before the first command with lazyConnect', async () => {
    const client = createRedisClient({ url: TEST_REDIS_URL, lazyConnect: true, connectionName: 'test-conn-lazy' });
    try {
      expect(client.status).toBe('wait');
      expect(await client.ping()).toBe('PONG');
      expect(await client.client('GETNAME')).toBe('test-conn-lazy');
    } finally {
      await closeClients([client]);
    }
  });

  it('reports bad options as ConfigError without echoing secrets', () => {
    const attempt = (url: string): ConfigError => {
      try {
        createRedisClient({ url, lazyConnect: true });
      } catch (err) {
        return err as ConfigError;
      }
      throw new Error('expected a ConfigError');
    };
    const scheme = attempt('http://admin:hunter2@example.com:6379/0');
    expect(scheme).toBeInstanceOf(ConfigError);
    expect(scheme.message).not.toContain('hunter2');
    expect(scheme.message).not.toContain('admin');
    const db = attempt('redis://:hunter2@example.com:6379/x');
    expect(db.message).not.toContain('hunter2');
    expect(attempt('not a url :hunter2').message).not.toContain('hunter2');
    expect(() => createRedisClient({ port: 70_000, lazyConnect: true })).toThrow(ConfigError);
    expect(() => createRedisClient({ maxRetriesPerRequest: -1, lazyConnect: true })).toThrow(ConfigError);
  });

  it('describes the target for logs without credentials', () => {
    expect(describeRedisTarget({ url: 'rediss://user:hunter2@cache.internal:6380/3' })).toBe('rediss://cache.internal:6380/3');
    expect(describeRedisTarget({ host: 'h', password: 'hunter2' })).toBe('redis://h:6379/0');
  });

  it('backs off exponentially up to the cap', () => {
    expect([1, 2, 3, 4, 5, 6, 50].map((n) => reconnectDelay(n, 100, 2_000))).toEqual([
      100, 200, 400, 800, 1_600, 2_000, 2_000,
    ]);
  });
});

describe('createRedisClient over TLS (a private redis-server with a self-signed certificate)', () => {
  let cert: SelfSignedCert;
  let server: PrivateRedis;
  beforeAll(async () => {
    cert = await makeSelfSignedCert();
    server = await PrivateRedis.start({ user: { name: 'tls-user', password: 'tls-s3cret' }, tls: cert });
  }, 60_000);
  afterAll(async () => {
    await server?.stop();
    await cert?.dispose();
  });

  it('trusts the server whose certificate chains to tlsCaFile (rediss://, or the CA alone)', async () => {
    const overUrl = createRedisClient({ url: server.url, tlsCaFile: cert.certFile, connectionName: 'test-tls-url' });
    const caAlone = createRedisClient({ port: server.port, username: 'tls-user', password: 'tls-s3cret', tlsCaFile: cert.certFile, connectionName: 'test-tls-ca' });
    try {
      expect(server.url.startsWith('rediss://')).toBe(true);
      expect(await overUrl.ping()).toBe('PONG');
      expect(await caAlone.ping()).toBe('PONG');
      expect(describeRedisTarget({ port: server.port, tlsCaFile: cert.certFile })).toBe(`rediss://127.0.0.1:${server.port}/0`);
    } finally {
      await closeClients([overUrl, caAlone]);
    }
  });

  it('refuses the server without the CA (self-signed), and an unreadable CA file is a ConfigError', async () => {
    const errors: Error[] = [];
    const untrusting = createRedisClient({ url: server.url, maxRetriesPerRequest: 0, connectionName: 'test-tls-no-ca', onError: (e) => void errors.push(e) });
    try {
      await expect(untrusting.ping()).rejects.toThrow();
      expect(errors.some((e) => /self-signed/.test(e.message))).toBe(true);
    } finally {
      untrusting.disconnect();
    }
    expect(() => createRedisClient({ url: server.url, tlsCaFile: '/nonexistent/ca.pem', lazyConnect: true })).toThrow(ConfigError);
  });
});
