import type { BudgetLevel } from '../domain/messages.js';
import type { ProjectBudget } from '../ports/task-store.js';
import type { ProjectEvents, ProjectStep } from '../actors/project-actor.js';
import { BUDGET_EXHAUSTED, isFinalProject, type ProjectReaction } from '../machines/project-machine.js';
import type { Core } from './core.js';

/** The reactions performed elsewhere (approvals, budget status, the project's tasks). */
export interface ProjectStepHooks {
  /** The budget level rose: publish the budget status at once. */
  announceBudget(projectId: string, level: BudgetLevel): Promise<void>;
  /** A reaction of an approval request (announce, remind, expire, apply the decision). */
  approval(step: ProjectStep, reaction: Extract<ProjectReaction, { approvalId: string }>): Promise<void>;
  /** The project is active again: READY tasks back in the queue, runnable PENDING ones promoted. */
  resumeWork(projectId: string): Promise<void>;
  /** The project was cancelled: every non-final task is cancelled with the reason. */
  cancelWork(projectId: string, reason: string): Promise<void>;
}

/**
 * The project machine's use case, decide → commit → react: the project actor decides the
 * events on the project's row and commits the step (a compare-and-set on the row's
 * version, with the approval rows it changes); then the reactions the step returned are
 * performed, in order. A reaction that fails does not undo the step nor stop the others;
 * the first failure is thrown once all have been tried (a redelivered decision applies
 * its effect again, and the sweeps find the rest).
 */
export class ProjectSteps {
  constructor(
    private readonly core: Core,
    private readonly hooks: ProjectStepHooks,
  ) {}

  /** One step of the project's machine, durable, then its reactions. */
  async send(projectId: string, events: ProjectEvents): Promise<ProjectStep> {
    const actor = await this.core.projectActors.load(projectId);
    const step = await actor.send(events);
    await this.react(step);
    return step;
  }

  /**
   * The amounts as a write returned them: a step only when they raise the budget level
   * (decided without a read on the held snapshot; one warning per crossing across
   * processes, since only one commits the step).
   */
  async budget(projectId: string, budget: ProjectBudget): Promise<ProjectStep | null> {
    const actor = await this.core.projectActors.load(projectId);
    const step = await actor.noteBudget(budget);
    if (step) await this.react(step);
    else if (isFinalProject(actor.snapshot)) this.core.projectActors.drop(projectId);
    return step;
  }

  private async react(step: ProjectStep): Promise<void> {
    const { core } = this;
    const { projectId, record } = step;
    let failure: unknown;
    for (const reaction of step.reactions) {
      try {
        switch (reaction.type) {
          case 'announceState':
            if (record.state === 'paused' && record.pausedReason === BUDGET_EXHAUSTED) {
              core.logger.warn({ projectId, spent: record.spent, reserved: record.reserved, limit: record.budgetLimit }, 'budget exhausted: project paused');
            }
            await core.bus.publish({ kind: 'project', body: { projectId, state: record.state, reason: record.pausedReason } });
            break;
          case 'resumeWork':
            await this.hooks.resumeWork(projectId);
            break;
          case 'cancelWork':
            await this.hooks.cancelWork(projectId, step.after.context.reason ?? 'cancelled');
            break;
          case 'announceBudget':
            await this.hooks.announceBudget(projectId, reaction.level);
            break;
          default:
            await this.hooks.approval(step, reaction);
        }
      } catch (err) {
        core.logger.warn({ err, projectId, reaction: reaction.type }, 'a reaction of a project step failed');
        failure ??= err;
      }
    }
    // A project that is over keeps no actor; its remaining task actors finish on their own.
    if (isFinalProject(step.after)) core.projectActors.drop(projectId);
    if (failure !== undefined) throw failure;
  }
}
