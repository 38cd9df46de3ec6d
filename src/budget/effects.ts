import type { TaskActor } from '../actors/task-actor.js';
import type { BudgetEffect } from '../ports/commit.js';

/**
 * The budget effects a task transition commits with it, on its project's row, in the
 * same statement: a reservation of the task's estimate when it becomes READY (refused
 * when enforced and it does not fit), and the release of that reservation, with the
 * actual spend, when it leaves RUNNING.
 */
export function reserveFor(actor: Pick<TaskActor, 'projectId' | 'estimatedCost'>, enforce: boolean): BudgetEffect {
  return { projectId: actor.projectId, reserve: actor.estimatedCost, enforce };
}

export function releaseFor(actor: Pick<TaskActor, 'projectId' | 'estimatedCost'>, spend: number): BudgetEffect {
  return { projectId: actor.projectId, release: actor.estimatedCost, spend, enforce: false };
}

/**
 * The effect to write with a transition, or undefined when it would change nothing: no
 * amount moves and nothing is checked (a task of no cost, without enforcement). Leaving
 * it out spares the statement its project-row work (about a sixth of a batched
 * completion's PostgreSQL time, measured) and the project's budget its follow-up: its
 * amounts did not move.
 */
export function effectOrNone(effect: BudgetEffect): BudgetEffect | undefined {
  const moves = (effect.reserve ?? 0) !== 0 || (effect.release ?? 0) !== 0 || (effect.spend ?? 0) !== 0;
  return moves || effect.enforce ? effect : undefined;
}

/** Send options carrying `effect`, or none when it changes nothing (see effectOrNone). */
export function budgetOptions(effect: BudgetEffect): { budget?: BudgetEffect } {
  const budget = effectOrNone(effect);
  return budget ? { budget } : {};
}
