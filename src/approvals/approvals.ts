import { ApprovalError, BudgetExceededError, IllegalTransitionError, ValidationError, isOrchestratorError } from '../errors.js';
import { acceptsWork } from '../domain/project.js';
import type { ApprovalDecided } from '../domain/messages.js';
import type { ApprovalRecord } from '../ports/project-store.js';
import type { ProjectStep } from '../actors/project-actor.js';
import { requestOf } from '../actors/project-snapshot.js';
import { TIMEOUT_DECIDER, type ProjectReaction } from '../machines/project-machine.js';
import type { BudgetChecker } from '../budget/budget-checker.js';
import { reserveFor } from '../budget/effects.js';
import type { Cancellation } from '../control/cancellation.js';
import type { ProjectLifecycle } from '../control/lifecycle.js';
import { revisionEventId, type Ingest } from '../ingest/ingest.js';
import { dependencyStates } from '../promotion/dependencies.js';
import type { Promotion } from '../promotion/promotion.js';
import type { TaskScheduler } from '../orchestrator/scheduler.js';
import type { Core } from '../orchestrator/core.js';
import { sendAndPublish } from '../reactions/statuses.js';
import { checkpointEvent, requestBody } from './request.js';

export { checkpointEvent, pendingView, requestBody, summarize } from './request.js';

export { TIMEOUT_DECIDER };

/** A decision whose effect failed after its commit is applied again by the sweep, up to this many tries, then dead-lettered. */
export const APPLY_TRIES = 5;
/** How long the sweep waits, after a failed try, before it applies a decision again (doubling, at most a minute). */
const APPLY_RETRY_MS = 1_000;
const APPLY_RETRY_MAX_MS = 60_000;

/**
 * Human approvals at checkpoints. Each request's lifecycle (requested, reminded, then
 * approved, rejected or expired, the timeout policy included) is the project machine's: a
 * request, a decision and an expiry are steps of the project's actor (ProjectLifecycle),
 * committed with a compare-and-set on the project row together with the approval row
 * (pending → decided), so a double approval, or an approval racing the timeout, on one
 * process or several, has exactly one outcome. The steps' approval reactions are
 * performed here (`react`): the announcements, and the decision's effect on the tasks,
 * re-applied safely after a crash (`recover`), on a redelivered decision, or by the sweep
 * when it failed after the commit. A decision whose effect could not be applied (shots a
 * preview does not have, a revision over MAX_TASKS_PER_EVENT) is refused before it is
 * committed, with a ValidationError naming why; nothing changes.
 */
export class ApprovalManager {
  /** Decisions committed whose effect failed here: tries so far, when to try again, the shots named. */
  private readonly unapplied = new Map<string, { tries: number; nextAt: number; shots: readonly number[] | undefined }>();

  constructor(
    private readonly core: Core,
    private readonly budget: BudgetChecker,
    private readonly scheduler: TaskScheduler,
    private readonly promotion: Promotion,
    private readonly cancellation: Cancellation,
    private readonly lifecycle: ProjectLifecycle,
    private readonly ingest: Ingest,
  ) {}

  async decide(projectId: string, decision: ApprovalDecided): Promise<ApprovalRecord> {
    const existing = await this.core.projects.getApproval(decision.approvalId);
    if (!existing || existing.projectId !== projectId) {
      throw new ApprovalError(`approval ${decision.approvalId} does not exist in project ${projectId}`);
    }
    // The same decision delivered again (a redelivery after a crash): its effect is applied
    // again, which changes nothing when it had been applied in full.
    if (existing.status === decision.decision && existing.decidedBy === decision.by) {
      await this.apply(existing, decision.shots);
      return existing;
    }
    // Refused before the commit when its effect could not be applied (an open request only:
    // a decided one is refused by the machine, with ApprovalError).
    if (existing.status === 'pending') this.check(existing, decision);
    const step = await this.lifecycle.step(projectId, [
      // A request the machine has not taken yet (its step follows its event's commit).
      requestOf(existing),
      {
        type: 'DECIDE',
        approvalId: decision.approvalId,
        decision: decision.decision,
        by: decision.by,
        comment: decision.comment ?? null,
        at: this.core.clock.now(),
        ...(decision.shots ? { shots: [...decision.shots] } : {}),
      },
    ]);
    return step.approvals.find((a) => a.approvalId === decision.approvalId) ?? existing;
  }

  /**
   * A decision checked against its request before it is committed: an approval names no
   * shots; a rejection's revision must be one the pipeline can plan (its shots among the
   * checkpoint's, within MAX_TASKS_PER_EVENT). Throws ValidationError, naming the request.
   */
  private check(approval: ApprovalRecord, decision: ApprovalDecided): void {
    const refuse = (err: ValidationError) =>
      new ValidationError(`decision ${decision.decision} on ${approval.approvalId} (${approval.checkpoint}) refused, nothing changed: ${err.message}`, [], { cause: err });
    if (decision.decision === 'approved') {
      if (decision.shots !== undefined) throw refuse(new ValidationError('an approval names no shots', [`shots: given ${JSON.stringify(decision.shots)}; name shots with a rejection`]));
      return;
    }
    try {
      this.core.mapper.mapRejection(checkpointEvent(approval), { comment: decision.comment ?? '', ...(decision.shots ? { shots: decision.shots } : {}) });
    } catch (err) {
      if (err instanceof ValidationError) throw refuse(err);
      throw err;
    }
  }

  /**
   * Expires every pending request past its expiry: a step each, whose outcome is the
   * timeout policy's; then applies again the decisions whose effect failed. One request's
   * failure is logged and stops neither the others' nor other projects'.
   */
  async sweepExpired(): Promise<void> {
    const now = this.core.clock.now();
    for (const approval of await this.core.projects.listExpiredApprovals(new Date(now), 100)) {
      try {
        await this.lifecycle.step(approval.projectId, [requestOf(approval), { type: 'EXPIRE', approvalId: approval.approvalId, at: now }]);
      } catch (err) {
        // A decision (or another process's sweep) won the race: nothing to do.
        if (err instanceof ApprovalError) continue;
        // The step is durable or refused; a failed effect is tried again below (unapplied).
        this.core.logger.warn({ err, approvalId: approval.approvalId, projectId: approval.projectId }, 'the expiry of an approval request failed; the sweep goes on');
      }
    }
    await this.sweepUnapplied(now);
  }

  /** The decisions committed whose effect failed, applied again with back-off; dead-lettered with the reason when it keeps failing. */
  private async sweepUnapplied(now: number): Promise<void> {
    const { core } = this;
    for (const [approvalId, entry] of [...this.unapplied]) {
      if (entry.nextAt > now) continue;
      let approval: ApprovalRecord | null = null;
      try {
        approval = await core.projects.getApproval(approvalId);
        if (approval) await this.apply(approval, entry.shots);
        this.unapplied.delete(approvalId);
      } catch (err) {
        const tries = entry.tries + 1;
        const permanent = isOrchestratorError(err) && !err.retryable;
        // The request unreadable (the database away): tried again, for as long as it takes.
        if (!approval || (!permanent && tries < APPLY_TRIES)) {
          this.unapplied.set(approvalId, { ...entry, tries, nextAt: now + Math.min(APPLY_RETRY_MS * 2 ** tries, APPLY_RETRY_MAX_MS) });
          core.logger.warn({ err, approvalId, tries }, 'applying an approval decision failed; tried again later');
          continue;
        }
        this.unapplied.delete(approvalId);
        const reason = `the ${approval.status} decision on ${approvalId} (${approval.checkpoint}) could not be applied: ${err instanceof Error ? err.message : String(err)}`;
        core.logger.error({ err, approvalId, projectId: approval.projectId, tries }, 'approval decision dead-lettered');
        await core.deadLetters
          .record({ taskId: approvalId, projectId: approval.projectId, reason, lastError: reason, attempts: tries, at: new Date(now) })
          .catch((e: unknown) => core.logger.error({ err: e, approvalId }, 'could not record the dead letter of an approval decision'));
        // The checkpoint's work will not go on: the project is reported failed with the reason.
        await this.lifecycle.fail(approval.projectId, reason).catch((e: unknown) => core.logger.error({ err: e, approvalId }, 'could not report the project failed'));
      }
    }
  }

  /** Applies a committed decision; a failure is left to the sweep (and thrown, for the step's log). */
  private async applyOrRetry(approval: ApprovalRecord, shots?: readonly number[]): Promise<void> {
    try {
      await this.apply(approval, shots);
    } catch (err) {
      if (!this.unapplied.has(approval.approvalId)) {
        this.unapplied.set(approval.approvalId, { tries: 1, nextAt: this.core.clock.now() + APPLY_RETRY_MS, shots });
      }
      throw err;
    }
  }

  /** How many shots a rejection of this request may name (null: none). */
  shotCount(approval: ApprovalRecord): number | null {
    return this.core.mapper.shotCount(checkpointEvent(approval));
  }

  /** Announces a request again (at start: a crash may have come between storing and publishing it). */
  announce(approval: ApprovalRecord): Promise<void> {
    return this.core.bus.publish({ kind: 'approval_requested', body: requestBody(approval, this.shotCount(approval)) });
  }

  /** Performs an approval reaction of a committed project step. */
  async react(step: ProjectStep, reaction: Extract<ProjectReaction, { approvalId: string }>): Promise<void> {
    const { core } = this;
    const approval = step.approvals.find((a) => a.approvalId === reaction.approvalId) ?? (await core.projects.getApproval(reaction.approvalId));
    if (!approval) throw new ApprovalError(`approval ${reaction.approvalId} does not exist`);
    switch (reaction.type) {
      case 'announceRequest':
        return core.bus.publish({ kind: 'approval_requested', body: requestBody(approval, this.shotCount(approval)) });
      case 'announceReminder':
        return core.bus.publish({ kind: 'approval_requested', body: requestBody(approval, this.shotCount(approval), true) });
      case 'announceExpiry':
        return core.bus.publish({
          kind: 'approval_expired',
          body: { approvalId: approval.approvalId, projectId: approval.projectId, checkpoint: approval.checkpoint, policy: reaction.policy, at: new Date(core.clock.now()).toISOString() },
        });
      case 'applyApproval':
        return this.applyOrRetry(approval);
      case 'applyRejection':
        return this.applyOrRetry(approval, reaction.shots);
    }
  }

  /** Re-applies decisions whose effect a crash may have interrupted. */
  async recover(projectId: string): Promise<void> {
    for (const approval of await this.core.projects.listApprovals(projectId)) {
      if (approval.status === 'pending') continue;
      const tasks = await this.core.tasks.getTasks(approval.taskIds);
      // An approved checkpoint that completes the project (it has no tasks) is re-applied
      // too: only this project is open, so its completion was interrupted.
      const completes = approval.status === 'approved' && this.core.mapper.completesProject(approval.checkpoint);
      // A rejection whose revision was never created (its effect failed or was cut short
      // after the tasks were cancelled): applied again. The shots it named are not kept
      // with the request, so a preview's revision then redoes every shot.
      const revised = approval.status !== 'rejected' || (await this.core.projects.isEventProcessed(revisionEventId(approval)));
      if (tasks.some((t) => t.status === 'WAITING_APPROVAL') || !revised || completes) {
        try {
          await this.apply(approval);
        } catch (err) {
          // Left to the sweep: one decision does not stop the start, nor the other projects.
          this.unapplied.set(approval.approvalId, { tries: 1, nextAt: this.core.clock.now() + APPLY_RETRY_MS, shots: undefined });
          this.core.logger.warn({ err, approvalId: approval.approvalId, projectId }, 'a decision could not be applied again at start; the sweep tries again');
        }
      }
    }
  }

  private async apply(approval: ApprovalRecord, shots?: readonly number[]): Promise<void> {
    // A request that expired unanswered (its project is over) has no effect.
    if (approval.status === 'expired' || approval.status === 'pending') return;
    if (approval.status === 'approved') {
      for (const taskId of approval.taskIds) await this.approve(taskId);
      if (this.core.mapper.completesProject(approval.checkpoint)) await this.lifecycle.complete(approval.projectId);
      return;
    }
    const reason = `rejected at ${approval.checkpoint}${approval.comment ? `: ${approval.comment}` : ''}`;
    for (const taskId of approval.taskIds) {
      const actor = await this.core.registry.get(taskId);
      if (actor.status !== 'WAITING_APPROVAL') continue;
      try {
        await sendAndPublish(this.core, taskId, { type: 'REJECT', at: this.core.clock.now(), reason });
      } catch (err) {
        if (!(err instanceof IllegalTransitionError)) throw err;
      }
      await this.cancellation.cancelDependents(taskId, reason);
    }
    const revision = this.core.mapper.mapRejection(checkpointEvent(approval), { comment: approval.comment ?? '', ...(shots ? { shots: [...shots] } : {}) });
    await this.ingest.revision(approval, revision);
  }

  /** Approves a task waiting at a checkpoint: READY when it can run now, else PENDING. */
  private async approve(taskId: string): Promise<void> {
    const { core } = this;
    const actor = (await core.registry.refresh([taskId])).get(taskId);
    if (actor?.status !== 'WAITING_APPROVAL') return;
    const record = await core.tasks.getTask(taskId);
    const deps = record ? (await dependencyStates(core.tasks, [record])).get(taskId)! : { met: false, broken: null };
    const project = await core.projects.getProject(actor.projectId);
    const now = core.clock.now();
    if (deps.met && acceptsWork(project?.state)) {
      try {
        const budget = reserveFor(actor, core.config.budget.checkEnabled);
        await sendAndPublish(core, taskId, { type: 'APPROVE', at: now, dependenciesMet: true }, { budget });
        await core.queue.put({ taskId: actor.taskId, priority: actor.priority });
        this.scheduler.wake();
        await this.budget.afterChange(actor.projectId, false);
        return;
      } catch (err) {
        if (!(err instanceof BudgetExceededError)) throw err;
        await this.lifecycle.pauseForBudget(actor.projectId);
      }
    }
    await sendAndPublish(core, taskId, { type: 'APPROVE', at: now, dependenciesMet: false });
    if (deps.broken) await this.cancellation.cancelTask(taskId, deps.broken);
    // A dependency may have completed since it was read above, its result looking for
    // dependents to push before this write made the task PENDING: checked again after it.
    else if (!deps.met) await this.promotion.promoteMany([taskId]);
  }
}
