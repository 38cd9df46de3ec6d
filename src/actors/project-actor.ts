import { transition, type AnyActorRef } from 'xstate';
import type { Logger } from 'pino';
import { ApprovalError, IllegalTransitionError, ProjectNotFoundError, VersionConflictError } from '../errors.js';
import type { ApprovalRecord, ProjectRecord, ProjectStore, StoredProject } from '../ports/project-store.js';
import type { ProjectBudget } from '../ports/commit.js';
import type { Clock } from '../ports/clock.js';
import {
  DEFAULT_PROJECT_POLICY,
  budgetLevelStateOf,
  budgetMayChange,
  decisionKey,
  projectMachine,
  projectStateOf,
  reactionsOf,
  type ProjectEvent,
  type ProjectPolicy,
  type ProjectReaction,
  type ProjectSnapshot,
} from '../machines/project-machine.js';
import { figuresOf, needsApprovals, planStep, snapshotOfStored } from './project-snapshot.js';
import type { ActorSystem, ProjectActorRef } from './system.js';

export interface ProjectActorDeps {
  projects: ProjectStore;
  clock: Clock;
  logger: Logger;
  /** The actor system the project's actor is a child of (of its root). */
  system: ActorSystem;
  /** What the machine decides with: budget threshold and enforcement, approval timeout and policy. */
  policy?: ProjectPolicy;
}

/** How many times a step is decided: on the held snapshot or the row read first, then on rows read fresh. */
export const PROJECT_DECIDE_ROUNDS = 3;

/** A step of the project machine, durable once returned. */
export interface ProjectStep {
  projectId: string;
  /** The row after the step (as written, or as read when nothing needed writing). */
  record: ProjectRecord;
  before: ProjectSnapshot;
  after: ProjectSnapshot;
  /** What must happen now that the step is durable (the actions the step returned), in order. */
  reactions: ProjectReaction[];
  /** The approval rows the step decided or extended, as written. */
  approvals: ApprovalRecord[];
  /** False: the step changed nothing stored (nothing was written, no reaction). */
  written: boolean;
}

/** What to decide: events, or events built from the row they are decided on (read fresh). */
export type ProjectEvents = ProjectEvent | readonly ProjectEvent[] | ((row: ProjectRecord) => readonly ProjectEvent[]);

/**
 * A project as a persisted XState actor. The row in PostgreSQL is the truth (several
 * orchestrator processes may act on one project): each step is decided by the pure
 * machine (`transition()`), written with a compare-and-set on the row's version together
 * with the approval rows it changes, and only then taken by the live actor; a write that
 * finds the row moved on is decided again on the row read fresh. Refused events throw
 * IllegalTransitionError (lifecycle, budget) or ApprovalError (a request) and change
 * nothing. The caller performs the step's reactions.
 */
export class ProjectActor {
  private readonly actor: ProjectActorRef;
  private queue: Promise<unknown> = Promise.resolve();

  private constructor(
    private row: ProjectRecord,
    /** The snapshot the row holds (as of the last read or write). */
    private held: ProjectSnapshot,
    private readonly deps: ProjectActorDeps,
  ) {
    this.actor = this.spawn(row);
  }

  static async load(projectId: string, deps: ProjectActorDeps): Promise<ProjectActor> {
    const stored = await deps.projects.getProjectSnapshot(projectId);
    if (!stored) throw new ProjectNotFoundError(projectId);
    // The approval rows too: a decision written outside the machine (an older process) is adopted.
    const approvals = await deps.projects.listApprovals(projectId);
    return new ProjectActor(stored.project, snapshotOfStored(stored, policyOf(deps), approvals), deps);
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

  /** The machine's snapshot as of the last read or write. */
  get snapshot(): ProjectSnapshot {
    return this.held;
  }

  /**
   * Decides the events, in order, on the row read fresh and commits them as one step.
   * Steps of one actor run one after another.
   */
  send(events: ProjectEvents): Promise<ProjectStep> {
    return this.enqueue(() => this.apply(events, true));
  }

  /**
   * The amounts as a write just returned them. Decided on the held snapshot, without a
   * read: a step (written, with its reactions) only when they raise the budget level; a
   * held copy that does not match the write's row (another process changed the state or
   * the limit) is read again first.
   */
  noteBudget(budget: ProjectBudget): Promise<ProjectStep | null> {
    const consistent =
      budget.state === this.row.state && budget.pausedReason === this.row.pausedReason && budget.budgetLimit === this.row.budgetLimit;
    if (consistent) this.row = { ...this.row, spent: budget.spent, reserved: budget.reserved };
    if (consistent && !budgetMayChange(this.held, figuresOf(budget))) return Promise.resolve(null);
    return this.enqueue(async () => {
      const step = await this.apply((row) => [{ type: 'BUDGET', figures: figuresOf(row) }], !consistent);
      return step.written ? step : null;
    });
  }

  /** Re-reads the row (another process may have changed it). */
  async refresh(): Promise<ProjectRecord> {
    const stored = await this.deps.projects.getProjectSnapshot(this.row.projectId);
    if (!stored) throw new ProjectNotFoundError(this.row.projectId);
    await this.adopt(stored);
    return this.row;
  }

  stop(): void {
    this.deps.system.stopProject(this.row.projectId);
  }

  private enqueue<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.queue.then(fn);
    this.queue = run.catch(() => undefined);
    return run;
  }

  private async apply(events: ProjectEvents, readFirst: boolean): Promise<ProjectStep> {
    for (let round = 1; ; round++) {
      if (readFirst || round > 1) await this.refresh();
      const row = this.row;
      const list = typeof events === 'function' ? events(row) : Array.isArray(events) ? events : [events as ProjectEvent];
      const before = this.held;
      const { after, reactions } = this.decide(before, list);
      const at = new Date(this.deps.clock.now());
      const write = planStep(row, before, after, list, reactions.length > 0, at);
      if (!write) {
        this.held = after;
        return { projectId: row.projectId, record: row, before, after, reactions: [], approvals: [], written: false };
      }
      const committed = await this.deps.projects.commitProjectStep(write);
      if (committed) {
        this.row = committed.project;
        this.held = after;
        this.follow(list);
        return { projectId: row.projectId, record: committed.project, before, after, reactions, approvals: committed.approvals, written: true };
      }
      // Another process took a step first: decide again on the row read fresh.
      if (round >= PROJECT_DECIDE_ROUNDS) throw new VersionConflictError(row.projectId, row.version, row.version + 1);
    }
  }

  /** The events' step on `snapshot`, pure; a refused event throws and nothing is decided. */
  private decide(snapshot: ProjectSnapshot, events: readonly ProjectEvent[]): { after: ProjectSnapshot; reactions: ProjectReaction[] } {
    let s = snapshot;
    const reactions: ProjectReaction[] = [];
    for (const event of events) {
      if (!s.can(event)) {
        // A request the machine has taken already (the same request again) changes nothing.
        if (event.type === 'REQUEST_APPROVAL' && s.context.approvals[event.approvalId]) continue;
        throw this.refusal(s, event);
      }
      const [next, actions] = transition(projectMachine, s, event);
      s = next;
      reactions.push(...reactionsOf(actions));
    }
    return { after: s, reactions };
  }

  private refusal(s: ProjectSnapshot, event: ProjectEvent): Error {
    const { projectId } = this.row;
    if ('approvalId' in event) {
      const entry = s.context.approvals[event.approvalId];
      if (!entry) return new ApprovalError(`approval ${event.approvalId} does not exist in project ${projectId}`);
      if (entry.status === 'requested' || entry.status === 'reminded') {
        return new ApprovalError(`approval ${event.approvalId}: ${event.type} is not allowed while it is ${entry.status} (it expires at ${entry.expiresAt === null ? 'never' : new Date(entry.expiresAt).toISOString()})`);
      }
      return new ApprovalError(`approval ${event.approvalId} was already ${entry.status}${entry.decidedBy ? ` by ${entry.decidedBy}` : ''}`);
    }
    return new IllegalTransitionError(projectId, projectStateOf(s), event.type, `budget ${budgetLevelStateOf(s)}`, 'project');
  }

  /** Takes the row another process may have changed (the live actor and its children stay). */
  private async adopt(stored: StoredProject): Promise<void> {
    const row = stored.project;
    if (row.version === this.row.version) {
      this.row = row;
      return;
    }
    const approvals = needsApprovals(stored) ? await this.deps.projects.listApprovals(row.projectId) : undefined;
    this.row = row;
    this.held = snapshotOfStored(stored, policyOf(this.deps), approvals);
    this.follow([]);
  }

  /** The live actor takes the committed events; a snapshot taken from elsewhere is adopted with SYNC. */
  private follow(events: readonly ProjectEvent[]): void {
    if (this.actor.getSnapshot().status !== 'active') return;
    for (const event of events) this.actor.send(event);
    const live = this.actor.getSnapshot();
    if (decisionKey(live) === decisionKey(this.held)) return;
    this.actor.send({
      type: 'SYNC',
      state: projectStateOf(this.held),
      reason: this.held.context.reason,
      level: budgetLevelStateOf(this.held),
      approvals: this.held.context.approvals,
    });
  }

  private spawn(row: ProjectRecord): ProjectActorRef {
    // A child of the actor system's root (id and systemId `project:<id>`), started there,
    // from the snapshot the row holds.
    const actor = this.deps.system.spawnProject(row.projectId, projectMachine.getPersistedSnapshot(this.held));
    actor.subscribe({ error: (err) => this.deps.logger.error({ err, projectId: row.projectId }, 'project actor error') });
    return actor;
  }
}

function policyOf(deps: ProjectActorDeps): ProjectPolicy {
  return deps.policy ?? DEFAULT_PROJECT_POLICY;
}
