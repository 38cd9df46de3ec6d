/**
 * RedisLockManager: leases one at a time against acquireMany/releaseMany, on the local
 * Redis, in one run.
 *
 *   npx tsx bench/locks.ts            (REDIS_URL overrides redis://127.0.0.1:6379)
 *
 * Each round takes LEASES leases on distinct resources and releases them all (1 op = one
 * lease acquired, or one released). The variants run alternately (A B C ... A B C ...)
 * after one unmeasured warm-up round each, so that drift of a noisy machine hits all of
 * them alike. Reported: median ops/s over the rounds. Besides the one-script batch, a
 * pipeline of the single-lease scripts (the other way to make a batch one round trip) is
 * measured for reference. Everything lives under a random `bench:<uuid>` prefix and is
 * deleted at the end.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import type { Redis } from 'ioredis';
import { createRedisClient } from '../src/adapters/redis/connection.js';
import { RedisLockManager } from '../src/adapters/redis/lock-manager.js';
import { execPipeline, scriptPipeline, withCommands } from '../src/adapters/redis/scripts.js';
import type { Lease } from '../src/ports/lock-manager.js';
import { median } from './e2e/stats.js';
import { deleteWithPrefix } from './redis-keys.js';

const LEASES = 10_000;
const ROUNDS = 5;
const TTL_MS = 60_000;
const BATCHES = [100, 1_000];

interface Timing {
  acquire: number;
  release: number;
}
type Variant = (prefix: string) => Promise<Timing>;

const resources = Array.from({ length: LEASES }, (_, i) => `task:${i}`);

async function timed<T>(fn: () => Promise<T>): Promise<[T, number]> {
  const start = performance.now();
  const value = await fn();
  return [value, LEASES / ((performance.now() - start) / 1_000)];
}

function held(leases: (Lease | null)[]): Lease[] {
  const out = leases.filter((l): l is Lease => l !== null);
  if (out.length !== LEASES) throw new Error(`expected ${LEASES} leases, got ${out.length}`);
  return out;
}

function variants(redis: Redis): Record<string, Variant> {
  const one: Variant = async (prefix) => {
    const locks = new RedisLockManager({ redis, prefix });
    const [leases, acquire] = await timed(async () => {
      const out: (Lease | null)[] = [];
      for (const resource of resources) out.push(await locks.acquire(resource, TTL_MS));
      return held(out);
    });
    const [, release] = await timed(async () => {
      for (const lease of leases) if (!(await locks.release(lease))) throw new Error('release refused');
    });
    return { acquire, release };
  };
  const many =
    (batch: number): Variant =>
    async (prefix) => {
      const locks = new RedisLockManager({ redis, prefix });
      const [leases, acquire] = await timed(async () => {
        const out: (Lease | null)[] = [];
        for (let i = 0; i < LEASES; i += batch) out.push(...(await locks.acquireMany(resources.slice(i, i + batch), TTL_MS)));
        return held(out);
      });
      const [, release] = await timed(async () => {
        for (let i = 0; i < LEASES; i += batch) {
          if ((await locks.releaseMany(leases.slice(i, i + batch))).includes(false)) throw new Error('release refused');
        }
      });
      return { acquire, release };
    };
  // The single-lease scripts, BATCH of them per pipeline (what acquireMany would be without its own script).
  const pipelined =
    (batch: number): Variant =>
    async (prefix) => {
      const scripted = withCommands(redis, ['orchLockAcquire', 'orchLockRelease']);
      const locks = new RedisLockManager({ redis, prefix });
      const fence = `${prefix}:fence`;
      const [leases, acquire] = await timed(async () => {
        const out: (Lease | null)[] = [];
        for (let i = 0; i < LEASES; i += batch) {
          const slice = resources.slice(i, i + batch);
          const tokens = slice.map(() => randomBytes(16).toString('hex'));
          const pipeline = scriptPipeline(scripted);
          slice.forEach((r, j) => pipeline.orchLockAcquire(locks.lockKey(r), fence, tokens[j]!, TTL_MS));
          const replies = (await execPipeline(pipeline)) as (number | null)[];
          slice.forEach((resource, j) => {
            const fencingToken = replies[j];
            out.push(fencingToken == null ? null : { resource, token: tokens[j]!, fencingToken, ttlMs: TTL_MS });
          });
        }
        return held(out);
      });
      const [, release] = await timed(async () => {
        for (let i = 0; i < LEASES; i += batch) {
          const pipeline = scriptPipeline(scripted);
          for (const lease of leases.slice(i, i + batch)) {
            pipeline.orchLockRelease(locks.lockKey(lease.resource), `${lease.token}:${lease.fencingToken}`);
          }
          if ((await execPipeline(pipeline)).includes(0)) throw new Error('release refused');
        }
      });
      return { acquire, release };
    };
  const all: Record<string, Variant> = { one };
  for (const batch of BATCHES) {
    all[`many${batch}`] = many(batch);
    all[`pipelined${batch}`] = pipelined(batch);
  }
  return all;
}

async function main(): Promise<void> {
  const prefix = `bench:${randomUUID()}`;
  const redis = createRedisClient({ url: process.env.REDIS_URL ?? 'redis://127.0.0.1:6379', connectionName: 'bench-locks' });
  const all = variants(redis);
  const names = Object.keys(all);
  const results = new Map<string, Timing[]>(names.map((name) => [name, []]));
  let run = 0;
  const runOnce = async (name: string): Promise<Timing> => {
    const runPrefix = `${prefix}:${name}:${run++}`;
    try {
      return await all[name]!(runPrefix);
    } finally {
      await deleteWithPrefix(redis, runPrefix);
    }
  };
  try {
    for (const name of names) await runOnce(name); // warm-up: script load, JIT
    for (let round = 0; round < ROUNDS; round++) {
      for (const name of names) results.get(name)!.push(await runOnce(name));
    }
  } finally {
    await deleteWithPrefix(redis, prefix);
    await redis.quit();
  }

  const med = (name: string, op: keyof Timing): number => median(results.get(name)!.map((t) => t[op]));
  const fmt = (n: number): string => Math.round(n).toLocaleString('en-US');
  const rows: [string, string, string, keyof Timing][] = [];
  for (const batch of BATCHES) {
    rows.push([`acquireMany(${batch}) vs acquire ×1`, `many${batch}`, 'one', 'acquire']);
    rows.push([`releaseMany(${batch}) vs release ×1`, `many${batch}`, 'one', 'release']);
  }
  for (const batch of BATCHES) {
    rows.push([`acquireMany(${batch}) vs pipeline of ${batch} acquire scripts`, `many${batch}`, `pipelined${batch}`, 'acquire']);
    rows.push([`releaseMany(${batch}) vs pipeline of ${batch} release scripts`, `many${batch}`, `pipelined${batch}`, 'release']);
  }
  const lines = [
    `RedisLockManager batches: ${ROUNDS} alternating rounds of ${LEASES.toLocaleString('en-US')} leases (median), 1 op = 1 lease acquired or released`,
    '',
    '| operation | batch ops/s | baseline ops/s | batch/baseline |',
    '| --- | ---: | ---: | ---: |',
    ...rows.map(([label, batch, base, op]) => {
      const b = med(batch, op);
      const r = med(base, op);
      return `| ${label} | ${fmt(b)} | ${fmt(r)} | ${(b / r).toFixed(1)} |`;
    }),
  ];
  console.log(lines.join('\n'));
}

main().catch((err: unknown) => {
  console.error(err);
  process.exitCode = 1;
});
