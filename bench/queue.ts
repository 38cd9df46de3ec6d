/**
 * RedisTaskQueue against raw sorted-set commands, on the local Redis, in one run.
 *
 *   npx tsx bench/queue.ts            (REDIS_URL overrides redis://127.0.0.1:6379)
 *
 * Each round moves OPS_PER_ROUND / 2 ids in and out (puts + gets = OPS_PER_ROUND ops);
 * the variants of one comparison run alternately (A B A B ...) so that drift of a noisy
 * machine hits all of them alike, after one unmeasured warm-up round. Reported: median
 * ops/s over the rounds, one op = one id put or got. Everything lives under a random
 * `bench:<uuid>` prefix and is deleted at the end.
 */
import { randomUUID } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import type { Redis } from 'ioredis';
import { createRedisClient } from '../src/adapters/redis/connection.js';
import { RedisTaskQueue } from '../src/adapters/redis/task-queue.js';
import { median } from './e2e/stats.js';
import { deleteWithPrefix } from './redis-keys.js';

const OPS_PER_ROUND = 20_000;
const IDS = OPS_PER_ROUND / 2;
const BATCH = 100;
const ROUNDS = 5;

interface Timing {
  put: number;
  get: number;
}
type Variant = (key: string) => Promise<Timing>;

const ids = Array.from({ length: IDS }, (_, i) => `task-${i}`);

async function timed(fn: () => Promise<void>): Promise<number> {
  const start = performance.now();
  await fn();
  return IDS / ((performance.now() - start) / 1_000);
}

function variants(redis: Redis): Record<string, Variant> {
  const queueOne: Variant = async (key) => {
    const queue = new RedisTaskQueue({ redis, key });
    const put = await timed(async () => {
      for (const [i, taskId] of ids.entries()) await queue.put({ taskId, priority: i % 10 });
    });
    const get = await timed(async () => {
      for (let i = 0; i < IDS; i++) await queue.get();
    });
    return { put, get };
  };
  const rawOne: Variant = async (key) => {
    const put = await timed(async () => {
      for (const [i, taskId] of ids.entries()) await redis.zadd(key, i, taskId);
    });
    const get = await timed(async () => {
      for (let i = 0; i < IDS; i++) await redis.zpopmin(key);
    });
    return { put, get };
  };
  const queueBatch: Variant = async (key) => {
    const queue = new RedisTaskQueue({ redis, key });
    const put = await timed(async () => {
      for (let i = 0; i < IDS; i += BATCH) {
        await queue.putMany(ids.slice(i, i + BATCH).map((taskId, j) => ({ taskId, priority: (i + j) % 10 })));
      }
    });
    const get = await timed(async () => {
      for (let i = 0; i < IDS; i += BATCH) await queue.getMany(BATCH);
    });
    return { put, get };
  };
  const rawPipelined: Variant = async (key) => {
    const put = await timed(async () => {
      for (let i = 0; i < IDS; i += BATCH) {
        const pipeline = redis.pipeline();
        for (let j = i; j < i + BATCH; j++) pipeline.zadd(key, j, ids[j]!);
        await pipeline.exec();
      }
    });
    const get = await timed(async () => {
      for (let i = 0; i < IDS; i += BATCH) {
        const pipeline = redis.pipeline();
        for (let j = 0; j < BATCH; j++) pipeline.zpopmin(key);
        await pipeline.exec();
      }
    });
    return { put, get };
  };
  const rawSingleCommand: Variant = async (key) => {
    const put = await timed(async () => {
      for (let i = 0; i < IDS; i += BATCH) {
        const args: (string | number)[] = [];
        for (let j = i; j < i + BATCH; j++) args.push(j, ids[j]!);
        await redis.zadd(key, ...args);
      }
    });
    const get = await timed(async () => {
      for (let i = 0; i < IDS; i += BATCH) await redis.zpopmin(key, BATCH);
    });
    return { put, get };
  };
  return { queueOne, rawOne, queueBatch, rawPipelined, rawSingleCommand };
}

async function main(): Promise<void> {
  const prefix = `bench:${randomUUID()}`;
  const redis = createRedisClient({ url: process.env.REDIS_URL ?? 'redis://127.0.0.1:6379', connectionName: 'bench-queue' });
  const all = variants(redis);
  const results = new Map<string, Timing[]>(Object.keys(all).map((name) => [name, []]));
  const groups = [
    ['queueOne', 'rawOne'],
    ['queueBatch', 'rawPipelined', 'rawSingleCommand'],
  ];
  let run = 0;
  const runOnce = async (name: string): Promise<Timing> => {
    const key = `${prefix}:${name}:${run++}`;
    try {
      return await all[name]!(key);
    } finally {
      await deleteWithPrefix(redis, key);
    }
  };
  try {
    for (const group of groups) {
      for (const name of group) await runOnce(name); // warm-up: script load, JIT
      for (let round = 0; round < ROUNDS; round++) {
        for (const name of group) results.get(name)!.push(await runOnce(name));
      }
    }
  } finally {
    await deleteWithPrefix(redis, prefix);
    await redis.quit();
  }

  const med = (name: string, op: keyof Timing): number => median(results.get(name)!.map((t) => t[op]));
  const fmt = (n: number): string => Math.round(n).toLocaleString('en-US');
  const rows: [string, string, keyof Timing, string][] = [
    ['put ×1 vs ZADD ×1', 'rawOne', 'put', 'queueOne'],
    ['get ×1 vs ZPOPMIN ×1', 'rawOne', 'get', 'queueOne'],
    [`putMany(${BATCH}) vs pipeline of ${BATCH} ZADD`, 'rawPipelined', 'put', 'queueBatch'],
    [`getMany(${BATCH}) vs pipeline of ${BATCH} ZPOPMIN`, 'rawPipelined', 'get', 'queueBatch'],
    [`putMany(${BATCH}) vs one ZADD of ${BATCH} members`, 'rawSingleCommand', 'put', 'queueBatch'],
    [`getMany(${BATCH}) vs one ZPOPMIN key ${BATCH}`, 'rawSingleCommand', 'get', 'queueBatch'],
  ];
  const lines = [
    `RedisTaskQueue vs raw commands: ${ROUNDS} alternating rounds of ${OPS_PER_ROUND.toLocaleString('en-US')} ops (median), 1 op = 1 id`,
    '',
    '| operation | RedisTaskQueue ops/s | raw ops/s | queue/raw |',
    '| --- | ---: | ---: | ---: |',
    ...rows.map(([label, raw, op, queue]) => {
      const q = med(queue, op);
      const r = med(raw, op);
      return `| ${label} | ${fmt(q)} | ${fmt(r)} | ${(q / r).toFixed(2)} |`;
    }),
  ];
  console.log(lines.join('\n'));
}

main().catch((err: unknown) => {
  console.error(err);
  process.exitCode = 1;
});
