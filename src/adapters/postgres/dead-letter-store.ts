import type { DeadLetter, DeadLetterStore } from '../../ports/dead-letter-store.js';
import { invalidInput } from './pg-errors.js';
import { toSqlTime, type SqlClient } from './sql-client.js';

interface DeadLetterRow {
  id?: string;
  task_id: string;
  project_id: string;
  reason: string;
  last_error: string | null;
  attempts: number;
  at: Date;
}

/** Dead letters on PostgreSQL (or PGlite: the same SQL). Writes only dead_letters. */
export class PostgresDeadLetterStore implements DeadLetterStore {
  constructor(private readonly sql: SqlClient) {}

  async record(l: DeadLetter): Promise<void> {
    await this.sql.query(
      `INSERT INTO dead_letters (task_id, project_id, reason, last_error, attempts, at)
       VALUES ($1::text, $2::text, $3::text, $4::text, $5::integer, $6::timestamp)`,
      [l.taskId, l.projectId, l.reason, l.lastError, l.attempts, toSqlTime(l.at)],
    ).catch((err: unknown) => {
      throw invalidInput(err, `cannot record a dead letter for task ${l.taskId}`);
    });
  }

  async list(projectId?: string): Promise<DeadLetter[]> {
    const { rows } = await this.sql.query<DeadLetterRow>(
      'SELECT task_id, project_id, reason, last_error, attempts, at FROM dead_letters WHERE $1::text IS NULL OR project_id = $1::text ORDER BY id',
      [projectId ?? null],
    );
    return rows.map((r) => ({ taskId: r.task_id, projectId: r.project_id, reason: r.reason, lastError: r.last_error, attempts: r.attempts, at: r.at }));
  }

  async listPage(page: { projectId?: string; before?: number; limit: number }): Promise<(DeadLetter & { id: number })[]> {
    const { rows } = await this.sql.query<DeadLetterRow>(
      `SELECT id::text AS id, task_id, project_id, reason, last_error, attempts, at FROM dead_letters
       WHERE ($1::text IS NULL OR project_id = $1::text) AND ($2::bigint IS NULL OR id < $2::bigint)
       ORDER BY id DESC LIMIT $3::integer`,
      [page.projectId ?? null, page.before ?? null, page.limit],
    );
    return rows.map((r) => ({ id: Number(r.id), taskId: r.task_id, projectId: r.project_id, reason: r.reason, lastError: r.last_error, attempts: r.attempts, at: r.at }));
  }
}
