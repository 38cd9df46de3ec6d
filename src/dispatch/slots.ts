import type { Lease } from '../ports/lock-manager.js';

/** Extra lease time past a task's deadline, so the lease outlives the attempt it guards. */
export const LEASE_GRACE_MS = 30_000;

/** A RUNNING task this process dispatched: its agent, its lease and the attempt's fencing token. */
export interface RunningSlot {
  agent: string;
  lease: Lease;
  /** The fencing token the attempt runs under (the row's; a recovered orphan's lease has another). */
  token: number;
}

/**
 * The dispatcher's slots: the RUNNING tasks this process dispatched (with their leases and
 * agents), for MAX_CONCURRENT_TASKS and each agent's limit, and the claims of tasks being
 * written RUNNING at creation, which count as taken.
 */
export class Slots {
  private readonly running = new Map<string, RunningSlot>();
  /** Claimed tasks: their agent, and their lease once taken. */
  private readonly claims = new Map<string, { agent: string; lease: Lease | null }>();
  private readonly perAgent = new Map<string, number>();

  /** Slots taken: running tasks and claims. */
  get taken(): number {
    return this.running.size + this.claims.size;
  }

  get runningCount(): number {
    return this.running.size;
  }

  /** Tasks of `agent` running or claimed. */
  busy(agent: string): number {
    return this.perAgent.get(agent) ?? 0;
  }

  get(taskId: string): RunningSlot | undefined {
    return this.running.get(taskId);
  }

  /** Whether this process runs the task's attempt under `token`. */
  holds(taskId: string, token: number): boolean {
    return this.running.get(taskId)?.token === token;
  }

  runningIds(): string[] {
    return [...this.running.keys()];
  }

  /** A task written RUNNING by this process (or taken over from a process that is gone). */
  occupy(taskId: string, agent: string, lease: Lease, token = lease.fencingToken): void {
    if (this.running.has(taskId)) this.release(this.running, [taskId]);
    this.running.set(taskId, { lease, agent, token });
    this.count(agent, 1);
  }

  /** Tasks that left RUNNING: their slots freed; returns their leases. */
  free(taskIds: readonly string[]): Lease[] {
    return this.release(this.running, taskIds);
  }

  /** Every slot and claim freed (a stop); returns their leases. */
  freeAll(): Lease[] {
    return [...this.release(this.running, [...this.running.keys()]), ...this.release(this.claims, [...this.claims.keys()])];
  }

  /** Claims slots for tasks to be written RUNNING at creation (their leases come later). */
  claim(tasks: readonly { taskId: string; agent: string }[]): void {
    for (const t of tasks) {
      this.claims.set(t.taskId, { agent: t.agent, lease: null });
      this.count(t.agent, 1);
    }
  }

  /** The lease a claim holds, once taken. */
  setClaimLease(taskId: string, lease: Lease): void {
    const claim = this.claims.get(taskId);
    if (claim) claim.lease = lease;
  }

  isClaimed(taskId: string): boolean {
    return this.claims.has(taskId);
  }

  /** A claimed task was written RUNNING: its claim becomes a running slot. Returns its lease. */
  confirm(taskId: string): Lease | undefined {
    const claim = this.claims.get(taskId);
    if (!claim?.lease) return undefined;
    this.claims.delete(taskId);
    this.running.set(taskId, { lease: claim.lease, agent: claim.agent, token: claim.lease.fencingToken });
    return claim.lease;
  }

  /** Claims given up; returns the leases they held. */
  unclaim(taskIds: readonly string[]): Lease[] {
    return this.release(this.claims, taskIds);
  }

  /** Removes the tasks' entries from `slots`, freeing their agents' counts; returns their leases. */
  private release<S extends { agent: string; lease: Lease | null }>(slots: Map<string, S>, taskIds: readonly string[]): Lease[] {
    const leases: Lease[] = [];
    for (const taskId of taskIds) {
      const slot = slots.get(taskId);
      if (!slot) continue;
      slots.delete(taskId);
      this.count(slot.agent, -1);
      if (slot.lease) leases.push(slot.lease);
    }
    return leases;
  }

  private count(agent: string, delta: number): void {
    this.perAgent.set(agent, (this.perAgent.get(agent) ?? 0) + delta);
  }
}
