import { expect, it } from 'vitest';
import { ValidationError } from '../../src/errors.js';
import type { CostStatsStore } from '../../src/ports/cost-stats-store.js';
import { portContract, type StoresHarness } from './stores.fixtures.js';
import { at, type HarnessRef } from './task-store.fixtures.js';

/** Cost means per (task type, agent). */
function costStatsCases(harness: HarnessRef): void {
  const store = () => harness().costs;
  const client = (i: number): CostStatsStore => (i % 2 === 0 ? harness().costs : harness().peer.costs);

  it('folds actual costs into an exponentially weighted mean per (task type, agent)', async () => {
    for (const [i, cost] of [1, 2, 0.5].entries()) await store().observe('WRITE_SCRIPT', 'script_writer', cost, 0.3, at(i));
    // 1, then 1 + 0.3 * (2 - 1) = 1.3, then 1.3 + 0.3 * (0.5 - 1.3) = 1.06
    expect(await store().list()).toStrictEqual([{ taskType: 'WRITE_SCRIPT', agent: 'script_writer', ewma: 1.06, samples: 3 }]);

    const costs = [0.37, 1.234, 0.05, 2.5, 0];
    let mean = costs[0]!;
    for (const c of costs.slice(1)) mean += 0.25 * (c - mean);
    for (const c of costs) await store().observe('RENDER_SHOT', 'video_generator', c, 0.25, at(9));
    await store().observe('RENDER_SHOT', 'another_agent', 4.2, 0.25, at(9));
    const list = await store().list();
    expect(list.map((o) => [o.taskType, o.agent, o.samples])).toStrictEqual([
      ['RENDER_SHOT', 'another_agent', 1],
      ['RENDER_SHOT', 'video_generator', 5],
      ['WRITE_SCRIPT', 'script_writer', 3],
    ]);
    expect(list[0]!.ewma).toBe(4.2);
    expect(list[1]!.ewma).toBeCloseTo(mean, 5);

    await expect(store().observe('RENDER_SHOT', 'video_generator', -1, 0.25, at(9))).rejects.toBeInstanceOf(ValidationError);
    await expect(store().observe('RENDER_SHOT', 'video_generator', 1, 1.5, at(9))).rejects.toBeInstanceOf(ValidationError);
    expect(await store().list()).toStrictEqual(list);
  });

  it('counts every concurrent observation', async () => {
    await Promise.all(Array.from({ length: 20 }, (_, i) => client(i).observe('QA', 'qa_agent', 0.75, 0.3, at(i))));
    expect(await store().list()).toStrictEqual([{ taskType: 'QA', agent: 'qa_agent', ewma: 0.75, samples: 20 }]);
  });

  it('refuses a count that is not a positive integer, a cost that is not a number and names the table cannot hold, writing nothing', async () => {
    await store().observe('QA', 'qa_agent', 1, 0.3, at(0));
    const before = await store().list();
    for (const count of [0, -1, 1.5, Number.NaN]) {
      await expect(store().observe('QA', 'qa_agent', 1, 0.3, at(1), count)).rejects.toBeInstanceOf(ValidationError);
    }
    for (const cost of [Number.NaN, Number.POSITIVE_INFINITY]) {
      await expect(store().observe('QA', 'qa_agent', cost, 0.3, at(1))).rejects.toBeInstanceOf(ValidationError);
    }
    await expect(store().observe('QA', 'a'.repeat(101), 1, 0.3, at(1))).rejects.toBeInstanceOf(ValidationError);
    await expect(store().observe('Q'.repeat(51), 'qa_agent', 1, 0.3, at(1))).rejects.toBeInstanceOf(ValidationError);
    expect(await store().list()).toStrictEqual(before);
  });

  it('folds a batch of samples as that many single observations of the same cost', async () => {
    await store().observe('QA', 'batched', 2, 0.3, at(0));
    await store().observe('QA', 'batched', 0.5, 0.3, at(1), 4);
    await store().observe('QA', 'single', 2, 0.3, at(0));
    for (let i = 0; i < 4; i++) await store().observe('QA', 'single', 0.5, 0.3, at(1));
    const [batched, single] = await store().list();
    expect(batched).toMatchObject({ agent: 'batched', samples: 5 });
    expect(single).toMatchObject({ agent: 'single', samples: 5 });
    expect(batched!.ewma).toBeCloseTo(single!.ewma, 5);
  });
}

/** The behaviour every CostStatsStore must have (the harness's `costs` is the port under test). */
export function costStatsStoreContract(name: string, setup: () => Promise<StoresHarness>): void {
  portContract(`CostStatsStore contract: ${name}`, 'Asia/Kathmandu', setup, costStatsCases);
}
