import { randomBytes } from 'node:crypto';
import type { Redis } from 'ioredis';
import { ValidationError } from '../../errors.js';
import type { Lease, LockManager } from '../../ports/lock-manager.js';
import { checkDistinctResources, checkFencingValue, checkResource, checkTtl } from '../validation.js';
import { withCommands, type ScriptedRedis } from './scripts.js';
import { redisFailure } from './connection.js';

export interface RedisLockManagerOptions {
  /** A client from createRedisClient (may be shared with other adapters). */
  redis: Redis;
  /**
   * Key prefix: leases live at `${prefix}:lock:${resource}`, the fencing counter at
   * `${prefix}:fence`. On Redis Cluster, leases and the counter must share a slot for
   * acquire (and acquireMany/releaseMany, which take many lock keys in one script) to be
   * one script: use a hash tag (e.g. `{orchestrator}`).
   */
  prefix: string;
}

/**
 * Leases on Redis: SET NX PX with a random 128-bit token, compare-and-set extend and
 * release, and a global fencing counter (INCR in the same script as the SET, so a
 * token is handed out only with a lease). The stored value is `<token>:<fencing token>`,
 * which lets acquire recognise a resent command (see commands/lock-acquire.lua).
 * acquireMany and releaseMany do the same for a whole batch in one script, one round
 * trip (commands/lock-acquire-many.lua, lock-release-many.lua).
 *
 * Expiry is Redis' own (PX): a holder whose connection dropped loses the lease once the
 * TTL runs out, and its later extend/release find another value and are refused.
 */
export class RedisLockManager implements LockManager {
  readonly #redis: ScriptedRedis;
  readonly #prefix: string;
  readonly #fenceKey: string;

  constructor(options: RedisLockManagerOptions) {
    if (typeof options.prefix !== 'string' || options.prefix.length === 0) {
      throw new ValidationError('RedisLockManager needs a non-empty prefix');
    }
    this.#redis = withCommands(options.redis, [
      'orchLockAcquire',
      'orchLockAcquireMany',
      'orchLockExtend',
      'orchLockExtendMany',
      'orchLockRelease',
      'orchLockReleaseMany',
      'orchFenceEnsureAbove',
    ]);
    this.#prefix = options.prefix;
    this.#fenceKey = `${options.prefix}:fence`;
  }

  /** The Redis key of a resource's lease. */
  lockKey(resource: string): string {
    return `${this.#prefix}:lock:${resource}`;
  }

  async acquire(resource: string, ttlMs: number): Promise<Lease | null> {
    checkResource(resource);
    checkTtl(ttlMs);
    const token = randomBytes(16).toString('hex');
    let fencingToken: number | null;
    try {
      fencingToken = await this.#redis.orchLockAcquire(this.lockKey(resource), this.#fenceKey, token, ttlMs);
    } catch (err) {
      throw redisFailure('lock acquire', err);
    }
    if (fencingToken === null) return null;
    return { resource, token, fencingToken, ttlMs };
  }

  async extend(lease: Lease, ttlMs: number): Promise<boolean> {
    checkResource(lease.resource);
    checkTtl(ttlMs);
    try {
      return (await this.#redis.orchLockExtend(this.lockKey(lease.resource), storedValue(lease), ttlMs)) === 1;
    } catch (err) {
      throw redisFailure('lock extend', err);
    }
  }

  async release(lease: Lease): Promise<boolean> {
    checkResource(lease.resource);
    try {
      return (await this.#redis.orchLockRelease(this.lockKey(lease.resource), storedValue(lease))) === 1;
    } catch (err) {
      throw redisFailure('lock release', err);
    }
  }

  /**
   * One script for the whole batch: a lease (own random token, own fencing token) or null
   * per resource, at its index. The fencing tokens of the leases taken grow with the
   * index and exceed every token handed out before. Duplicate resources are a
   * ValidationError; an empty list answers [] without a round trip.
   */
  async acquireMany(resources: readonly string[], ttlMs: number): Promise<(Lease | null)[]> {
    checkTtl(ttlMs);
    checkDistinctResources(resources);
    const n = resources.length;
    if (n === 0) return [];
    const random = randomBytes(16 * n).toString('hex');
    const tokens = Array.from({ length: n }, (_, i) => random.slice(32 * i, 32 * (i + 1)));
    const args: (string | number)[] = [this.#fenceKey];
    for (const resource of resources) args.push(this.lockKey(resource));
    args.push(ttlMs, ...tokens);
    let replies: (number | null)[];
    try {
      replies = await this.#redis.orchLockAcquireMany(n + 1, ...args);
    } catch (err) {
      throw redisFailure('lock acquireMany', err);
    }
    return resources.map((resource, i) => {
      const fencingToken = replies[i];
      return fencingToken === null || fencingToken === undefined ? null : { resource, token: tokens[i]!, fencingToken, ttlMs };
    });
  }

  /** One script for the whole batch: per lease, whether it was still held (and is now extended). */
  async extendMany(entries: readonly { lease: Lease; ttlMs: number }[]): Promise<boolean[]> {
    for (const { lease, ttlMs } of entries) {
      checkResource(lease.resource);
      checkTtl(ttlMs);
    }
    if (entries.length === 0) return [];
    const args: (string | number)[] = entries.map(({ lease }) => this.lockKey(lease.resource));
    for (const { lease } of entries) args.push(storedValue(lease));
    for (const { ttlMs } of entries) args.push(ttlMs);
    let replies: number[];
    try {
      replies = await this.#redis.orchLockExtendMany(entries.length, ...args);
    } catch (err) {
      throw redisFailure('lock extendMany', err);
    }
    return replies.map((reply) => reply === 1);
  }

  /** One script for the whole batch: per lease, whether it was still held (and is now released). */
  async releaseMany(leases: readonly Lease[]): Promise<boolean[]> {
    for (const lease of leases) checkResource(lease.resource);
    if (leases.length === 0) return [];
    const args: string[] = leases.map((lease) => this.lockKey(lease.resource));
    for (const lease of leases) args.push(storedValue(lease));
    let replies: number[];
    try {
      replies = await this.#redis.orchLockReleaseMany(leases.length, ...args);
    } catch (err) {
      throw redisFailure('lock releaseMany', err);
    }
    return replies.map((reply) => reply === 1);
  }

  async ensureFencingAbove(value: number): Promise<void> {
    checkFencingValue(value);
    try {
      await this.#redis.orchFenceEnsureAbove(this.#fenceKey, value);
    } catch (err) {
      throw redisFailure('lock ensureFencingAbove', err);
    }
  }
}

function storedValue(lease: Lease): string {
  return `${lease.token}:${lease.fencingToken}`;
}
