import type { TaskStatus } from '../domain/task.js';

/** An instance's row in the ledger (see NoticeLedger). */
export interface InstanceWatermark {
  instanceId: string;
  /** Every audit row of the instance with id >= this may not have been announced yet. */
  noticesFrom: number;
  /** The database's time of the row's last heartbeat (or claim). */
  heartbeatAt: Date;
}

/** An audit row (task_transitions), as much of it as its status notice carries. */
export interface AuditNotice {
  /** The audit row's id (task_transitions.id). */
  id: number;
  taskId: string;
  projectId: string;
  taskType: string;
  from: TaskStatus | null;
  to: TaskStatus;
  at: Date;
  /** The task's attempts once the transition was made (its dispatches up to this row). */
  attempt: number;
}

/**
 * The notice watermarks: one row per live orchestrator instance (table `instances`), the
 * only table this port writes. The durable record of what is to be announced is the audit
 * log, written with every transition; an instance's row says from which audit id its own
 * rows may not have been announced (published on the bus) yet. Written by a heartbeat,
 * about once a second: never per transition. Times are the database's, so the instances'
 * clocks need not agree.
 */
export interface NoticeLedger {
  /**
   * Writes the instance's row (creating it): heartbeat now, `notices_from` = `noticesFrom`,
   * or, when null, the id the audit log hands out next (nothing of the instance is
   * unannounced). Returns the last id the audit log's sequence has handed out (0 when
   * none), read in the same statement: a write sent after this resolves gets ids above it.
   */
  heartbeat(instanceId: string, noticesFrom: number | null): Promise<number>;
  /** The instance's row; null when it has none. */
  get(instanceId: string): Promise<InstanceWatermark | null>;
  /**
   * Takes one row, other than `exceptInstanceId`'s, whose heartbeat is older than
   * `olderThanSeconds` (by the database's clock): its heartbeat is set to now, so that no
   * other live instance takes it meanwhile, and the row is returned as it is now. Several
   * instances claiming at once get different rows (or none). Null when there is none.
   */
  claimStale(olderThanSeconds: number, exceptInstanceId: string): Promise<InstanceWatermark | null>;
  /**
   * Deletes the instance's row; with `ifHeartbeatAt`, only if its heartbeat is still that
   * one (a claimed row its owner has not written since). True when it was deleted.
   */
  release(instanceId: string, ifHeartbeatAt?: Date): Promise<boolean>;
  /**
   * The instance's audit rows with id >= `fromId` (and <= `toId` when given), by id, at
   * most `limit`: a page of what it may not have announced.
   */
  listAuditSince(instanceId: string, fromId: number, limit: number, toId?: number): Promise<AuditNotice[]>;
}
