import type { Lease } from '../ports/lock-manager.js';

/** Extra lease time past a task's deadline, so the lease outlives the attempt it guards. */
export const LEASE_GRACE_MS = 30_000;
/**
 * A lease is first taken for this long, and lengthened to the attempt's deadline (plus
 * LEASE_GRACE_MS) once the bus confirmed its dispatch; until then it is renewed for this
 * long while the dispatcher retries. A process that dies before the confirmation holds the
 * lease for this long at most: then a READY task can be dispatched again, a RUNNING
 * attempt taken over (see Dispatcher).
 */
export const CLAIM_TTL_MS = 30_000;

/** A RUNNING task this process dispatched: its agent, its lease and the attempt's fencing token. */
export interface RunningSlot {
  agent: string;
  lease: Lease;
  /** The fencing token the attempt runs under (the row's; a taken-over attempt's lease has another). */
  token: number;
  /**
   * Whether the bus confirmed the attempt's dispatch. Until it does, the lease is held for
   * the claim TTL only and renewed while this process retries (so that, should it die,
   * another instance finds the lease free soon and takes the attempt over); once confirmed,
   * it is lengthened to the attempt's deadline.
   */
  confirmed: boolean;
  /** When the lease was last taken or renewed for the claim TTL (clock ms), while unconfirmed. */
  renewedAt: number;
}

/**
 * The dispatcher's slots: the RUNNING tasks this process dispatched (with their leases and
 * agents), for MAX_CONCURRENT_TASKS and each agent's limit, and the claims of tasks being
 * written RUNNING at creation, which count as taken.
 */
export class Slots {
  private readonly running = new Map<string, RunningSlot>();
  /** Claimed tasks: their agent, and their lease once taken (and when). */
  private readonly claims = new Map<string, { agent: string; lease: Lease | null; takenAt: number }>();
  private readonly perAgent = new Map<string, number>();

  /** Slots taken: running tasks and claims. */
  get taken(): number {
    return this.running.size + this.claims.size;
  }

  get runningCount(): number {
    return this.running.size;
  }

  /** Leases this process holds: one per running slot, and per claim once its lease is taken. */
  get leasesHeld(): number {
    let n = this.running.size;
    for (const claim of this.claims.values()) if (claim.lease) n++;
    return n;
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

  /**
   * A task written RUNNING by this process (or taken over from a process that is gone),
   * its dispatch not yet confirmed; `at`: when its lease was taken.
   */
  occupy(taskId: string, agent: string, lease: Lease, at: number, token = lease.fencingToken): void {
    if (this.running.has(taskId)) this.release(this.running, [taskId]);
    this.running.set(taskId, { lease, agent, token, confirmed: false, renewedAt: at });
    this.count(agent, 1);
  }

  /** The bus confirmed the dispatch of the attempt under `token`; false when this process does not run it (any more). */
  markConfirmed(taskId: string, token: number): boolean {
    const slot = this.running.get(taskId);
    if (slot?.token !== token) return false;
    slot.confirmed = true;
    return true;
  }

  hasUnconfirmed(): boolean {
    for (const slot of this.running.values()) if (!slot.confirmed) return true;
    return false;
  }

  /** Running attempts whose dispatch is not confirmed and whose lease was last renewed at or before `before`. */
  unconfirmed(before: number): { taskId: string; slot: RunningSlot }[] {
    const out: { taskId: string; slot: RunningSlot }[] = [];
    for (const [taskId, slot] of this.running) if (!slot.confirmed && slot.renewedAt <= before) out.push({ taskId, slot });
    return out;
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
      this.claims.set(t.taskId, { agent: t.agent, lease: null, takenAt: 0 });
      this.count(t.agent, 1);
    }
  }

  /** The lease a claim holds, once taken (`at`: when it was asked for). */
  setClaimLease(taskId: string, lease: Lease, at: number): void {
    const claim = this.claims.get(taskId);
    if (!claim) return;
    claim.lease = lease;
    claim.takenAt = at;
  }

  isClaimed(taskId: string): boolean {
    return this.claims.has(taskId);
  }

  /** A claimed task was written RUNNING: its claim becomes a running slot, its dispatch not yet confirmed. Returns its lease. */
  confirm(taskId: string): Lease | undefined {
    const claim = this.claims.get(taskId);
    if (!claim?.lease) return undefined;
    this.claims.delete(taskId);
    this.running.set(taskId, { lease: claim.lease, agent: claim.agent, token: claim.lease.fencingToken, confirmed: false, renewedAt: claim.takenAt });
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
