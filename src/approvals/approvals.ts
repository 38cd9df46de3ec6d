import { ApprovalError, BudgetExceededError, IllegalTransitionError } from '../errors.js';
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
import type { Ingest } from '../ingest/ingest.js';
import { dependencyStates } from '../promotion/dependencies.js';
import type { Promotion } from '../promotion/promotion.js';
import type { TaskScheduler } from '../orchestrator/scheduler.js';
import type { Core } from '../orchestrator/core.js';
import { sendAndPublish } from '../reactions/statuses.js';
import { requestBody } from './request.js';

export { requestBody } from './request.js';

export { TIMEOUT_DECIDER };

/**
 * Human approvals at checkpoints. Each request's lifecycle (requested, reminded, then
 * approved, rejected or expired, the timeout policy included) is the project machine's: a
 * request, a decision and an expiry are steps of the project's actor (ProjectLifecycle),
 * committed with a compare-and-set on the project row together with the approval row
 * (pending → decided), so a double approval, or an approval racing the timeout, on one
 * process or several, has exactly one outcome. The steps' approval reactions are
 * performed here (`react`): the announcements, and the decision's effect on the tasks,
 * re-applied safely after a crash (`recover`) or on a redelivered decision.
 */
export class ApprovalManager {
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

  /** Expires every pending request past its expiry: a step each, whose outcome is the timeout policy's. */
  async sweepExpired(): Promise<void> {
    const now = this.core.clock.now();
    for (const approval of await this.core.projects.listExpiredApprovals(new Date(now), 100)) {
      try {
        await this.lifecycle.step(approval.projectId, [requestOf(approval), { type: 'EXPIRE', approvalId: approval.approvalId, at: now }]);
      } catch (err) {
        // A decision (or another process's sweep) won the race: nothing to do.
        if (!(err instanceof ApprovalError)) throw err;
      }
    }
  }

  /** Performs an approval reaction of a committed project step. */
  async react(step: ProjectStep, reaction: Extract<ProjectReaction, { approvalId: string }>): Promise<void> {
    const { core } = this;
    const approval = step.approvals.find((a) => a.approvalId === reaction.approvalId) ?? (await core.projects.getApproval(reaction.approvalId));
    if (!approval) throw new ApprovalError(`approval ${reaction.approvalId} does not exist`);
    switch (reaction.type) {
      case 'announceRequest':
        return core.bus.publish({ kind: 'approval_requested', body: requestBody(approval) });
      case 'announceReminder':
        return core.bus.publish({ kind: 'approval_requested', body: requestBody(approval, true) });
      case 'announceExpiry':
        return core.bus.publish({
          kind: 'approval_expired',
          body: { approvalId: approval.approvalId, projectId: approval.projectId, checkpoint: approval.checkpoint, policy: reaction.policy, at: new Date(core.clock.now()).toISOString() },
        });
      case 'applyApproval':
        return this.apply(approval);
      case 'applyRejection':
        return this.apply(approval, reaction.shots);
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
      if (tasks.some((t) => t.status === 'WAITING_APPROVAL') || (approval.status === 'rejected' && approval.taskIds.length === 0) || completes) {
        await this.apply(approval);
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
    const revision = this.core.mapper.mapRejection(
      { id: approval.eventId, type: approval.checkpoint, projectId: approval.projectId, payload: approval.summary, occurredAt: approval.requestedAt },
      { comment: approval.comment ?? '', ...(shots ? { shots: [...shots] } : {}) },
    );
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
