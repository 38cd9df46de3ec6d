import type { BudgetChecker } from '../budget/budget-checker.js';
import { releaseFor } from '../budget/effects.js';
import type { TaskScheduler } from '../orchestrator/scheduler.js';
import type { Core } from '../orchestrator/core.js';
import { sendAndPublish } from '../reactions/statuses.js';

/**
 * Cancellation, in cascade: a task (any non-final state) is cancelled on its fresh row,
 * its reservation released, its slot and lease freed, then its dependents are cancelled
 * with the reason. Used by a project's cancel, a rejected checkpoint, a dependency that
 * failed for good, and a dependency found broken at promotion.
 */
export class Cancellation {
  constructor(
    private readonly core: Core,
    private readonly budget: BudgetChecker,
    private readonly scheduler: TaskScheduler,
  ) {}

  /** Cancels a task and, in cascade, its dependents; a final task is left as it is. */
  async cancelTask(taskId: string, reason: string): Promise<void> {
    const actor = (await this.core.registry.refresh([taskId])).get(taskId);
    if (!actor || actor.terminal) return;
    const before = actor.status;
    const held = before === 'READY' || before === 'RUNNING';
    await sendAndPublish(this.core, taskId, { type: 'CANCEL', at: this.core.clock.now(), reason }, held ? { budget: releaseFor(actor, 0) } : {});
    if (before === 'READY') await this.core.queue.remove(taskId);
    if (before === 'RUNNING') await this.scheduler.settled([taskId]);
    if (held) await this.budget.afterChange(actor.projectId, true);
    await this.cancelDependents(taskId, `dependency ${taskId} cancelled: ${reason}`);
  }

  /** Cancels the non-final dependents of a task (and theirs). */
  async cancelDependents(taskId: string, reason: string): Promise<void> {
    for (const dep of await this.core.tasks.listDependentsOf([taskId])) {
      if (dep.status === 'COMPLETED' || dep.status === 'CANCELLED') continue;
      await this.cancelTask(dep.taskId, reason);
    }
  }
}
