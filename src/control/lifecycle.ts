import { IllegalTransitionError } from '../errors.js';
import { BUDGET_EXHAUSTED } from '../domain/project.js';
import type { ProjectRecord } from '../ports/project-store.js';
import type { ProjectEvent } from '../machines/project-machine.js';
import type { BudgetChecker } from '../budget/budget-checker.js';
import type { Core } from '../orchestrator/core.js';

/**
 * The project lifecycle: one event of the project machine, decided by the project actor
 * on the row, committed with a compare-and-set, then announced on the projects subject.
 * Every change of a project's state goes through here: a user's pause, resume or cancel,
 * a budget that ran out, the checkpoint or event that completes it.
 */
export class ProjectLifecycle {
  constructor(
    private readonly core: Core,
    private readonly budget: BudgetChecker,
  ) {}

  /** Decides and commits one project event; an illegal one throws IllegalTransitionError. */
  async send(projectId: string, event: ProjectEvent): Promise<ProjectRecord> {
    const actor = await this.core.projectActors.load(projectId);
    const row = await actor.send(event);
    await this.core.bus.publish({ kind: 'project', body: { projectId, state: row.state, reason: row.pausedReason } });
    // A final project actor has stopped; its remaining task actors finish on their own.
    if (row.state === 'completed' || row.state === 'cancelled') this.core.projectActors.drop(projectId);
    return row;
  }

  /** The project's work is done: completed (once; a second completion changes nothing). */
  async complete(projectId: string): Promise<void> {
    try {
      await this.send(projectId, { type: 'COMPLETE' });
    } catch (err) {
      if (!(err instanceof IllegalTransitionError)) throw err;
    }
  }

  /** A reservation did not fit: the project pauses with reason budget_exhausted (once). */
  async pauseForBudget(projectId: string): Promise<void> {
    try {
      const row = await this.send(projectId, { type: 'PAUSE', reason: BUDGET_EXHAUSTED });
      this.core.logger.warn({ projectId, spent: row.spent, reserved: row.reserved, limit: row.budgetLimit }, 'budget exhausted: project paused');
      await this.budget.afterChange(projectId, false);
    } catch (err) {
      if (!(err instanceof IllegalTransitionError)) throw err;
    }
  }
}
