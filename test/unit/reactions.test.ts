import { describe, expect, it } from 'vitest';
import { silentLogger } from '../../src/logger.js';
import { Reactions } from '../../src/reactions/reactions.js';

function gate(): { wait: Promise<void>; open: () => void } {
  let open!: () => void;
  const wait = new Promise<void>((resolve) => (open = resolve));
  return { wait, open };
}

describe('Reactions.runMerged', () => {
  it('folds consecutive reactions of one kind that wait for their turn into one, at the first one’s place', async () => {
    const reactions = new Reactions(silentLogger());
    const order: string[] = [];
    const busy = gate();
    void reactions.run('p', 'ingest', async () => {
      order.push('ingest-1');
      await busy.wait;
    });
    const merge = (waiting: number[], more: number[]) => void waiting.push(...more);
    const run = async (values: number[]) => void order.push(`results ${values.join(',')}`);
    const first = reactions.runMerged('p', 'results', [1], merge, run);
    const second = reactions.runMerged('p', 'results', [2], merge, run);
    expect(second).toBe(first);
    busy.open();
    await Promise.all([first, second]);
    expect(order).toEqual(['ingest-1', 'results 1,2']);
  });

  it('never merges across another reaction queued in between, nor into one that has started', async () => {
    const reactions = new Reactions(silentLogger());
    const order: string[] = [];
    const busy = gate();
    void reactions.run('p', 'ingest', async () => {
      await busy.wait;
    });
    const merge = (waiting: number[], more: number[]) => void waiting.push(...more);
    const started = gate();
    const hold = gate();
    const run = async (values: number[]) => {
      order.push(`results ${values.join(',')}`);
      if (values[0] === 1) {
        started.open();
        await hold.wait;
      }
    };
    const a = reactions.runMerged('p', 'results', [1], merge, run);
    void reactions.run('p', 'ingest', async () => void order.push('ingest-2'));
    const b = reactions.runMerged('p', 'results', [2], merge, run);
    expect(b).not.toBe(a);
    busy.open();
    await started.wait;
    // [1] runs; [2] waits behind ingest-2; [3] merges into [2], which has not started.
    const c = reactions.runMerged('p', 'results', [3], merge, run);
    expect(c).toBe(b);
    hold.open();
    await Promise.all([a, b, c]);
    expect(order).toEqual(['results 1', 'ingest-2', 'results 2,3']);
  });

  it('keeps projects apart', async () => {
    const reactions = new Reactions(silentLogger());
    const merge = (waiting: string[], more: string[]) => void waiting.push(...more);
    const seen: string[][] = [];
    const busy = gate();
    void reactions.run('p', 'x', () => busy.wait);
    void reactions.run('q', 'x', () => busy.wait);
    const p = reactions.runMerged('p', 'results', ['p1'], merge, async (v) => void seen.push(v));
    const q = reactions.runMerged('q', 'results', ['q1'], merge, async (v) => void seen.push(v));
    expect(q).not.toBe(p);
    busy.open();
    await reactions.idle();
    expect(seen.sort()).toEqual([['p1'], ['q1']]);
  });
});
