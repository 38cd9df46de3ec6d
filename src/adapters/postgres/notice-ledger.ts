import type { TaskStatus } from '../../domain/task.js';
import type { AuditNotice, InstanceWatermark, NoticeLedger } from '../../ports/notice-ledger.js';
import { invalidInput } from './pg-errors.js';
import { toSqlTime, type SqlClient } from './sql-client.js';

/** The database's time, UTC, to the millisecond: what a JS Date holds, so a row's time read back compares equal. */
const NOW = `date_trunc('milliseconds', now() AT TIME ZONE 'UTC')`;

/**
 * $1 instance, $2 notices_from (null: the audit log's next id). The last value the audit
 * log's id sequence has handed out (committed or not: sequences are not transactional),
 * read in the same statement as the heartbeat; null before its first id.
 */
const HEARTBEAT = `
WITH seq AS (SELECT COALESCE(pg_sequence_last_value('task_transitions_id_seq'::regclass), 0) AS last)
INSERT INTO instances (instance_id, heartbeat_at, notices_from)
SELECT $1::text, ${NOW}, COALESCE($2::bigint, seq.last + 1) FROM seq
ON CONFLICT (instance_id) DO UPDATE SET heartbeat_at = EXCLUDED.heartbeat_at, notices_from = EXCLUDED.notices_from
RETURNING (SELECT last FROM seq) AS last`;

/**
 * $1 stale period (seconds), $2 the claiming instance. One stale row, locked (SKIP LOCKED:
 * a concurrent claimer takes another or none), its heartbeat set to now.
 */
const CLAIM_STALE = `
UPDATE instances i SET heartbeat_at = ${NOW}
FROM (
  SELECT instance_id FROM instances
  WHERE instance_id <> $2::text AND heartbeat_at < (now() AT TIME ZONE 'UTC') - make_interval(secs => $1::double precision)
  ORDER BY heartbeat_at, instance_id LIMIT 1
  FOR UPDATE SKIP LOCKED
) s
WHERE i.instance_id = s.instance_id
RETURNING i.instance_id, i.notices_from, i.heartbeat_at`;

/**
 * $1 instance, $2 from id, $3 limit, $4 to id (null: no bound). The task type from the
 * task's row; the attempt is the task's dispatches (writes into RUNNING) up to this row,
 * read through the audit log's primary key (task_id, id). The id range is found through
 * task_transitions_id_brin (migration 006).
 */
export const AUDIT_SINCE = `
SELECT a.id, a.task_id, a.project_id, a.from_status, a.to_status, a.at, COALESCE(t.task_type, '') AS task_type,
  (SELECT count(*) FROM task_transitions d
   WHERE d.task_id = a.task_id AND d.id <= a.id AND d.to_status = 'RUNNING' AND d.from_status IS DISTINCT FROM 'RUNNING')::integer AS attempt
FROM task_transitions a LEFT JOIN tasks t ON t.task_id = a.task_id
WHERE a.id >= $2::bigint AND ($4::bigint IS NULL OR a.id <= $4::bigint) AND a.by_instance = $1::text
ORDER BY a.id LIMIT $3::integer`;

interface InstanceRow {
  instance_id: string;
  notices_from: number;
  heartbeat_at: Date;
}

interface AuditRow {
  id: number;
  task_id: string;
  project_id: string;
  from_status: TaskStatus | null;
  to_status: TaskStatus;
  at: Date;
  task_type: string;
  attempt: number;
}

const watermark = (r: InstanceRow): InstanceWatermark => ({ instanceId: r.instance_id, noticesFrom: r.notices_from, heartbeatAt: r.heartbeat_at });

/** The notice watermarks on PostgreSQL (or PGlite: the same SQL). Writes only `instances`; reads the audit log. */
export class PostgresNoticeLedger implements NoticeLedger {
  constructor(private readonly sql: SqlClient) {}

  async heartbeat(instanceId: string, noticesFrom: number | null): Promise<number> {
    try {
      const { rows } = await this.sql.query<{ last: number }>(HEARTBEAT, [instanceId, noticesFrom], { name: 'notice_ledger_heartbeat' });
      return rows[0]!.last;
    } catch (err) {
      throw invalidInput(err, `cannot write the heartbeat of instance ${instanceId}`);
    }
  }

  async get(instanceId: string): Promise<InstanceWatermark | null> {
    const { rows } = await this.sql.query<InstanceRow>(
      'SELECT instance_id, notices_from, heartbeat_at FROM instances WHERE instance_id = $1::text',
      [instanceId],
    );
    return rows[0] ? watermark(rows[0]) : null;
  }

  async claimStale(olderThanSeconds: number, exceptInstanceId: string): Promise<InstanceWatermark | null> {
    const { rows } = await this.sql.query<InstanceRow>(CLAIM_STALE, [olderThanSeconds, exceptInstanceId], { name: 'notice_ledger_claim_stale' });
    return rows[0] ? watermark(rows[0]) : null;
  }

  async release(instanceId: string, ifHeartbeatAt?: Date): Promise<boolean> {
    const { rowCount } = await this.sql.query(
      'DELETE FROM instances WHERE instance_id = $1::text AND ($2::timestamp IS NULL OR heartbeat_at = $2::timestamp)',
      [instanceId, ifHeartbeatAt ? toSqlTime(ifHeartbeatAt) : null],
    );
    return rowCount > 0;
  }

  async listAuditSince(instanceId: string, fromId: number, limit: number, toId?: number): Promise<AuditNotice[]> {
    const { rows } = await this.sql.query<AuditRow>(AUDIT_SINCE, [instanceId, fromId, limit, toId ?? null], { name: 'notice_ledger_audit_since' });
    return rows.map((r) => ({
      id: r.id,
      taskId: r.task_id,
      projectId: r.project_id,
      taskType: r.task_type,
      from: r.from_status,
      to: r.to_status,
      at: r.at,
      attempt: r.attempt,
    }));
  }
}
