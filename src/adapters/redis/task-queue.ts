import { randomUUID } from 'node:crypto';
import type { Redis } from 'ioredis';
import { ValidationError } from '../../errors.js';
import type { QueueEntry, TaskQueue } from '../../ports/task-queue.js';
import { checkCount, checkEntries, checkEntry, firstOccurrences } from '../validation.js';
import { execPipeline, scriptPipeline, withCommands, type ScriptedRedis } from './scripts.js';
import { redisFailure } from './connection.js';

export interface RedisTaskQueueOptions {
  /** A client from createRedisClient (may be shared with other adapters). */
  redis: Redis;
  /**
   * The sorted set's key. Derived keys: `${key}:seq` (sequence counter) and
   * `${key}:rebuild:<uuid>` (staging set during a rebuild). On Redis Cluster give the key
   * a hash tag (e.g. `{orchestrator}:ready`) so that all of them live in one slot.
   */
  key: string;
}

/** Entries per script call: bounds how long one call keeps Redis busy. */
const PUT_CHUNK = 1_000;
/** Script calls per pipeline during a rebuild: bounds client memory per round trip. */
const REBUILD_CHUNKS_PER_ROUND_TRIP = 20;
/** An abandoned staging set (crash mid-rebuild) disappears after this. */
const STAGING_TTL_MS = 10 * 60_000;

/**
 * The ready queue on a Redis sorted set (see commands/queue-put.lua for the score).
 *
 * - put/putMany: queue-put.lua (INCRBY the sequence, then ZADD NX), so a task already
 *   queued keeps its place.
 * - get/getMany: plain ZPOPMIN, which is atomic by itself: two clients never receive the
 *   same id. Scores are unique (the sequence), so the order is total.
 * - rebuild: fills a staging set, then queue-swap.lua RENAMEs it over the queue in one
 *   step (DEL when empty): readers see the old content or the new one, never a mix.
 *   Puts that land on the old queue during a rebuild are replaced with it: rebuild is
 *   meant to run from the store's list of READY tasks, which already includes them.
 *
 * Failures of Redis surface as ServiceUnavailableError (retryable).
 */
export class RedisTaskQueue implements TaskQueue {
  readonly #redis: ScriptedRedis;
  readonly #key: string;
  readonly #seqKey: string;

  constructor(options: RedisTaskQueueOptions) {
    if (typeof options.key !== 'string' || options.key.length === 0) {
      throw new ValidationError('RedisTaskQueue needs a non-empty key');
    }
    this.#redis = withCommands(options.redis, ['orchQueuePut', 'orchQueueSwap']);
    this.#key = options.key;
    this.#seqKey = `${options.key}:seq`;
  }

  get key(): string {
    return this.#key;
  }

  async put(entry: QueueEntry): Promise<void> {
    checkEntry(entry);
    try {
      await this.#redis.orchQueuePut(this.#key, this.#seqKey, entry.taskId, entry.priority);
    } catch (err) {
      throw redisFailure('queue put', err);
    }
  }

  async putMany(entries: readonly QueueEntry[]): Promise<void> {
    checkEntries(entries);
    if (entries.length === 0) return;
    try {
      if (entries.length <= PUT_CHUNK) {
        await this.#redis.orchQueuePut(this.#key, this.#seqKey, ...flatten(entries));
        return;
      }
      // Several script calls, one round trip; they run in order, so the batch keeps
      // its order (another client's put may land between two chunks).
      const pipeline = scriptPipeline(this.#redis);
      for (let i = 0; i < entries.length; i += PUT_CHUNK) {
        pipeline.orchQueuePut(this.#key, this.#seqKey, ...flatten(entries.slice(i, i + PUT_CHUNK)));
      }
      await execPipeline(pipeline);
    } catch (err) {
      throw redisFailure('queue putMany', err);
    }
  }

  async get(): Promise<string | null> {
    let reply: string[];
    try {
      reply = await this.#redis.zpopmin(this.#key);
    } catch (err) {
      throw redisFailure('queue get', err);
    }
    return reply[0] ?? null;
  }

  async getMany(count: number): Promise<string[]> {
    checkCount(count);
    if (count === 0) return [];
    let reply: string[];
    try {
      reply = await this.#redis.zpopmin(this.#key, count);
    } catch (err) {
      throw redisFailure('queue getMany', err);
    }
    // Flat [member, score, member, score, ...].
    const ids: string[] = [];
    for (let i = 0; i < reply.length; i += 2) ids.push(reply[i] as string);
    return ids;
  }

  async remove(taskId: string): Promise<boolean> {
    try {
      return (await this.#redis.zrem(this.#key, taskId)) === 1;
    } catch (err) {
      throw redisFailure('queue remove', err);
    }
  }

  async size(): Promise<number> {
    try {
      return await this.#redis.zcard(this.#key);
    } catch (err) {
      throw redisFailure('queue size', err);
    }
  }

  async rebuild(entries: readonly QueueEntry[]): Promise<void> {
    checkEntries(entries);
    const unique = firstOccurrences(entries);
    const staging = `${this.#key}:rebuild:${randomUUID()}`;
    try {
      for (let start = 0; start < unique.length; start += PUT_CHUNK * REBUILD_CHUNKS_PER_ROUND_TRIP) {
        const end = Math.min(start + PUT_CHUNK * REBUILD_CHUNKS_PER_ROUND_TRIP, unique.length);
        const pipeline = scriptPipeline(this.#redis);
        for (let i = start; i < end; i += PUT_CHUNK) {
          pipeline.orchQueuePut(staging, this.#seqKey, ...flatten(unique.slice(i, Math.min(i + PUT_CHUNK, end))));
        }
        pipeline.pexpire(staging, STAGING_TTL_MS);
        await execPipeline(pipeline);
      }
      await this.#redis.orchQueueSwap(staging, this.#key, unique.length);
    } catch (err) {
      await this.#redis.del(staging).catch(() => undefined);
      throw redisFailure('queue rebuild', err);
    }
  }
}

function flatten(entries: readonly QueueEntry[]): (string | number)[] {
  const args: (string | number)[] = [];
  for (const { taskId, priority } of entries) args.push(taskId, priority);
  return args;
}
