import { randomUUID } from 'node:crypto';
import type { Redis } from 'ioredis';
import { createRedisClient } from '../../src/adapters/redis/connection.js';

/**
 * The shared test Redis. Tests never FLUSHDB: each one works under its own random key
 * prefix and deletes what it wrote with deleteKeysWithPrefix.
 */
export const TEST_REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';

export function randomPrefix(scope: string): string {
  return `test:${scope}:${randomUUID()}`;
}

export function connectTestRedis(name: string): Redis {
  return createRedisClient({ url: TEST_REDIS_URL, connectionName: `test-${name}` });
}

/** SCAN + DEL of every key starting with `prefix`; returns how many were deleted. */
export async function deleteKeysWithPrefix(redis: Redis, prefix: string): Promise<number> {
  const pattern = `${prefix.replace(/[*?[\]\\]/g, '\\$&')}*`;
  let cursor = '0';
  let deleted = 0;
  do {
    const [next, keys] = await redis.scan(cursor, 'MATCH', pattern, 'COUNT', 1000);
    cursor = next;
    if (keys.length > 0) deleted += await redis.del(...keys);
  } while (cursor !== '0');
  return deleted;
}

/** Keys starting with `prefix` (for checks that a test left nothing behind). */
export async function keysWithPrefix(redis: Redis, prefix: string): Promise<string[]> {
  const pattern = `${prefix.replace(/[*?[\]\\]/g, '\\$&')}*`;
  const found: string[] = [];
  let cursor = '0';
  do {
    const [next, keys] = await redis.scan(cursor, 'MATCH', pattern, 'COUNT', 1000);
    cursor = next;
    found.push(...keys);
  } while (cursor !== '0');
  return found;
}

/** Polls `check` every `intervalMs` until it returns true; fails after `limitMs` (a liveness bound, not a timing assertion). */
export async function pollUntil(check: () => Promise<boolean>, what: string, limitMs = 15_000, intervalMs = 10): Promise<void> {
  const deadline = Date.now() + limitMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`gave up waiting for ${what} after ${limitMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
  }
}

/** Closes clients, tolerating ones already closed. */
export async function closeClients(clients: readonly Redis[]): Promise<void> {
  await Promise.all(
    clients.map(async (client) => {
      if (client.status === 'end') return;
      try {
        await client.quit();
      } catch {
        client.disconnect();
      }
    }),
  );
}
