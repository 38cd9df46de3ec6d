import { readFileSync } from 'node:fs';
import type { ChainableCommander, Redis } from 'ioredis';

/**
 * The Lua commands in ./commands, registered on a client with `defineCommand` so that
 * ioredis runs them with EVALSHA (and falls back to EVAL on NOSCRIPT, e.g. after a
 * Redis restart). The build copies the folder next to the emitted JS.
 *
 * `numberOfKeys: null` marks a command with a variable number of keys: its caller passes
 * the key count first (as EVALSHA's numkeys).
 */
const COMMANDS = {
  orchQueuePut: { file: 'queue-put.lua', numberOfKeys: 2 },
  orchQueueSwap: { file: 'queue-swap.lua', numberOfKeys: 2 },
  orchLockAcquire: { file: 'lock-acquire.lua', numberOfKeys: 2 },
  orchLockAcquireMany: { file: 'lock-acquire-many.lua', numberOfKeys: null },
  orchLockExtend: { file: 'lock-extend.lua', numberOfKeys: 1 },
  orchLockExtendMany: { file: 'lock-extend-many.lua', numberOfKeys: null },
  orchLockRelease: { file: 'lock-release.lua', numberOfKeys: 1 },
  orchLockReleaseMany: { file: 'lock-release-many.lua', numberOfKeys: null },
  orchFenceEnsureAbove: { file: 'fence-ensure-above.lua', numberOfKeys: 1 },
} as const;

export type CommandName = keyof typeof COMMANDS;
type Arg = string | number;

/** The commands as methods on a client (each resolves with the script's reply). */
export interface ScriptCommands {
  /** KEYS queue, seq; ARGV id1, priority1, id2, priority2, ... Returns how many were added. */
  orchQueuePut(queueKey: string, seqKey: string, ...args: Arg[]): Promise<number>;
  /** KEYS staging, queue; ARGV expected count. Returns the queue size. */
  orchQueueSwap(stagingKey: string, queueKey: string, expected: number): Promise<number>;
  /** KEYS lock, fence; ARGV token, ttlMs. Returns the fencing token or null. */
  orchLockAcquire(lockKey: string, fenceKey: string, token: string, ttlMs: number): Promise<number | null>;
  /**
   * numkeys = n + 1; KEYS fence, lock1..lockN; ARGV ttlMs, token1..tokenN. Returns, per
   * lock key, its fencing token or null.
   */
  orchLockAcquireMany(numKeys: number, ...keysThenArgs: Arg[]): Promise<(number | null)[]>;
  /** KEYS lock; ARGV value, ttlMs. Returns 1 or 0. */
  orchLockExtend(lockKey: string, value: string, ttlMs: number): Promise<number>;
  /** numkeys = n; KEYS lock1..lockN; ARGV value1..valueN, ttl1..ttlN. Returns 1 or 0 per lock key. */
  orchLockExtendMany(numKeys: number, ...keysThenArgs: Arg[]): Promise<number[]>;
  /** KEYS lock; ARGV value. Returns 1 or 0. */
  orchLockRelease(lockKey: string, value: string): Promise<number>;
  /** numkeys = n; KEYS lock1..lockN; ARGV value1..valueN. Returns 1 or 0 per lock key. */
  orchLockReleaseMany(numKeys: number, ...keysThenArgs: Arg[]): Promise<number[]>;
  /** KEYS fence; ARGV value. Returns the counter. */
  orchFenceEnsureAbove(fenceKey: string, value: number): Promise<number>;
}

/** The same commands queued on a pipeline. */
export type ScriptPipeline = ChainableCommander & {
  [K in keyof ScriptCommands]: (...args: Parameters<ScriptCommands[K]>) => ScriptPipeline;
};

export type ScriptedRedis = Redis & ScriptCommands;

/** Reads a command's source from disk, relative to this module. */
export function loadCommandSource(name: CommandName): string {
  return readFileSync(new URL(`./commands/${COMMANDS[name].file}`, import.meta.url), 'utf8');
}

/**
 * Registers the named commands on `redis` (once per client; a client shared by the
 * queue and the lock manager is fine) and returns it typed with them.
 */
export function withCommands(redis: Redis, names: readonly CommandName[]): ScriptedRedis {
  const target = redis as unknown as Record<string, unknown>;
  for (const name of names) {
    if (typeof target[name] === 'function') continue;
    const { numberOfKeys } = COMMANDS[name];
    redis.defineCommand(name, {
      lua: loadCommandSource(name),
      ...(numberOfKeys === null ? {} : { numberOfKeys }),
    });
  }
  return redis as ScriptedRedis;
}

/** A pipeline on a client set up by `withCommands`. */
export function scriptPipeline(redis: ScriptedRedis): ScriptPipeline {
  return redis.pipeline() as ScriptPipeline;
}

/**
 * Runs a pipeline and returns each reply, throwing the first error (ioredis reports
 * per-command errors in the result array instead of rejecting).
 */
export async function execPipeline(pipeline: ChainableCommander): Promise<unknown[]> {
  const results = await pipeline.exec();
  if (results === null) throw new Error('pipeline was discarded');
  return results.map(([err, reply]) => {
    if (err) throw err;
    return reply;
  });
}
