import { describe, expect, it } from 'vitest';
import { budgetOptions, effectOrNone, releaseFor, reserveFor } from '../../src/budget/effects.js';

describe('budget effects written with a transition', () => {
  const free = { projectId: 'prj_a', estimatedCost: 0 };
  const costly = { projectId: 'prj_a', estimatedCost: 0.25 };

  it('an effect that moves no amount and checks nothing is not written', () => {
    expect(effectOrNone(releaseFor(free, 0))).toBeUndefined();
    expect(effectOrNone(reserveFor(free, false))).toBeUndefined();
    expect(budgetOptions(releaseFor(free, 0))).toStrictEqual({});
  });

  it('an enforced reservation is written even of nothing: it checks that the project takes work', () => {
    expect(effectOrNone(reserveFor(free, true))).toStrictEqual({ projectId: 'prj_a', reserve: 0, enforce: true });
  });

  it('an amount that moves is written: a reservation, its release, a spend', () => {
    expect(budgetOptions(reserveFor(costly, false))).toStrictEqual({ budget: { projectId: 'prj_a', reserve: 0.25, enforce: false } });
    expect(effectOrNone(releaseFor(costly, 0))).toStrictEqual({ projectId: 'prj_a', release: 0.25, spend: 0, enforce: false });
    expect(effectOrNone(releaseFor(free, 0.1))).toStrictEqual({ projectId: 'prj_a', release: 0, spend: 0.1, enforce: false });
  });
});
