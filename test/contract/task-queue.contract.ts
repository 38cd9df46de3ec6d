import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ValidationError } from '../../src/errors.js';
import type { QueueEntry, TaskQueue } from '../../src/ports/task-queue.js';

/** What one adapter gives the contract for one test. */
export interface TaskQueueHarness {
  queue: TaskQueue;
  /** Another client on the same queue, over its own connection where there is one. */
  connectAnother(): Promise<TaskQueue>;
  /** Makes the queue lose everything (a restart without persistence); returns a client on it. */
  loseEverything(): Promise<TaskQueue>;
  close(): Promise<void>;
}

export type TaskQueueFactory = () => Promise<TaskQueueHarness>;

const e = (taskId: string, priority: number): QueueEntry => ({ taskId, priority });

async function drain(queue: TaskQueue, batch = 1): Promise<string[]> {
  const out: string[] = [];
  for (;;) {
    const ids = batch === 1 ? [await queue.get()].filter((id) => id !== null) : await queue.getMany(batch);
    if (ids.length === 0) return out;
    out.push(...ids);
  }
}

/** Expected pop order: priority desc, then the order the entries were first put. */
function expectedOrder(entries: readonly QueueEntry[]): string[] {
  const seen = new Set<string>();
  const firsts = entries.filter((x) => !seen.has(x.taskId) && seen.add(x.taskId));
  return firsts
    .map((x, i) => ({ ...x, i }))
    .sort((a, b) => b.priority - a.priority || a.i - b.i)
    .map((x) => x.taskId);
}

/** The TaskQueue port's contract; every adapter runs it from its own *.test.ts file. */
export function taskQueueContract(name: string, factory: TaskQueueFactory): void {
  describe(`TaskQueue contract: ${name}`, () => {
    let h: TaskQueueHarness;
    let q: TaskQueue;

    beforeEach(async () => {
      h = await factory();
      q = h.queue;
    });
    afterEach(async () => {
      await h.close();
    });

    it('is empty at first', async () => {
      expect(await q.size()).toBe(0);
      expect(await q.get()).toBeNull();
      expect(await q.getMany(5)).toEqual([]);
    });

    it('returns the highest priority first', async () => {
      const entries = [e('p5', 5), e('p1000', 1000), e('p0', 0), e('p500', 500), e('p999', 999), e('p1', 1)];
      for (const entry of entries) await q.put(entry);
      expect(await drain(q)).toEqual(['p1000', 'p999', 'p500', 'p5', 'p1', 'p0']);
    });

    it('is FIFO within a priority, at both ends of the range', async () => {
      // Names in reverse lexicographic order: an order that fell back to the member name fails.
      const ids = Array.from({ length: 40 }, (_, i) => `t${String(99 - i).padStart(2, '0')}`);
      for (const [i, id] of ids.entries()) await q.put(e(id, i % 2 === 0 ? 0 : 1000));
      const top = ids.filter((_, i) => i % 2 === 1);
      const bottom = ids.filter((_, i) => i % 2 === 0);
      expect(await drain(q)).toEqual([...top, ...bottom]);
    });

    it('keeps FIFO across putMany batches and single puts', async () => {
      const batches = [
        [e('a1', 10), e('a2', 10), e('hi1', 20), e('a3', 10)],
        [e('b1', 10), e('lo1', 1), e('b2', 10)],
      ];
      await q.putMany(batches[0]!);
      await q.put(e('c1', 10));
      await q.putMany(batches[1]!);
      await q.put(e('hi2', 20));
      expect(await drain(q)).toEqual(['hi1', 'hi2', 'a1', 'a2', 'a3', 'c1', 'b1', 'b2', 'lo1']);
    });

    it('keeps the order of a large putMany', async () => {
      const entries = Array.from({ length: 2_500 }, (_, i) => e(`big-${i}`, (i * 7) % 5));
      await q.putMany(entries);
      expect(await q.size()).toBe(2_500);
      expect(await drain(q, 100)).toEqual(expectedOrder(entries));
    });

    it('put is idempotent: a queued task keeps its place and is counted once', async () => {
      await q.putMany([e('a', 1), e('b', 1), e('c', 1)]);
      await q.put(e('a', 1000));
      await q.putMany([e('b', 1000), e('d', 1), e('d', 1000)]);
      expect(await q.size()).toBe(4);
      expect(await drain(q)).toEqual(['a', 'b', 'c', 'd']);
    });

    it('putMany with no entries is a no-op', async () => {
      await q.putMany([]);
      expect(await q.size()).toBe(0);
    });

    it('remove takes a task out, and a removed task put again goes to the back', async () => {
      await q.putMany([e('a', 5), e('b', 5), e('c', 5), e('x', 9)]);
      expect(await q.remove('b')).toBe(true);
      expect(await q.remove('b')).toBe(false);
      expect(await q.remove('never-queued')).toBe(false);
      expect(await q.remove('x')).toBe(true);
      expect(await q.size()).toBe(2);
      await q.put(e('b', 5));
      await q.put(e('a', 5));
      expect(await drain(q)).toEqual(['a', 'c', 'b']);
    });

    it('keeps the order after removes anywhere in the queue', async () => {
      let seed = 12345;
      const next = (): number => (seed = (seed * 1_103_515_245 + 12_345) % 2_147_483_648);
      const entries = Array.from({ length: 600 }, (_, i) => e(`m${i}`, next() % 1_001));
      await q.putMany(entries.slice(0, 300));
      for (const entry of entries.slice(300)) await q.put(entry);
      const removed = new Set(entries.filter(() => next() % 3 === 0).map((x) => x.taskId));
      for (const id of removed) expect(await q.remove(id)).toBe(true);
      expect(await q.size()).toBe(600 - removed.size);
      expect(await drain(q, 50)).toEqual(expectedOrder(entries).filter((id) => !removed.has(id)));
    });

    it('size follows puts, gets and removes', async () => {
      await q.putMany([e('a', 1), e('b', 2), e('c', 3)]);
      expect(await q.size()).toBe(3);
      await q.get();
      expect(await q.size()).toBe(2);
      await q.remove('a');
      expect(await q.size()).toBe(1);
      await q.getMany(10);
      expect(await q.size()).toBe(0);
    });

    it('getMany returns up to count ids in queue order', async () => {
      const entries = Array.from({ length: 10 }, (_, i) => e(`g${i}`, i % 3));
      await q.putMany(entries);
      const order = expectedOrder(entries);
      expect(await q.getMany(4)).toEqual(order.slice(0, 4));
      expect(await q.getMany(0)).toEqual([]);
      expect(await q.get()).toBe(order[4]);
      expect(await q.getMany(100)).toEqual(order.slice(5));
      expect(await q.getMany(3)).toEqual([]);
    });

    it('rejects bad priorities, ids and counts with ValidationError and queues nothing', async () => {
      for (const priority of [-1, 1001, 1.5, Number.NaN]) {
        await expect(q.put(e('bad', priority))).rejects.toBeInstanceOf(ValidationError);
      }
      await expect(q.put(e('', 1))).rejects.toBeInstanceOf(ValidationError);
      await expect(q.putMany([e('ok', 1), e('bad', 2000)])).rejects.toBeInstanceOf(ValidationError);
      await expect(q.rebuild([e('ok', 1), e('bad', -5)])).rejects.toBeInstanceOf(ValidationError);
      for (const count of [-1, 1.5, Number.NaN]) {
        await expect(q.getMany(count)).rejects.toBeInstanceOf(ValidationError);
      }
      expect(await q.size()).toBe(0);
    });

    it('hands every task to exactly one of two clients popping concurrently', async () => {
      const total = 10_000;
      const ids = Array.from({ length: total }, (_, i) => `c-${i}`);
      await q.putMany(ids.map((id, i) => e(id, i % 11)));
      const other = await h.connectAnother();
      const loop = async (pop: () => Promise<string[]>, into: string[]): Promise<void> => {
        for (;;) {
          const got = await pop();
          if (got.length === 0) return;
          into.push(...got);
        }
      };
      const byFirst: string[] = [];
      const bySecond: string[] = [];
      const single = async (): Promise<string[]> => {
        const id = await q.get();
        return id === null ? [] : [id];
      };
      await Promise.all([
        ...Array.from({ length: 4 }, () => loop(single, byFirst)),
        ...Array.from({ length: 4 }, () => loop(() => other.getMany(7), bySecond)),
      ]);
      const all = [...byFirst, ...bySecond];
      expect(all).toHaveLength(total);
      expect(new Set(all).size).toBe(total);
      expect(new Set(all)).toEqual(new Set(ids));
      expect(await q.size()).toBe(0);
    });

    it('rebuild replaces stale content with exactly the given entries, once each', async () => {
      await q.putMany([e('stale1', 1000), e('a', 1), e('stale2', 0)]);
      await q.rebuild([e('a', 5), e('b', 10), e('c', 5), e('a', 1000), e('b', 0)]);
      expect(await q.size()).toBe(3);
      expect(await drain(q)).toEqual(['b', 'a', 'c']);
    });

    it('rebuild refills a queue that lost everything, and later puts queue behind it', async () => {
      await q.putMany([e('x', 3), e('y', 3)]);
      const restarted = await h.loseEverything();
      expect(await restarted.size()).toBe(0);
      const entries = [e('r1', 3), e('r2', 7), e('r3', 3), e('x', 3)];
      await restarted.rebuild(entries);
      await restarted.put(e('late', 3));
      await restarted.put(e('r1', 1000));
      expect(await restarted.size()).toBe(5);
      expect(await drain(restarted)).toEqual(['r2', 'r1', 'r3', 'x', 'late']);
    });

    it('rebuild with no entries empties the queue', async () => {
      await q.putMany([e('a', 1), e('b', 2)]);
      await q.rebuild([]);
      expect(await q.size()).toBe(0);
      expect(await q.get()).toBeNull();
    });

    it('rebuild of many entries keeps each once, in order', async () => {
      const entries = Array.from({ length: 25_000 }, (_, i) => e(`rb-${i % 24_000}`, (i * 13) % 4));
      await q.putMany([e('stale', 1000), e('rb-5', 1000)]);
      await q.rebuild(entries);
      expect(await q.size()).toBe(24_000);
      expect(await drain(q, 1_000)).toEqual(expectedOrder(entries));
    });

    it('a client sees the rebuilt content as soon as rebuild resolves', async () => {
      const other = await h.connectAnother();
      await other.putMany([e('old', 1)]);
      await q.rebuild([e('new1', 1), e('new2', 2)]);
      expect(await other.size()).toBe(2);
      expect(await other.getMany(10)).toEqual(['new2', 'new1']);
    });
  });
}
