import { StaleFencingTokenError, VersionConflictError } from '../errors.js';
import type { TaskDispatch } from '../domain/messages.js';
import type { TaskActor, TaskTransition } from '../actors/task-actor.js';
import type { Lease } from '../ports/lock-manager.js';
import type { ProjectRecord } from '../ports/project-store.js';
import type { QueueEntry } from '../ports/task-queue.js';
import type { TaskRecord } from '../ports/task-store.js';
import { BUDGET_EXHAUSTED, acceptsWork } from '../domain/project.js';
import type { Core } from '../orchestrator/core.js';
import { publishTransitions } from '../reactions/statuses.js';
import { dependencyStates } from '../promotion/dependencies.js';
import { CLAIM_TTL_MS, LEASE_GRACE_MS, Slots } from './slots.js';
import { DispatchOutbox, type Sending } from './outbox.js';
import type { WatchedQueue } from './watched-queue.js';

export { CLAIM_TTL_MS };

/** Tasks popped, checked, leased and written together in one dispatch batch. */
export const DISPATCH_BATCH = 500;
/** A READY row this long out of the queue is put back by the reconcile (see `reconcile`). */
export const STRAY_AFTER_MS = 2_000;
/**
 * How often the reconcile looks for stray READY rows, lifts the fencing counter and takes
 * over the unconfirmed dispatches of instances that are gone.
 */
export const RECONCILE_EVERY_MS = 5_000;
/** Stray READY rows looked at per reconcile, the longest out first. */
const STRAY_PAGE = 5_000;
const RECOVER_PAGE = 1_000;

/** A task about to be created READY, as `claim` judges it. */
export interface DispatchCandidate {
  taskId: string;
  assignedTo: string;
  priority: number;
  timeoutMs: number;
}

/** A task claimed for dispatch at creation: its slot and lease. */
export interface DispatchClaim {
  taskId: string;
  agent: string;
  lease: Lease;
}

/** What a dispatch is built from: the task and its attempt. */
export type DispatchedTask = Pick<TaskRecord, 'taskId' | 'projectId' | 'taskType' | 'assignedTo' | 'input' | 'attempts' | 'deadline' | 'traceParent'>;

/**
 * Whether a project's READY tasks may be dispatched: when it accepts work (active, or
 * completed with tasks left), and when it is paused only because its budget is exhausted —
 * a READY task already holds its reservation, so it runs; what does not fit stays PENDING.
 */
export function dispatchable(project: Pick<ProjectRecord, 'state' | 'pausedReason'>): boolean {
  return acceptsWork(project.state) || (project.state === 'paused' && project.pausedReason === BUDGET_EXHAUSTED);
}

/** The one dispatch message of an attempt. */
export function dispatchMessage(task: DispatchedTask, fencingToken: number): TaskDispatch {
  return {
    taskId: task.taskId,
    projectId: task.projectId,
    taskType: task.taskType,
    input: task.input,
    attempt: task.attempts,
    deadline: task.deadline!.toISOString(),
    fencingToken,
  };
}

/**
 * Dispatch, in one place. Only here is a dispatch message built, are MAX_CONCURRENT_TASKS
 * and each agent's AGENT_CONCURRENCY applied, leases taken, RUNNING written and the
 * dispatch published:
 *
 * - `pass()`: pops the highest-priority READY tasks while there is room, checks their
 *   rows, projects and dependencies, takes their leases in one round trip, writes every
 *   RUNNING transition (fencing token, deadline) in one, publishes (see below);
 * - `claim` / `confirm` / `abandon`: dispatch at creation, when nothing waits in the
 *   queue — a new task is written RUNNING by the write that creates it;
 * - `reconcile()` (periodic): frees the slots of attempts that ended elsewhere, puts READY
 *   rows missing from the queue back into it, lifts the fencing counter above every
 *   stored token (Redis may have come back empty), and takes over the RUNNING attempts
 *   whose dispatch is unconfirmed for longer than the claim TTL and whose lease is free
 *   (their owner died before the bus confirmed the dispatch);
 * - `recoverOrphans()` (at start): the same take-over, of every RUNNING attempt whose
 *   lease is free (its owner crashed long enough ago, or stopped).
 *
 * Dispatches are at least once. The statement that writes an attempt RUNNING also records
 * its dispatch as unconfirmed (the dispatch outbox, see outbox.ts); the record goes when
 * the bus confirms the dispatch. Until then the attempt's lease is held for the claim TTL
 * only, renewed while this process sends the dispatch again with back-off (NATS down);
 * once confirmed it is lengthened to the attempt's deadline. So a live process keeps its
 * attempts, and a dead one's unconfirmed attempts are taken over by any live instance —
 * same attempt, same fencing token — at the first reconcile after their record is older
 * than the claim TTL and their lease expired (at most the claim TTL after the owner last
 * renewed it), rather than at their timeout. A taken-over attempt is leased anew, and the
 * attempt's token goes on in its dispatch and its slot.
 *
 * A task whose dispatch cannot proceed — no lease, a refused or failed write, a full agent —
 * goes back in the queue; it is never dropped. `stop()` gives the leases back, so another
 * process can take the attempts over.
 */
export class Dispatcher {
  private readonly slots = new Slots();
  private readonly outbox: DispatchOutbox;
  /** Status publishes of dispatched tasks in flight (stop waits for them). */
  private readonly publishing = new Set<Promise<void>>();
  private accepting = false;
  /** Ids a pass popped and has not yet dispatched or put back (they wait, though not in the queue). */
  private inHand = 0;
  private lastReconcile = Number.NEGATIVE_INFINITY;

  constructor(
    private readonly core: Core,
    private readonly queue: WatchedQueue,
  ) {
    this.outbox = new DispatchOutbox(core, this.slots);
  }

  get runningCount(): number {
    return this.slots.runningCount;
  }

  /** Task leases this process holds (running attempts and claims). */
  get leasesHeld(): number {
    return this.slots.leasesHeld;
  }

  start(): void {
    this.outbox.start();
    this.accepting = true;
  }

  /** No new dispatches from now on: a pass in flight ends after its current batch. */
  halt(): void {
    this.accepting = false;
  }

  /**
   * No new dispatches; waits for the publishes in flight (a publish still unconfirmed is
   * given up: its record stays, and its attempt is taken over by whoever finds its lease
   * free), then gives every lease back.
   */
  async stop(): Promise<void> {
    this.halt();
    await this.outbox.stop();
    while (this.publishing.size) await Promise.all([...this.publishing]);
    const leases = this.slots.freeAll();
    if (leases.length) await this.core.locks.releaseMany(leases).catch((err) => this.core.logger.warn({ err }, 'could not give the leases back'));
  }

  // ---------------------------------------------------------------------------------------
  // The pass

  /** Pops and dispatches while there is room; returns how many tasks it dispatched. */
  async pass(): Promise<number> {
    const max = this.core.config.scheduler.maxConcurrentTasks;
    const projects = new Map<string, ProjectRecord>();
    // Tasks that cannot go now go back in the queue after the pass (behind the tasks of
    // their priority that are already waiting): a full agent, a lease held elsewhere.
    const putBack: QueueEntry[] = [];
    let dispatched = 0;
    try {
      while (this.accepting) {
        const room = Math.min(max - this.slots.taken, DISPATCH_BATCH);
        if (room <= 0) break;
        const mark = this.queue.mark();
        const ids = await this.queue.getMany(room);
        if (ids.length < room) this.queue.drained(mark); // emptied (what is put back comes after)
        if (ids.length === 0) break;
        this.inHand += ids.length;
        let progress: number;
        try {
          progress = await this.batch(ids, projects, putBack);
        } catch (err) {
          // Nothing of the batch is known to be written: every popped id goes back (the
          // leases were given back by `batch`), and the pass ends.
          this.core.logger.error({ err }, 'dispatch batch failed; its tasks go back in the queue');
          putBack.push(...this.entries(ids));
          break;
        }
        dispatched += progress;
        if (progress === 0 && putBack.length > 0) break;
      }
    } finally {
      if (putBack.length) {
        await this.core.queue.putMany(putBack).catch((err) =>
          this.core.logger.warn({ err, tasks: putBack.length }, 'could not put tasks back in the queue; the reconcile will'),
        );
      }
      this.inHand = 0;
    }
    return dispatched;
  }

  /** Queue entries of popped ids (priority from the held actor, or a default the reconcile corrects). */
  private entries(ids: readonly string[]): QueueEntry[] {
    const actors = this.core.registry.peekMany(ids);
    return ids.map((taskId) => ({ taskId, priority: actors.get(taskId)?.priority ?? 0 }));
  }

  /**
   * Dispatches popped tasks, a batch at a time: their rows, dependencies and projects
   * checked in a few reads, their leases taken in one round trip, every RUNNING
   * transition written in one, then the leases lengthened and the dispatches published.
   */
  private async batch(ids: readonly string[], projects: Map<string, ProjectRecord>, putBack: QueueEntry[]): Promise<number> {
    const { core } = this;
    // A held copy that is not READY may be stale: such ids are decided on their rows, read
    // with the ids this process does not hold.
    const doubtful = new Set([...core.registry.peekMany(ids).values()].filter((a) => a.status !== 'READY').map((a) => a.taskId));
    const [others, reread] = await Promise.all([
      core.registry.getMany(ids.filter((id) => !doubtful.has(id))),
      doubtful.size ? core.registry.refresh([...doubtful]) : Promise.resolve(new Map<string, TaskActor>()),
    ]);
    const actors = new Map([...others, ...reread]);
    const ready: TaskActor[] = [];
    for (const id of ids) {
      const actor = actors.get(id);
      if (actor?.status === 'READY') ready.push(actor); // else a stale entry: the task moved on
    }
    if (!ready.length) return 0;
    const unread = [...new Set(ready.map((a) => a.projectId))].filter((p) => !projects.has(p));
    const waiting = ready.filter((a) => a.hasDependencies).map((a) => a.taskId);
    const [fresh, links] = await Promise.all([
      Promise.all(unread.map((p) => core.projects.getProject(p))),
      waiting.length ? core.tasks.getLinks(waiting) : Promise.resolve([]),
    ]);
    // Only a dispatchable project is kept within a pass: one seen paused is read again,
    // so a task popped after a resume (which re-queues READY tasks) is not dropped.
    const paused = new Set<string>();
    unread.forEach((projectId, i) => {
      const project = fresh[i];
      if (project && dispatchable(project)) projects.set(projectId, project);
      else paused.add(projectId);
    });
    const linksById = new Map(links.map((r) => [r.taskId, r]));
    const candidates: TaskActor[] = [];
    const taken = new Map<string, number>();
    for (const actor of ready) {
      // A paused project's tasks stay READY in the store; resuming puts them back in the queue.
      if (paused.has(actor.projectId) || (actor.hasDependencies && !linksById.has(actor.taskId))) continue;
      if (!this.hasRoom(actor.assignedTo, taken)) {
        putBack.push({ taskId: actor.taskId, priority: actor.priority });
        continue;
      }
      taken.set(actor.assignedTo, (taken.get(actor.assignedTo) ?? 0) + 1);
      candidates.push(actor);
    }
    if (!candidates.length) return 0;
    const withDeps = candidates.flatMap((a) => linksById.get(a.taskId) ?? []).filter((r) => r.dependencies.length > 0);
    const states = withDeps.length ? await dependencyStates(this.core.tasks, withDeps) : new Map<string, { met: boolean }>();
    const runnable = candidates.filter((a) => {
      if (states.get(a.taskId)?.met === false) {
        core.logger.warn({ taskId: a.taskId }, 'READY task with unmet dependencies: left out of the queue');
        return false;
      }
      return true;
    });
    if (!runnable.length) return 0;
    const leasedAt = core.clock.now();
    const leases = await core.locks.acquireMany(runnable.map((a) => `task:${a.taskId}`), CLAIM_TTL_MS);
    const held: { actor: TaskActor; lease: Lease }[] = [];
    runnable.forEach((actor, i) => {
      const lease = leases[i];
      if (lease) held.push({ actor, lease });
      // Held elsewhere: a dispatcher mid-write, or one that died before writing (its claim
      // expires within CLAIM_TTL_MS). Back in the queue, tried again next pass.
      else putBack.push({ taskId: actor.taskId, priority: actor.priority });
    });
    if (!held.length) return 0;
    const now = core.clock.now();
    let outcomes;
    try {
      outcomes = await core.registry.sendMany(
        held.map(({ actor, lease }) => ({
          taskId: actor.taskId,
          event: { type: 'DISPATCH' as const, at: now, fencingToken: lease.fencingToken, deadline: now + actor.timeoutMs },
        })),
      );
    } catch (err) {
      await this.giveBack(held.map((h) => h.lease));
      throw err;
    }
    const refused: Lease[] = [];
    const done: TaskTransition[] = [];
    const started: { task: DispatchedTask; lease: Lease }[] = [];
    let staleToken = false;
    for (const [i, outcome] of outcomes.entries()) {
      const { actor, lease } = held[i]!;
      if (!outcome.ok) {
        refused.push(lease);
        if (outcome.error instanceof StaleFencingTokenError) {
          // The lock store handed out a token below a stored one (it lost its counter):
          // lifted below, and the task tried again.
          staleToken = true;
          putBack.push({ taskId: actor.taskId, priority: actor.priority });
        } else if (!(outcome.error instanceof VersionConflictError)) {
          core.logger.warn({ err: outcome.error, taskId: actor.taskId }, 'dispatch refused');
        }
        continue;
      }
      if (!outcome.input) {
        // The store contract returns the input with every write into RUNNING.
        core.logger.error({ taskId: actor.taskId }, 'the store returned no input with the RUNNING write; the attempt will time out and retry');
      }
      this.slots.occupy(actor.taskId, actor.assignedTo, lease, leasedAt);
      done.push(outcome.transition);
      started.push({
        task: { ...actor, input: outcome.input ?? {}, attempts: outcome.transition.attempt, deadline: new Date(now + actor.timeoutMs) },
        lease,
      });
    }
    if (staleToken) await this.liftFencing();
    this.launch(started, done);
    if (refused.length) await this.giveBack(refused);
    return done.length;
  }

  /** Whether `agent` has room for one more (besides `taken` in this batch), globally and per agent. */
  private hasRoom(agent: string, taken: ReadonlyMap<string, number>): boolean {
    const { maxConcurrentTasks, agentLimits } = this.core.config.scheduler;
    let inBatch = 0;
    for (const n of taken.values()) inBatch += n;
    if (this.slots.taken + inBatch >= maxConcurrentTasks) return false;
    const limit = agentLimits[agent];
    return limit === undefined || this.slots.busy(agent) + (taken.get(agent) ?? 0) < limit;
  }

  /**
   * Attempts just written RUNNING (their dispatch recorded unconfirmed by the same write):
   * their dispatches handed to the outbox (published until confirmed; then the records go
   * and the leases are lengthened to the deadlines), their statuses published. The pass
   * goes on without waiting for the bus to confirm (the next batch's reads and writes
   * overlap with them); stop() waits.
   */
  private launch(started: readonly { task: DispatchedTask; lease: Lease }[], done: readonly TaskTransition[]): void {
    if (!started.length) return;
    this.outbox.send(
      started.map(({ task, lease }) => ({ agent: task.assignedTo, message: dispatchMessage(task, lease.fencingToken), lease, traceParent: task.traceParent ?? null })),
    );
    if (done.length) {
      const work = publishTransitions(this.core, done);
      this.publishing.add(work);
      void work.finally(() => this.publishing.delete(work));
    }
  }

  private async giveBack(leases: readonly Lease[]): Promise<void> {
    if (!leases.length) return;
    await this.core.locks.releaseMany(leases).catch((err) => this.core.logger.warn({ err }, 'could not give leases back; they expire'));
  }

  // ---------------------------------------------------------------------------------------
  // Dispatch at creation

  /**
   * Dispatch at creation: of tasks about to be written READY (`candidates`), claims those
   * that may start at once — this process dispatches, nothing waits in the queue (a
   * waiting task would come first), there is room within MAX_CONCURRENT_TASKS and each
   * agent's limit — highest priority first, and takes their leases. The caller writes the
   * claimed tasks RUNNING (with the leases' fencing tokens) in the same write that creates
   * them, then calls `confirm` with what it wrote, or `abandon`.
   */
  async claim(candidates: readonly DispatchCandidate[]): Promise<DispatchClaim[]> {
    // Tasks this process queued may still wait there: new ones queue behind them.
    if (!this.accepting || candidates.length === 0 || this.queue.maybeWaiting || this.inHand > 0) return [];
    const picked: DispatchCandidate[] = [];
    const taken = new Map<string, number>();
    for (const c of [...candidates].sort((a, b) => b.priority - a.priority)) {
      if (!this.hasRoom(c.assignedTo, taken)) continue;
      taken.set(c.assignedTo, (taken.get(c.assignedTo) ?? 0) + 1);
      picked.push(c);
    }
    if (!picked.length) return [];
    // The slots are held while the queue is checked and the leases taken.
    this.slots.claim(picked.map((c) => ({ taskId: c.taskId, agent: c.assignedTo })));
    const ids = picked.map((c) => c.taskId);
    const leasedAt = this.core.clock.now();
    try {
      const [size, acquired] = await Promise.allSettled([
        this.queue.size(),
        this.core.locks.acquireMany(picked.map((c) => `task:${c.taskId}`), CLAIM_TTL_MS),
      ]);
      if (acquired.status === 'rejected') throw acquired.reason;
      const leases = acquired.value;
      picked.forEach((c, i) => {
        if (leases[i]) this.slots.setClaimLease(c.taskId, leases[i]!, leasedAt);
      });
      this.slots.unclaim(picked.filter((_, i) => !leases[i]).map((c) => c.taskId));
      const claims = picked.flatMap((c, i) => (leases[i] ? [{ taskId: c.taskId, agent: c.assignedTo, lease: leases[i]! }] : []));
      if (size.status === 'rejected' || size.value > 0 || this.inHand > 0) {
        await this.abandon(claims);
        if (size.status === 'rejected') throw size.reason;
        return [];
      }
      return claims;
    } catch (err) {
      await this.giveBack(this.slots.unclaim(ids));
      this.core.logger.warn({ err }, 'dispatch at creation unavailable; the tasks go through the queue');
      return [];
    }
  }

  /**
   * The claimed tasks are durable RUNNING (`tasks`: the rows written, their dispatches
   * recorded unconfirmed with them): they take their slots and are dispatched.
   */
  confirm(tasks: readonly DispatchedTask[]): void {
    const started: { task: DispatchedTask; lease: Lease }[] = [];
    for (const task of tasks) {
      const lease = this.slots.confirm(task.taskId);
      if (lease) started.push({ task, lease });
    }
    this.launch(started, []);
  }

  /** The claimed tasks were not written RUNNING: their slots and leases are given back. */
  async abandon(claims: readonly DispatchClaim[]): Promise<void> {
    const held = claims.filter((c) => this.slots.isClaimed(c.taskId));
    if (!held.length) return;
    await this.giveBack(this.slots.unclaim(held.map((c) => c.taskId)));
  }

  // ---------------------------------------------------------------------------------------
  // After the attempt

  /** Attempts that ended (a result, a timeout, a cancel): their slots freed, their leases given back. */
  async settled(taskIds: readonly string[]): Promise<boolean> {
    const leases = this.slots.free(taskIds);
    await this.giveBack(leases);
    return leases.length > 0;
  }

  /** A heartbeat extended the task's deadline: its lease is extended as well. */
  async extendLease(taskId: string, ttlMs: number): Promise<void> {
    const slot = this.slots.get(taskId);
    if (slot) await this.core.locks.extend(slot.lease, ttlMs + LEASE_GRACE_MS);
  }

  // ---------------------------------------------------------------------------------------
  // Recovery and reconcile

  /**
   * At start: every RUNNING attempt whose owner is gone — its lease expired, or was given
   * back by a stop — is taken over (see `takeOver`), whether or not its dispatch was
   * confirmed (a bus that does not outlive its process, the in-process one, keeps nothing).
   * Attempts whose lease is held belong to a live process and are left alone. Returns how
   * many were taken over.
   */
  async recoverOrphans(): Promise<number> {
    this.outbox.start(); // a start: after a stop, the outbox sends (and retries) again
    return this.takeOverPages((after) =>
      this.core.tasks.loadNonFinal({ limit: RECOVER_PAGE, statuses: ['RUNNING'], ...(after ? { afterTaskId: after } : {}) }),
    );
  }

  /**
   * Periodic (every RECONCILE_EVERY_MS, on every live instance): the RUNNING attempts whose
   * dispatch is unconfirmed for longer than the claim TTL — their owner died between the
   * RUNNING write and the bus's confirmation, or gave them up at stop — and whose lease is
   * free are taken over (see `takeOver`). A live owner keeps renewing its lease while it
   * retries, so its attempts are left alone. Returns how many were taken over.
   */
  async takeOverUnconfirmed(): Promise<number> {
    const before = new Date(this.core.clock.now() - CLAIM_TTL_MS);
    return this.takeOverPages((after) =>
      this.core.tasks.listUnconfirmedDispatches({ before, limit: RECOVER_PAGE, ...(after ? { afterTaskId: after } : {}) }),
    );
  }

  /** `takeOver` of every page `load` gives (keyset by task id). */
  private async takeOverPages(load: (after: string | undefined) => Promise<TaskRecord[]>): Promise<number> {
    let taken = 0;
    let after: string | undefined;
    for (;;) {
      const page = await load(after);
      taken += await this.takeOver(page);
      if (page.length < RECOVER_PAGE) break;
      after = page[page.length - 1]!.taskId;
    }
    if (taken) this.core.logger.info({ tasks: taken }, 'took over RUNNING attempts whose owner is gone');
    return taken;
  }

  /**
   * Takes over the RUNNING attempts among `rows` whose lease is free (its owner is gone):
   * each leased by this process for the claim TTL (a lease held elsewhere is a live owner's:
   * left alone), given a slot, and its dispatch sent again through the outbox — the same
   * attempt, under the row's fencing token (the new lease's own token only guards the
   * take-over), confirmed like any dispatch. Attempts past their deadline are left to the
   * timeout sweep; attempts this process runs are its own.
   */
  private async takeOver(rows: readonly TaskRecord[]): Promise<number> {
    const { core } = this;
    const now = core.clock.now();
    const orphans = rows.filter((t) => t.fencingToken !== null && t.deadline !== null && t.deadline.getTime() > now && !this.slots.get(t.taskId));
    if (!orphans.length) return 0;
    const leases = await core.locks.acquireMany(orphans.map((t) => `task:${t.taskId}`), CLAIM_TTL_MS);
    const sending: Sending[] = [];
    orphans.forEach((t, i) => {
      const lease = leases[i];
      if (!lease) return;
      this.slots.occupy(t.taskId, t.assignedTo, lease, now, t.fencingToken!);
      sending.push({ agent: t.assignedTo, message: dispatchMessage(t, t.fencingToken!), lease, traceParent: t.traceParent ?? null });
    });
    this.outbox.send(sending);
    return sending.length;
  }

  /**
   * Puts READY tasks back in the queue from their rows: every one at start (Redis may have
   * lost them, or be empty: then the queue is rebuilt), a project's at its resume (a pass
   * may have put back or dropped what it popped while the project was paused).
   */
  async requeueReady(projectId?: string): Promise<void> {
    const { core } = this;
    if (projectId) {
      const ready = await core.tasks.listByProject(projectId, ['READY']);
      await this.queue.putMany(ready.map((t) => ({ taskId: t.taskId, priority: t.priority })));
      return;
    }
    const entries: QueueEntry[] = [];
    for (let offset = 0; ; offset += 10_000) {
      const page = await core.tasks.listReady({ offset, limit: 10_000 });
      entries.push(...page);
      if (page.length < 10_000) break;
    }
    if ((await this.queue.size()) === 0) await this.queue.rebuild(entries);
    else await this.queue.putMany(entries);
  }

  /**
   * Frees the slots of attempts that ended elsewhere (a result handled by another
   * process); and every RECONCILE_EVERY_MS lifts the fencing counter above every stored
   * token (a lock store that came back empty restarts it low), puts READY rows of
   * dispatchable projects that have been out of the queue for STRAY_AFTER_MS back in it
   * (a put that failed, a process that died holding popped ids; putting a queued task
   * again keeps its place), and takes over the unconfirmed dispatches of instances that
   * are gone (`takeOverUnconfirmed`).
   */
  async reconcile(): Promise<void> {
    const { core } = this;
    const ids = this.slots.runningIds();
    if (ids.length) {
      const byId = new Map((await core.tasks.getTasks(ids)).map((r) => [r.taskId, r]));
      const ended = ids.filter((taskId) => {
        const r = byId.get(taskId);
        return !r || r.status !== 'RUNNING' || r.fencingToken !== this.slots.get(taskId)?.token;
      });
      if (ended.length) await this.settled(ended);
    }
    const now = core.clock.now();
    if (now - this.lastReconcile < RECONCILE_EVERY_MS) return;
    this.lastReconcile = now;
    await this.liftFencing();
    const stray = await core.tasks.listStrayReady(new Date(now - STRAY_AFTER_MS), STRAY_PAGE);
    if (stray.length) await core.queue.putMany(stray);
    if (this.accepting) await this.takeOverUnconfirmed();
  }

  /** Lifts the fencing counter above every token the store holds. */
  async liftFencing(): Promise<void> {
    await this.core.locks.ensureFencingAbove(await this.core.tasks.maxFencingToken());
  }
}
