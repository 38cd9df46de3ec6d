import type { Redis } from 'ioredis';

/** SCAN + DEL of every key starting with `prefix` (the benchmark's own keys only). */
export async function deleteWithPrefix(redis: Redis, prefix: string): Promise<void> {
  let cursor = '0';
  do {
    const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 1000);
    cursor = next;
    if (keys.length > 0) await redis.del(...keys);
  } while (cursor !== '0');
}
