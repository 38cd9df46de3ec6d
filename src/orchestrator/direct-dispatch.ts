import type { TaskRecord } from '../ports/task-store.js';
import type { Lease } from '../ports/lock-manager.js';
import type { Core } from './core.js';
import { LEASE_GRACE_MS, type Slots } from './slots.js';
import type { WatchedQueue } from './watched-queue.js';

/** A task about to be created READY, as `DirectDispatch.claim` judges it. */
export interface DirectCandidate {
  taskId: string;
  assignedTo: string;
  priority: number;
  timeoutMs: number;
}

/** A task claimed for dispatch at creation: its slot and lease. */
export interface DirectClaim {
  taskId: string;
  agent: string;
  lease: Lease;
}

/** What a dispatch of a task written RUNNING at creation is made of. */
export type DirectTask = Pick<TaskRecord, 'taskId' | 'projectId' | 'taskType' | 'assignedTo' | 'input' | 'attempts' | 'deadline'>;

export interface DirectDispatchHooks {
  /** The scheduler runs (started, not stopping). */
  accepting(): boolean;
  /** Publishes the dispatch of a task written RUNNING. */
  dispatch(task: DirectTask, fencingToken: number): Promise<void>;
  wake(): void;
}

/**
 * Dispatch at creation, the scheduler's shortcut for new tasks: when nothing waits in the
 * queue and there is room, a task about to be created READY is written RUNNING by the
 * same write that creates it (its lease taken before, its dispatch published after) —
 * no queue round trip, no second write. Its slot counts from the claim on.
 */
export class DirectDispatch {
  constructor(
    private readonly core: Core,
    private readonly queue: WatchedQueue,
    private readonly slots: Slots,
    private readonly hooks: DirectDispatchHooks,
  ) {}

  /**
   * Dispatch at creation: of tasks about to be written READY (`candidates`), claims those
   * that may start at once — the scheduler runs, nothing waits in the queue (a waiting
   * task would come first), there is room within MAX_CONCURRENT_TASKS and each agent's
   * limit — highest priority first, and takes their leases. The caller writes the claimed
   * tasks RUNNING (with the leases' fencing tokens) in the same write that creates them,
   * then calls `confirm` with what it wrote, or `abandon`.
   */
  async claim(candidates: readonly DirectCandidate[]): Promise<DirectClaim[]> {
    // Tasks this process queued may still wait there: new ones queue behind them.
    if (!this.hooks.accepting() || candidates.length === 0 || this.queue.maybeWaiting) return [];
    const max = this.core.config.scheduler.maxConcurrentTasks;
    const picked: DirectCandidate[] = [];
    const taken = new Map<string, number>();
    for (const c of [...candidates].sort((a, b) => b.priority - a.priority)) {
      if (this.slots.taken + picked.length >= max) break;
      const limit = this.core.config.scheduler.agentLimits[c.assignedTo];
      if (limit !== undefined && this.slots.busy(c.assignedTo) + (taken.get(c.assignedTo) ?? 0) >= limit) continue;
      taken.set(c.assignedTo, (taken.get(c.assignedTo) ?? 0) + 1);
      picked.push(c);
    }
    if (!picked.length) return [];
    // The slots are held while the queue is checked and the leases taken.
    this.slots.claim(picked.map((c) => ({ taskId: c.taskId, agent: c.assignedTo })));
    const ids = picked.map((c) => c.taskId);
    try {
      const ttl = Math.max(...picked.map((c) => c.timeoutMs)) + LEASE_GRACE_MS;
      const [size, acquired] = await Promise.allSettled([
        this.queue.size(),
        this.core.locks.acquireMany(picked.map((c) => `task:${c.taskId}`), ttl),
      ]);
      if (acquired.status === 'rejected') throw acquired.reason;
      const leases = acquired.value;
      picked.forEach((c, i) => {
        if (leases[i]) this.slots.setClaimLease(c.taskId, leases[i]!);
      });
      this.slots.unclaim(picked.filter((_, i) => !leases[i]).map((c) => c.taskId));
      const claims = picked.flatMap((c, i) => (leases[i] ? [{ taskId: c.taskId, agent: c.assignedTo, lease: leases[i]! }] : []));
      if (size.status === 'rejected' || size.value > 0) {
        await this.abandon(claims);
        if (size.status === 'rejected') throw size.reason;
        return [];
      }
      return claims;
    } catch (err) {
      const leases = this.slots.unclaim(ids);
      if (leases.length) await this.core.locks.releaseMany(leases).catch(() => undefined);
      this.core.logger.warn({ err }, 'dispatch at creation unavailable; the tasks go through the queue');
      return [];
    }
  }

  /**
   * The claimed tasks are durable RUNNING: they take their slots and are dispatched
   * (`tasks`: the rows written, with their inputs).
   */
  async confirm(tasks: readonly DirectTask[]): Promise<void> {
    const publishes: Promise<void>[] = [];
    for (const t of tasks) {
      const lease = this.slots.confirm(t.taskId);
      if (lease) publishes.push(this.hooks.dispatch(t, lease.fencingToken));
    }
    await Promise.all(publishes);
  }

  /** The claimed tasks were not written RUNNING: their slots and leases are given back. */
  async abandon(claims: readonly DirectClaim[]): Promise<void> {
    const held = claims.filter((c) => this.slots.isClaimed(c.taskId));
    if (!held.length) return;
    const leases = this.slots.unclaim(held.map((c) => c.taskId));
    await this.core.locks.releaseMany(leases).catch((err) => this.core.logger.warn({ err }, 'could not release leases'));
    this.hooks.wake();
  }
}
