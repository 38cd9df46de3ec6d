import { ApprovalError, BudgetExceededError, IllegalTransitionError } from '../errors.js';
import { acceptsWork } from '../domain/project.js';
import type { ApprovalDecided } from '../domain/messages.js';
import type { ApprovalRecord } from '../ports/project-store.js';
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

export const TIMEOUT_DECIDER = 'orchestrator:timeout';

/**
 * Human approvals at checkpoints. A decision is a compare-and-set on the approval row
 * (pending → decided), so a double approval, or an approval racing the timeout, has
 * exactly one effect; its effect on the tasks is then applied, and re-applied safely
 * after a crash (`recover`).
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
    // The same decision delivered again (a redelivery after a crash) has already had its effect.
    if (existing.status === decision.decision && existing.decidedBy === decision.by) return existing;
    const decided = await this.core.projects.decideApproval({
      approvalId: decision.approvalId,
      status: decision.decision,
      comment: decision.comment ?? null,
      by: decision.by,
      at: new Date(this.core.clock.now()),
    });
    this.core.projectActors.get(projectId)?.noteApproval(decided);
    await this.apply(decided, decision.shots);
    return decided;
  }

  /** Applies the expiry policy to every pending request past its expiry. */
  async sweepExpired(): Promise<void> {
    const now = this.core.clock.now();
    const policy = this.core.config.approval.timeoutPolicy;
    for (const approval of await this.core.projects.listExpiredApprovals(new Date(now), 100)) {
      try {
        if (policy === 'remind') {
          const expiresAt = new Date(now + this.core.config.approval.timeoutMs);
          if (!approval.expiresAt || !(await this.core.projects.extendApproval(approval.approvalId, approval.expiresAt, expiresAt))) continue;
          await this.core.bus.publish({ kind: 'approval_requested', body: requestBody({ ...approval, expiresAt }, true) });
        } else {
          const decided = await this.core.projects.decideApproval({
            approvalId: approval.approvalId,
            status: policy === 'approve' ? 'approved' : 'rejected',
            comment: 'approval request expired',
            by: TIMEOUT_DECIDER,
            at: new Date(now),
          });
          this.core.projectActors.get(decided.projectId)?.noteApproval(decided);
          await this.apply(decided);
        }
        await this.core.bus.publish({
          kind: 'approval_expired',
          body: { approvalId: approval.approvalId, projectId: approval.projectId, checkpoint: approval.checkpoint, policy, at: new Date(now).toISOString() },
        });
      } catch (err) {
        // A human decision won the race: nothing to do.
        if (!(err instanceof ApprovalError)) throw err;
      }
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
