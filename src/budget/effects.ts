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
