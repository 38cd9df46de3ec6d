import { transition, type AnyActorRef } from 'xstate';
import type { Logger } from 'pino';
import { IllegalTransitionError, ProjectNotFoundError, VersionConflictError } from '../errors.js';
import type { ApprovalRecord, ProjectRecord, ProjectStore } from '../ports/project-store.js';
import type { Clock } from '../ports/clock.js';
import { projectMachine, projectStateOf, type ProjectEvent } from '../machines/project-machine.js';
import type { ActorSystem, ProjectActorRef } from './system.js';

export interface ProjectActorDeps {
  projects: ProjectStore;
  clock: Clock;
  logger: Logger;
  /** The actor system the project's actor is a child of (of its root). */
  system: ActorSystem;
}

/**
 * A project as a persisted XState actor. The row in PostgreSQL is the truth (several
 * orchestrator processes may act on one project), so each event is checked against the
 * row's current state, written with a compare-and-set on that state, and only then taken
 * by the live actor. Illegal events throw IllegalTransitionError and change nothing.
 */
export class ProjectActor {
  private readonly actor: ProjectActorRef;
  private queue: Promise<unknown> = Promise.resolve();

  private constructor(
    private row: ProjectRecord,
    private readonly deps: ProjectActorDeps,
  ) {
    this.actor = this.spawn(row);
  }

  static async load(projectId: string, deps: ProjectActorDeps): Promise<ProjectActor> {
    const row = await deps.projects.getProject(projectId);
    if (!row) throw new ProjectNotFoundError(projectId);
    const actor = new ProjectActor(row, deps);
    for (const approval of await deps.projects.listApprovals(projectId)) actor.noteApproval(approval);
    return actor;
  }

  /** Records the budget as written in SQL (spent, reserved, limit). */
  noteBudget(row: Pick<ProjectRecord, 'budgetLimit' | 'spent' | 'reserved'>): void {
    this.actor.send({ type: 'BUDGET', limit: row.budgetLimit, spent: row.spent, reserved: row.reserved });
  }

  /** Records an approval request or decision of one of the project's checkpoints. */
  noteApproval(approval: Pick<ApprovalRecord, 'approvalId' | 'checkpoint' | 'status'>): void {
    this.actor.send({ type: 'APPROVAL', approvalId: approval.approvalId, checkpoint: approval.checkpoint, status: approval.status });
  }

  get projectId(): string {
    return this.row.projectId;
  }

  /** The live actor: the parent of the project's task actors (the supervisor). */
  get ref(): AnyActorRef {
    return this.actor;
  }

  /** Stops a supervised task actor (evicted while not final). */
  release(child: AnyActorRef): void {
    this.actor.send({ type: 'RELEASE_TASK', ref: child });
  }

  /** The row as of the last read or write. */
  get record(): ProjectRecord {
    return this.row;
  }

  send(event: ProjectEvent): Promise<ProjectRecord> {
    const run = this.queue.then(() => this.apply(event, 2));
    this.queue = run.catch(() => undefined);
    return run;
  }

  /** Re-reads the row (another process may have changed it). */
  async refresh(): Promise<ProjectRecord> {
    const row = await this.deps.projects.getProject(this.row.projectId);
    if (!row) throw new ProjectNotFoundError(this.row.projectId);
    this.adopt(row);
    return row;
  }

  stop(): void {
    this.deps.system.stopProject(this.row.projectId);
  }

  private async apply(event: ProjectEvent, triesLeft: number): Promise<ProjectRecord> {
    const row = await this.refresh();
    const current = this.actor.getSnapshot();
    if (!current.can(event)) {
      throw new IllegalTransitionError(row.projectId, row.state, event.type, undefined, 'project');
    }
    const [next] = transition(projectMachine, current, event);
    const updated = await this.deps.projects.setProjectState(
      row.projectId,
      projectStateOf(next),
      [row.state],
      next.context.reason,
      new Date(this.deps.clock.now()),
    );
    if (!updated) {
      // Another process moved the project between our read and write: judge again.
      if (triesLeft > 1) return this.apply(event, triesLeft - 1);
      throw new VersionConflictError(row.projectId, row.version, row.version + 1);
    }
    this.actor.send(event);
    this.row = updated;
    this.noteBudget(updated);
    return updated;
  }

  /** Takes the row's state when another process changed it (the live actor and its children stay). */
  private adopt(row: ProjectRecord): void {
    this.row = row;
    this.noteBudget(row);
    if (projectStateOf(this.actor.getSnapshot()) !== row.state) {
      this.actor.send({ type: 'SYNC', state: row.state, reason: row.pausedReason });
    }
  }

  private spawn(row: ProjectRecord): ProjectActorRef {
    const snapshot = projectMachine.resolveState({
      value: row.state,
      context: {
        projectId: row.projectId,
        reason: row.pausedReason,
        lastChildError: null,
        budget: { limit: row.budgetLimit, spent: row.spent, reserved: row.reserved },
        approvals: {},
      },
    });
    // A child of the actor system's root (id and systemId `project:<id>`), started there.
    const actor = this.deps.system.spawnProject(row.projectId, projectMachine.getPersistedSnapshot(snapshot));
    actor.subscribe({ error: (err) => this.deps.logger.error({ err, projectId: row.projectId }, 'project actor error') });
    return actor;
  }
}
