import { ApprovalError, IllegalTransitionError } from '../errors.js';
import type { ApprovalDecided } from '../domain/messages.js';
import type { ApprovalRecord, NewApproval } from '../ports/project-store.js';
import type { PlannedTask } from '../pipeline/event-mapper.js';
import type { ProjectStep } from '../actors/project-actor.js';
import { requestOf } from '../actors/project-snapshot.js';
import { TIMEOUT_DECIDER, type ProjectReaction } from '../machines/project-machine.js';
import type { Core } from './core.js';
import type { ProjectSteps } from './project-steps.js';
import type { TaskFlow } from './task-flow.js';

export interface ApprovalHooks {
  /** Creates the revision tasks of a rejection (idempotent by event id). */
  ingestRevision(approval: ApprovalRecord, tasks: PlannedTask[]): Promise<void>;
  /** The approved checkpoint completes the project. */
  completeProject(projectId: string): Promise<void>;
}

export { TIMEOUT_DECIDER };

/**
 * Human approvals at checkpoints. Each request's lifecycle (requested, reminded, then
 * approved, rejected or expired, the timeout policy included) is the project machine's: a
 * request, a decision and an expiry are steps of the project's actor, committed with a
 * compare-and-set on the project row together with the approval row (pending → decided),
 * so a double approval, or an approval racing the timeout, on one process or several, has
 * exactly one outcome. The step's reactions are performed here: the announcements, and
 * the decision's effect on the tasks, re-applied safely after a crash (`recover`) or on a
 * redelivered decision.
 */
export class ApprovalManager {
  constructor(
    private readonly core: Core,
    private readonly flow: TaskFlow,
    private readonly hooks: ApprovalHooks,
    private readonly steps: ProjectSteps,
  ) {}

  /** A checkpoint's request, just written with its event: the project machine takes it (and it is announced). */
  async requested(approval: NewApproval): Promise<void> {
    await this.steps.send(approval.projectId, [requestOf(approval)]);
  }

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
    const step = await this.steps.send(projectId, [
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
        await this.steps.send(approval.projectId, [requestOf(approval), { type: 'EXPIRE', approvalId: approval.approvalId, at: now }]);
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
      for (const taskId of approval.taskIds) await this.flow.approve(taskId);
      if (this.core.mapper.completesProject(approval.checkpoint)) await this.hooks.completeProject(approval.projectId);
      return;
    }
    const reason = `rejected at ${approval.checkpoint}${approval.comment ? `: ${approval.comment}` : ''}`;
    for (const taskId of approval.taskIds) {
      const actor = await this.core.registry.get(taskId);
      if (actor.status !== 'WAITING_APPROVAL') continue;
      try {
        await this.flow.send(taskId, { type: 'REJECT', at: this.core.clock.now(), reason });
      } catch (err) {
        if (!(err instanceof IllegalTransitionError)) throw err;
      }
      await this.flow.cancelDependents(taskId, reason);
    }
    const revision = this.core.mapper.mapRejection(
      { id: approval.eventId, type: approval.checkpoint, projectId: approval.projectId, payload: approval.summary, occurredAt: approval.requestedAt },
      { comment: approval.comment ?? '', ...(shots ? { shots: [...shots] } : {}) },
    );
    await this.hooks.ingestRevision(approval, revision);
  }
}

export function requestBody(approval: Pick<ApprovalRecord, 'approvalId' | 'projectId' | 'checkpoint' | 'summary' | 'taskIds' | 'expiresAt'>, reminder = false) {
  return {
    approvalId: approval.approvalId,
    projectId: approval.projectId,
    checkpoint: approval.checkpoint,
    summary: approval.summary,
    taskIds: approval.taskIds,
    expiresAt: approval.expiresAt ? approval.expiresAt.toISOString() : null,
    ...(reminder ? { reminder: true } : {}),
  };
}
