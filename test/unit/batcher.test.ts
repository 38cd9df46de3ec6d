import { describe, expect, it } from 'vitest';
import { Batcher } from '../../src/results/batcher.js';

interface Item {
  key: string;
  fail?: boolean;
}

/** A batch writer whose batches end when the test says so. */
function writer() {
  const batches: Item[][] = [];
  const ends: (() => void)[] = [];
  let active = 0;
  let maxActive = 0;
  const run = async (batch: Item[]): Promise<(Error | null)[]> => {
    batches.push(batch);
    active++;
    maxActive = Math.max(maxActive, active);
    await new Promise<void>((resolve) => ends.push(resolve));
    active--;
    return batch.map((i) => (i.fail ? new Error(`refused ${i.key}`) : null));
  };
  return { run, batches, ends, maxActive: () => maxActive };
}

const turn = () => new Promise<void>((resolve) => setImmediate(resolve));

describe('Batcher', () => {
  it('writes what is submitted in the same turn as one batch, and settles each item with its own outcome', async () => {
    const w = writer();
    const b = new Batcher(w.run, (i: Item) => i.key);
    const outcomes = [b.submit({ key: 'a' }), b.submit({ key: 'b', fail: true }), b.submit({ key: 'c' })].map((p) =>
      p.then(() => 'ok', (err: Error) => err.message),
    );
    await turn();
    expect(w.batches).toEqual([[{ key: 'a' }, { key: 'b', fail: true }, { key: 'c' }]]);
    w.ends.shift()!();
    expect(await Promise.all(outcomes)).toEqual(['ok', 'refused b', 'ok']);
  });

  it('one batch at a time by default: what comes meanwhile goes in the next, and an item of a key twice waits for a later batch', async () => {
    const w = writer();
    const b = new Batcher(w.run, (i: Item) => i.key);
    const first = b.submit({ key: 'a' });
    await turn();
    const later = [b.submit({ key: 'b' }), b.submit({ key: 'a' }), b.submit({ key: 'c' })];
    await turn();
    expect(w.batches).toHaveLength(1);
    w.ends.shift()!();
    await first;
    await turn();
    expect(w.batches[1]).toEqual([{ key: 'b' }, { key: 'a' }, { key: 'c' }]);
    w.ends.shift()!();
    await Promise.all(later);
    expect(w.maxActive()).toBe(1);
  });

  it('drain() resolves once everything submitted so far is written', async () => {
    const w = writer();
    const b = new Batcher(w.run, (i: Item) => i.key, 2);
    const items = ['a', 'b', 'c', 'd', 'e'].map((key) => b.submit({ key }));
    let drained = false;
    const drain = b.drain().then(() => (drained = true));
    for (let i = 0; i < 3; i++) {
      await turn();
      expect(drained).toBe(false);
      w.ends.shift()!();
    }
    await drain;
    await Promise.all(items);
    expect(w.batches.map((x) => x.length)).toEqual([2, 2, 1]);
    await b.drain();
  });
});
