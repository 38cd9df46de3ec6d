/**
 * Distributed leases with fencing. A lease is held by whoever knows its random `token`;
 * `fencingToken` grows with every acquisition of any resource, so a write that carries an
 * older fencing token than the one stored can be refused (the holder lost its lease).
 */
export interface Lease {
  resource: string;
  token: string;
  fencingToken: number;
  ttlMs: number;
}

export interface LockManager {
  /** Takes the lease when free (or expired); null when another holder has it. */
  acquire(resource: string, ttlMs: number): Promise<Lease | null>;
  /** Extends the lease; false when it was lost (expired or taken by another holder). */
  extend(lease: Lease, ttlMs: number): Promise<boolean>;
  /** Releases the lease; false when it was no longer held by this token. */
  release(lease: Lease): Promise<boolean>;
  /**
   * Takes many leases in one round trip (the scheduler's batch dispatch): a lease or null
   * per resource, at its index; each gets its own, increasing fencing token.
   */
  acquireMany(resources: readonly string[], ttlMs: number): Promise<(Lease | null)[]>;
  /** Extends many leases (each to its own TTL) in one round trip; per lease, whether it was still held. */
  extendMany(entries: readonly { lease: Lease; ttlMs: number }[]): Promise<boolean[]>;
  /** Releases many leases in one round trip; per lease, whether it was still held. */
  releaseMany(leases: readonly Lease[]): Promise<boolean[]>;
  /**
   * Makes every later fencing token greater than `value`. Called at start with the
   * highest token recorded in the task store, so that a lock store that lost its data
   * never hands out a token the store would take as stale.
   */
  ensureFencingAbove(value: number): Promise<void>;
}
