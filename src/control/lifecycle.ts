import { IllegalTransitionError } from '../errors.js';
import { BUDGET_EXHAUSTED } from '../domain/project.js';
import type { BudgetLevel } from '../domain/messages.js';
import type { ProjectRecord } from '../ports/project-store.js';
import type { ProjectBudget } from '../ports/commit.js';
import type { ProjectEvent, ProjectReaction } from '../machines/project-machine.js';
import { isFinalProject } from '../machines/project-machine.js';
import type { ProjectEvents, ProjectStep } from '../actors/project-actor.js';
import type { Core } from '../orchestrator/core.js';

/** The reactions performed by other use cases (given by the orchestrator that builds them all). */
export interface ProjectStepHooks {
  /** The budget level rose: the budget status is published at once (budget/). */
  announceBudget(projectId: string, level: BudgetLevel): Promise<void>;
  /** A reaction of an approval request: announce, remind, expire, apply the decision (approvals/). */
  approval(step: ProjectStep, reaction: Extract<ProjectReaction, { approvalId: string }>): Promise<void>;
  /** The project is active again: READY tasks back in the queue, runnable PENDING ones promoted (control/). */
  resumeWork(projectId: string): Promise<void>;
  /** The project was cancelled: every non-final task is cancelled with the reason (control/). */
  cancelWork(projectId: string, reason: string): Promise<void>;
}

/** Publishes a project's state on the projects subject (a reaction of a step that changed it). */
export async function announceProjectState(core: Pick<Core, 'bus' | 'logger'>, record: ProjectRecord): Promise<void> {
  if (record.state === 'paused' && record.pausedReason === BUDGET_EXHAUSTED) {
    core.logger.warn({ projectId: record.projectId, spent: record.spent, reserved: record.reserved, limit: record.budgetLimit }, 'budget exhausted: project paused');
  }
  await core.bus.publish({ kind: 'project', body: { projectId: record.projectId, state: record.state, reason: record.pausedReason } });
}

/**
 * The amounts as a write returned them, taken by the project's machine: a step only when
 * they raise the budget level or go over the limit (decided without a read on the held
 * snapshot; across processes one commits the step, so each crossing is announced once).
 * Its reactions (the level, and a pause, announced) are the budget checker's to perform.
 */
export async function budgetStep(core: Pick<Core, 'projectActors'>, projectId: string, budget: ProjectBudget): Promise<ProjectStep | null> {
  const actor = await core.projectActors.load(projectId);
  const step = await actor.noteBudget(budget);
  // A project that is over keeps no actor (it was loaded for its remaining tasks' amounts).
  if (isFinalProject(actor.snapshot)) core.projectActors.drop(projectId);
  return step;
}

/**
 * The project machine's steps, decide → commit → react: the project actor decides the
 * events on the project's row (the machine's pure `transition()`) and commits the step — the
 * snapshot with a compare-and-set on the row's version, and the approval rows it changes,
 * in one transaction — then the reactions the step returned are performed here, in order.
 * Every change of a project goes through here: a user's pause, resume, cancel or new limit,
 * a budget that ran out, an approval request, decision or expiry, the checkpoint or event
 * that completes it. A reaction that fails does not undo the step nor stop the others; the
 * first failure is thrown once all have been tried (a redelivered decision applies its
 * effect again; the sweeps find the rest).
 */
export class ProjectLifecycle {
  constructor(
    private readonly core: Core,
    private readonly hooks: ProjectStepHooks,
  ) {}

  /** One step of the project's machine, durable, then its reactions. A refused event throws (typed) and changes nothing. */
  async step(projectId: string, events: ProjectEvents): Promise<ProjectStep> {
    const actor = await this.core.projectActors.load(projectId);
    const step = await actor.send(events);
    // Requests this step decided (a decision, or an expiry's policy): how long each waited.
    for (const a of step.approvals) {
      if (a.status !== 'pending' && a.decidedAt) this.core.metrics.approvalDecided(a.status, a.decidedAt.getTime() - a.requestedAt.getTime());
    }
    await this.react(step);
    return step;
  }

  /** One project event; an illegal one throws IllegalTransitionError. The row after it. */
  async send(projectId: string, event: ProjectEvent): Promise<ProjectRecord> {
    return (await this.step(projectId, event)).record;
  }

  /** The project's work is done: completed (once; a second completion changes nothing). */
  async complete(projectId: string): Promise<void> {
    try {
      await this.send(projectId, { type: 'COMPLETE' });
    } catch (err) {
      if (!(err instanceof IllegalTransitionError)) throw err;
    }
  }

  /**
   * A task failed for good (its dependents cancelled): the project is reported `failed`
   * with the reason, and starts nothing new until it is retried. A project that is over
   * stays as it is.
   */
  async fail(projectId: string, reason: string): Promise<void> {
    try {
      await this.send(projectId, { type: 'FAIL', reason });
    } catch (err) {
      if (!(err instanceof IllegalTransitionError)) throw err;
    }
  }

  /** A reservation did not fit: the budget is exhausted, and the project paused with reason budget_exhausted (once). */
  async pauseForBudget(projectId: string): Promise<void> {
    try {
      await this.send(projectId, { type: 'RESERVATION_REFUSED' });
    } catch (err) {
      if (!(err instanceof IllegalTransitionError)) throw err;
    }
  }

  private async react(step: ProjectStep): Promise<void> {
    const { core } = this;
    const { projectId } = step;
    let failure: unknown;
    for (const reaction of step.reactions) {
      try {
        switch (reaction.type) {
          case 'announceState':
            await announceProjectState(core, step.record);
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
