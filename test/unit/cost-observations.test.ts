import { describe, expect, it } from 'vitest';
import { BudgetChecker, COST_EWMA_ALPHA, foldObservations } from '../../src/budget/budget-checker.js';
import { TaskTypeCatalog } from '../../src/domain/task-types.js';
import type { Core } from '../../src/orchestrator/core.js';

/** A BudgetChecker over a cost store whose writes the test releases (or fails) one at a time. */
function checker(options: { fail?: boolean } = {}) {
  const writes: { args: unknown[]; release: () => void }[] = [];
  const warnings: unknown[] = [];
  const core = {
    clock: { now: () => 1_000 },
    catalog: new TaskTypeCatalog(),
    logger: { warn: (...args: unknown[]) => warnings.push(args) },
    costs: {
      observe: (...args: unknown[]) =>
        new Promise<void>((resolve, reject) => writes.push({ args, release: () => (options.fail ? reject(new Error('db down')) : resolve()) })),
    },
  } as unknown as Core;
  return { budget: new BudgetChecker(core), writes, warnings };
}

const turn = () => new Promise<void>((resolve) => setImmediate(resolve));

describe('cost observations', () => {
  // Three samples (MIN_COST_SAMPLES): the observed mean is the estimate.
  it('change the estimate at once and are stored behind, one after another in order; flush() waits for them', async () => {
    const { budget, writes } = checker();
    budget.observe('UPSCALE_IMAGE', 'image_generator', 0.5, 2);
    budget.observe('UPSCALE_IMAGE', 'image_generator', 0.7, 1);
    expect(budget.estimateCost('UPSCALE_IMAGE', 'image_generator', {})).toBe(Math.round((0.5 + COST_EWMA_ALPHA * 0.2) * 10_000) / 10_000);
    await turn();
    expect(writes.map((w) => w.args)).toEqual([['UPSCALE_IMAGE', 'image_generator', 0.5, COST_EWMA_ALPHA, new Date(1_000), 2]]);
    let flushed = false;
    const flush = budget.flush().then(() => (flushed = true));
    writes[0]!.release();
    await turn();
    expect(writes[1]!.args).toEqual(['UPSCALE_IMAGE', 'image_generator', 0.7, COST_EWMA_ALPHA, new Date(1_000), 1]);
    expect(flushed).toBe(false);
    writes[1]!.release();
    await flush;
    expect(writes).toHaveLength(2);
  });

  it('a write that fails is logged, and neither throws nor stops the next ones', async () => {
    const { budget, writes, warnings } = checker({ fail: true });
    expect(() => budget.observe('EDIT_IMAGE', 'image_generator', 0.2)).not.toThrow();
    budget.observe('EDIT_IMAGE', 'image_generator', 0.3);
    await turn();
    writes[0]!.release();
    await turn();
    writes[1]!.release();
    await budget.flush();
    expect(warnings).toHaveLength(2);
    expect(warnings[0]).toMatchObject([{ taskType: 'EDIT_IMAGE', agent: 'image_generator' }, 'could not store a cost observation']);
  });
});

describe('foldObservations', () => {
  it('folds observations of one (type, agent) into one that moves the mean exactly as they do in turn', () => {
    const at = new Date(0);
    const list = [
      { taskType: 'T', agent: 'a', cost: 2, count: 1, at },
      { taskType: 'U', agent: 'a', cost: 9, count: 2, at },
      { taskType: 'T', agent: 'a', cost: 5, count: 3, at },
      { taskType: 'T', agent: 'a', cost: 1, count: 2, at },
    ];
    const step = (mean: number, cost: number, count: number) => mean + (1 - (1 - COST_EWMA_ALPHA) ** count) * (cost - mean);
    const folded = foldObservations(list);
    expect(folded.map((o) => [o.taskType, o.count])).toStrictEqual([['T', 6], ['U', 2]]);
    for (const start of [0, 3.5, 100]) {
      const inTurn = [list[0]!, list[2]!, list[3]!].reduce((mean, o) => step(mean, o.cost, o.count), start);
      expect(step(start, folded[0]!.cost, folded[0]!.count)).toBeCloseTo(inTurn, 10);
    }
  });
});
