import { IllegalTransitionError, ProjectNotFoundError } from '../errors.js';
import type { BudgetStatus, ControlRequest, PendingApproval } from '../domain/messages.js';
import type { ProjectRecord } from '../ports/project-store.js';
import { checkpointEvent, pendingView } from '../approvals/request.js';
import type { BudgetChecker } from '../budget/budget-checker.js';
import type { Promotion } from '../promotion/promotion.js';
import type { TaskScheduler } from '../orchestrator/scheduler.js';
import type { Core } from '../orchestrator/core.js';
import type { ProjectRetry, RetryOutcome } from '../retries/project-retry.js';
import type { Cancellation } from './cancellation.js';
import type { ProjectLifecycle } from './lifecycle.js';

export interface ProjectStatus {
  project: ProjectRecord;
  budget: BudgetStatus;
  tasks: Partial<Record<string, number>>;
  /** The pending requests, as their announcements show them (counts and a bounded summary, not every task id). */
  pendingApprovals: PendingApproval[];
}

/**
 * Control of a project by its users (the control subject, the CLI, the API): pause,
 * resume, cancel, retry a failed project, set the budget, and its status. Each is a project-machine step
 * committed first (ProjectLifecycle); what follows — tasks queued again, promoted,
 * cancelled — is the step's reaction (`resumeWork`, `cancelWork`), whatever caused it:
 * a new limit resumes a project paused for its budget as a resume does.
 */
export class ProjectControl {
  constructor(
    private readonly core: Core,
    private readonly budget: BudgetChecker,
    private readonly scheduler: TaskScheduler,
    private readonly lifecycle: ProjectLifecycle,
    private readonly promotion: Promotion,
    private readonly cancellation: Cancellation,
    private readonly retries: ProjectRetry,
  ) {}

  /** `<prefix>.control.<projectId>` requests (validated); answers with the project's status. */
  async handle(projectId: string, request: ControlRequest): Promise<ProjectStatus> {
    switch (request.action) {
      case 'pause':
        await this.pause(projectId, request.reason);
        break;
      case 'resume':
        await this.resume(projectId);
        break;
      case 'cancel':
        await this.cancel(projectId, request.reason);
        break;
      case 'set_budget':
        await this.setBudget(projectId, request.limit);
        break;
      case 'retry':
        await this.retry(projectId);
        break;
      case 'status':
        break;
    }
    return this.status(projectId);
  }

  pause(projectId: string, reason = 'paused by user'): Promise<ProjectRecord> {
    return this.lifecycle.send(projectId, { type: 'PAUSE', reason });
  }

  /** Resumes dispatching: READY tasks go back in the queue, runnable PENDING ones are promoted (resumeWork). */
  resume(projectId: string): Promise<ProjectRecord> {
    return this.lifecycle.send(projectId, { type: 'RESUME' });
  }

  /** Cancels the project, then every non-final task of it with the reason (cancelWork). */
  cancel(projectId: string, reason = 'cancelled by user'): Promise<ProjectRecord> {
    return this.lifecycle.send(projectId, { type: 'CANCEL', reason });
  }

  /** Retries a failed project: its failed tasks and their cancelled dependents planned again, the project active (project-retry.ts). */
  retry(projectId: string): Promise<RetryOutcome> {
    return this.retries.retry(projectId);
  }

  /** Sets the budget limit (the machine's SET_LIMIT); a project paused for its budget resumes when the amounts fit. */
  async setBudget(projectId: string, limit: number | null): Promise<BudgetStatus> {
    await this.lifecycle.step(projectId, (row) => [{ type: 'SET_LIMIT', figures: { limit, spent: row.spent, reserved: row.reserved } }]);
    await this.budget.afterChange(projectId, true);
    return this.budget.getBudgetStatus(projectId);
  }

  /** The reaction of a step that made the project active again. */
  async resumeWork(projectId: string): Promise<void> {
    await this.promotion.promotePending(projectId);
    // After the state change: a READY task a scheduler popped (and put back or dropped)
    // while the project was paused is back in the queue.
    await this.scheduler.dispatcher.requeueReady(projectId);
    this.scheduler.wake();
  }

  /** The reaction of a step that cancelled the project: every non-final task cancelled with the reason. */
  async cancelWork(projectId: string, reason: string): Promise<void> {
    const tasks = await this.core.tasks.listByProject(projectId, ['PENDING', 'READY', 'RUNNING', 'WAITING_APPROVAL', 'FAILED']);
    for (const t of tasks) {
      await this.cancellation.cancelTask(t.taskId, `project cancelled: ${reason}`).catch((err) => {
        if (!(err instanceof IllegalTransitionError)) throw err;
      });
    }
  }

  async status(projectId: string): Promise<ProjectStatus> {
    const project = await this.core.projects.getProject(projectId);
    if (!project) throw new ProjectNotFoundError(projectId);
    return {
      project,
      budget: await this.budget.getBudgetStatus(projectId),
      tasks: await this.core.tasks.countByStatus(projectId),
      pendingApprovals: (await this.core.projects.listApprovals(projectId, 'pending')).map((a) => pendingView(a, this.core.mapper.shotCount(checkpointEvent(a)))),
    };
  }
}
