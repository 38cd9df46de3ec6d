import type { TaskStatus } from '../../domain/task.js';
import { DuplicateTaskError } from '../../errors.js';
import type { DispatchedAttempt, NewTaskRecord, OutboxEvent, Page, TaskLinks, TaskRecord, TaskStore, TransitionRecord } from '../../ports/task-store.js';
import { invalidInput, pgCode, UNIQUE_VIOLATION } from './pg-errors.js';
import { toSqlTime, type SqlClient } from './sql-client.js';
import { CONFIRM_DISPATCHES, CREATE_TASKS, NON_FINAL, UNCONFIRMED_DISPATCHES } from './task-sql.js';
import {
  newTaskToJson,
  outboxFromRow,
  TASK_COLUMNS,
  taskFromRow,
  transitionFromRow,
  type OutboxRow,
  type TaskRow,
  type TransitionRow,
} from './task-rows.js';

/**
 * The dependents of a JSON array of task ids. `tasks_dependencies_idx` holds only rows with
 * dependencies; its predicate is repeated here so the planner can use it.
 */
export const LIST_DEPENDENTS_OF = `SELECT ${TASK_COLUMNS} FROM tasks
  WHERE dependencies @> ANY (ARRAY(SELECT jsonb_build_array(d) FROM jsonb_array_elements($1::jsonb) AS d))
    AND dependencies <> '[]'::jsonb
  ORDER BY task_id`;

const UNCONFIRMED_DISPATCHES_STATEMENT = UNCONFIRMED_DISPATCHES(TASK_COLUMNS);

/** The paused reason under which a project's READY tasks still run (see Dispatcher's `dispatchable`). */
const BUDGET_EXHAUSTED_REASON = 'budget_exhausted';

/**
 * The task aggregate on PostgreSQL (or PGlite: the same SQL). Writes only its own tables
 * (tasks, task_transitions, outbox, dispatch_outbox); transitions are written by PostgresCommit.
 */
export class PostgresTaskStore implements TaskStore {
  constructor(private readonly sql: SqlClient) {}

  async createTasks(tasks: readonly NewTaskRecord[], by: string): Promise<void> {
    if (tasks.length === 0) return;
    const seen = new Set<string>();
    const repeated = new Set<string>();
    for (const t of tasks) (seen.has(t.taskId) ? repeated : seen).add(t.taskId);
    if (repeated.size > 0) throw new DuplicateTaskError([...repeated]);

    const batch = JSON.stringify(tasks.map(newTaskToJson));
    try {
      await this.sql.query(CREATE_TASKS, [batch, by], { name: 'task_store_create_tasks' });
    } catch (err) {
      if (pgCode(err) === UNIQUE_VIOLATION) {
        const existing = await this.#existingIds([...seen]);
        throw new DuplicateTaskError(existing.length > 0 ? existing : [...seen]);
      }
      throw invalidInput(err, 'cannot create tasks');
    }
  }

  async getTask(taskId: string): Promise<TaskRecord | null> {
    const { rows } = await this.sql.query<TaskRow>(
      `SELECT ${TASK_COLUMNS} FROM tasks WHERE task_id = $1`,
      [taskId],
      { name: 'task_store_get_task' },
    );
    return rows[0] ? taskFromRow(rows[0]) : null;
  }

  /** The tasks that exist among `taskIds`, in the order asked. */
  async getTasks(taskIds: readonly string[]): Promise<TaskRecord[]> {
    if (taskIds.length === 0) return [];
    const { rows } = await this.sql.query<TaskRow>(
      `SELECT ${TASK_COLUMNS} FROM tasks
       WHERE task_id = ANY (ARRAY(SELECT jsonb_array_elements_text($1::jsonb)))`,
      [JSON.stringify(taskIds)],
    );
    const byId = new Map(rows.map((r) => [r.task_id, taskFromRow(r)]));
    return [...new Set(taskIds)].flatMap((id) => byId.get(id) ?? []);
  }

  async getLinks(taskIds: readonly string[]): Promise<TaskLinks[]> {
    if (taskIds.length === 0) return [];
    const { rows } = await this.sql.query<{ task_id: string; status: TaskStatus; attempts: number; max_attempts: number; dependencies: string[] }>(
      `SELECT task_id, status, attempts, max_attempts, dependencies FROM tasks
       WHERE task_id = ANY (ARRAY(SELECT jsonb_array_elements_text($1::jsonb)))`,
      [JSON.stringify(taskIds)],
      { name: 'task_store_get_links' },
    );
    const byId = new Map(rows.map((r) => [r.task_id, r]));
    return [...new Set(taskIds)].flatMap((id) => {
      const r = byId.get(id);
      return r ? [{ taskId: r.task_id, status: r.status, attempts: r.attempts, maxAttempts: r.max_attempts, dependencies: r.dependencies }] : [];
    });
  }

  async loadNonFinal(page: Page & { statuses?: readonly TaskStatus[] }): Promise<TaskRecord[]> {
    const statuses = page.statuses ? JSON.stringify(page.statuses) : null;
    const ofStatus = `($2::jsonb IS NULL OR status IN (SELECT jsonb_array_elements_text($2::jsonb)))`;
    const { rows } =
      page.afterTaskId === undefined
        ? await this.sql.query<TaskRow>(
            `SELECT ${TASK_COLUMNS} FROM tasks WHERE ${NON_FINAL} AND ${ofStatus} ORDER BY task_id LIMIT $1`,
            [page.limit, statuses],
          )
        : await this.sql.query<TaskRow>(
            `SELECT ${TASK_COLUMNS} FROM tasks WHERE ${NON_FINAL} AND ${ofStatus} AND task_id > $3 ORDER BY task_id LIMIT $1`,
            [page.limit, statuses, page.afterTaskId],
          );
    return rows.map(taskFromRow);
  }

  async listByProject(projectId: string, statuses?: readonly TaskStatus[]): Promise<TaskRecord[]> {
    const { rows } =
      statuses === undefined
        ? await this.sql.query<TaskRow>(
            `SELECT ${TASK_COLUMNS} FROM tasks WHERE project_id = $1 ORDER BY created_at, task_id`,
            [projectId],
          )
        : await this.sql.query<TaskRow>(
            `SELECT ${TASK_COLUMNS} FROM tasks
             WHERE project_id = $1 AND status = ANY (ARRAY(SELECT jsonb_array_elements_text($2::jsonb)))
             ORDER BY created_at, task_id`,
            [projectId, JSON.stringify(statuses)],
          );
    return rows.map(taskFromRow);
  }

  async listReady(page: { offset: number; limit: number }): Promise<{ taskId: string; priority: number }[]> {
    const { rows } = await this.sql.query<{ task_id: string; priority: number }>(
      `SELECT task_id, priority FROM tasks WHERE status = 'READY'
       ORDER BY priority DESC, ready_at, task_id OFFSET $1 LIMIT $2`,
      [page.offset, page.limit],
    );
    return rows.map((r) => ({ taskId: r.task_id, priority: r.priority }));
  }

  async listStrayReady(before: Date, limit: number): Promise<{ taskId: string; priority: number }[]> {
    const { rows } = await this.sql.query<{ task_id: string; priority: number }>(
      `SELECT t.task_id, t.priority FROM tasks t JOIN projects p ON p.project_id = t.project_id
       WHERE t.status = 'READY' AND t.ready_at < $1::timestamp
         AND (p.state IN ('active', 'completed') OR (p.state = 'paused' AND p.paused_reason = '${BUDGET_EXHAUSTED_REASON}'))
       ORDER BY t.ready_at, t.task_id LIMIT $2`,
      [toSqlTime(before), limit],
      { name: 'task_store_list_stray_ready' },
    );
    return rows.map((r) => ({ taskId: r.task_id, priority: r.priority }));
  }

  /**
   * One query: `dependencies @> ANY (array of ["id"])`. The GIN index on dependencies is
   * `jsonb_path_ops`, which serves `@>` but not `?|`; a bitmap index scan runs the `@>`
   * probe once per element of the array and ORs the results, so each dependent comes
   * once, from the index.
   */
  async listDependentsOf(taskIds: readonly string[]): Promise<TaskRecord[]> {
    if (taskIds.length === 0) return [];
    const { rows } = await this.sql.query<TaskRow>(
      LIST_DEPENDENTS_OF,
      [JSON.stringify([...new Set(taskIds)])],
      { name: 'task_store_list_dependents_of' },
    );
    return rows.map(taskFromRow);
  }

  async listExpired(now: Date, limit: number): Promise<TaskRecord[]> {
    const { rows } = await this.sql.query<TaskRow>(
      `SELECT ${TASK_COLUMNS} FROM tasks WHERE status = 'RUNNING' AND deadline <= $1::timestamp
       ORDER BY deadline, task_id LIMIT $2`,
      [toSqlTime(now), limit],
    );
    return rows.map(taskFromRow);
  }

  async listTransitions(taskId: string): Promise<TransitionRecord[]> {
    const { rows } = await this.sql.query<TransitionRow>(
      `SELECT id, task_id, project_id, from_status, to_status, event, detail, at, by_instance
       FROM task_transitions WHERE task_id = $1 ORDER BY id`,
      [taskId],
    );
    return rows.map(transitionFromRow);
  }

  async maxFencingToken(): Promise<number> {
    const { rows } = await this.sql.query<{ max: number }>(
      `SELECT COALESCE(MAX(fencing_token), 0) AS max FROM tasks WHERE ${NON_FINAL}`,
    );
    return rows[0]?.max ?? 0;
  }

  async summarizeProject(projectId: string): Promise<{ unreservedEstimate: number; taskTypes: string[] }> {
    const { rows } = await this.sql.query<{ unreserved: number; types: string[] | null }>(
      `SELECT COALESCE(sum(estimated_cost) FILTER (WHERE status IN ('PENDING', 'WAITING_APPROVAL')), 0)::numeric AS unreserved,
              array_agg(DISTINCT task_type) AS types
       FROM tasks WHERE project_id = $1::text`,
      [projectId],
    );
    return { unreservedEstimate: rows[0]?.unreserved ?? 0, taskTypes: rows[0]?.types ?? [] };
  }

  async countByStatus(projectId?: string): Promise<Partial<Record<TaskStatus, number>>> {
    const { rows } =
      projectId === undefined
        ? await this.sql.query<{ status: TaskStatus; n: number }>(
            'SELECT status, count(*)::integer AS n FROM tasks GROUP BY status',
          )
        : await this.sql.query<{ status: TaskStatus; n: number }>(
            'SELECT status, count(*)::integer AS n FROM tasks WHERE project_id = $1 GROUP BY status',
            [projectId],
          );
    const counts: Partial<Record<TaskStatus, number>> = {};
    for (const r of rows) counts[r.status] = r.n;
    return counts;
  }

  async countByProjects(projectIds: readonly string[]): Promise<Record<string, Partial<Record<TaskStatus, number>>>> {
    const counts: Record<string, Partial<Record<TaskStatus, number>>> = {};
    if (projectIds.length === 0) return counts;
    const { rows } = await this.sql.query<{ project_id: string; status: TaskStatus; n: number }>(
      `SELECT project_id, status, count(*)::integer AS n FROM tasks
       WHERE project_id IN (SELECT jsonb_array_elements_text($1::jsonb)) GROUP BY project_id, status`,
      [JSON.stringify(projectIds)],
    );
    for (const r of rows) (counts[r.project_id] ??= {})[r.status] = r.n;
    return counts;
  }

  async listProjectPage(projectId: string, page: { statuses?: readonly TaskStatus[]; after?: string; limit: number }): Promise<TaskRecord[]> {
    // Keyset on (created_at, task_id) from the row of `after`: a range of tasks_project_created_idx
    // (two statements, so that the one with a cursor starts the index scan at it).
    const ofStatus = '($2::jsonb IS NULL OR status = ANY (ARRAY(SELECT jsonb_array_elements_text($2::jsonb))))';
    const statuses = page.statuses ? JSON.stringify(page.statuses) : null;
    const { rows } =
      page.after === undefined
        ? await this.sql.query<TaskRow>(
            `SELECT ${TASK_COLUMNS} FROM tasks WHERE project_id = $1::text AND ${ofStatus}
             ORDER BY created_at, task_id LIMIT $3::integer`,
            [projectId, statuses, page.limit],
          )
        : await this.sql.query<TaskRow>(
            `SELECT ${TASK_COLUMNS} FROM tasks
             WHERE project_id = $1::text AND ${ofStatus}
               AND (created_at, task_id) > (SELECT created_at, task_id FROM tasks WHERE task_id = $4::text)
             ORDER BY created_at, task_id LIMIT $3::integer`,
            [projectId, statuses, page.limit, page.after],
          );
    return rows.map(taskFromRow);
  }

  async listDueRetries(now: Date, limit: number): Promise<TaskRecord[]> {
    const { rows } = await this.sql.query<TaskRow>(
      `SELECT ${TASK_COLUMNS} FROM tasks WHERE status = 'PENDING' AND not_before <= $1::timestamp
       ORDER BY not_before, task_id LIMIT $2`,
      [toSqlTime(now), limit],
    );
    return rows.map(taskFromRow);
  }

  async listOutbox(limit: number, before?: Date): Promise<OutboxEvent[]> {
    const { rows } =
      before === undefined
        ? await this.sql.query<OutboxRow>(
            `SELECT event_id, event_type, project_id, task_id, payload, at FROM outbox ORDER BY at, event_id LIMIT $1`,
            [limit],
          )
        : await this.sql.query<OutboxRow>(
            `SELECT event_id, event_type, project_id, task_id, payload, at FROM outbox WHERE at < $2::timestamp ORDER BY at, event_id LIMIT $1`,
            [limit, toSqlTime(before)],
          );
    return rows.map(outboxFromRow);
  }

  async removeOutbox(eventId: string): Promise<boolean> {
    const { rowCount } = await this.sql.query(`DELETE FROM outbox WHERE event_id = $1::text`, [eventId]);
    return (rowCount ?? 0) > 0;
  }

  async listPromotable(before: Date, limit: number): Promise<string[]> {
    const { rows } = await this.sql.query<{ task_id: string }>(
      `SELECT t.task_id FROM tasks t JOIN projects p ON p.project_id = t.project_id
       WHERE ${NON_FINAL} AND t.status = 'PENDING' AND t.updated_at < $1::timestamp
         AND (t.not_before IS NULL OR t.not_before <= $1::timestamp)
         AND p.state IN ('active', 'completed')
         AND NOT EXISTS (
           SELECT 1 FROM jsonb_array_elements_text(t.dependencies) AS d(id) JOIN tasks x ON x.task_id = d.id
           WHERE NOT (x.status IN ('COMPLETED', 'CANCELLED') OR (x.status = 'FAILED' AND x.attempts >= x.max_attempts)))
       ORDER BY t.task_id LIMIT $2`,
      [toSqlTime(before), limit],
      { name: 'task_store_list_promotable' },
    );
    return rows.map((r) => r.task_id);
  }

  async confirmDispatches(attempts: readonly DispatchedAttempt[]): Promise<void> {
    if (attempts.length === 0) return;
    const rows = attempts.map((a) => ({ task_id: a.taskId, fencing_token: a.fencingToken }));
    try {
      await this.sql.query(CONFIRM_DISPATCHES, [JSON.stringify(rows)], { name: 'task_store_confirm_dispatches' });
    } catch (err) {
      throw invalidInput(err, `cannot confirm ${attempts.length} dispatches`);
    }
  }

  async listUnconfirmedDispatches(page: Page & { before: Date }): Promise<TaskRecord[]> {
    const { rows } = await this.sql.query<TaskRow>(
      UNCONFIRMED_DISPATCHES_STATEMENT,
      [toSqlTime(page.before), page.limit, page.afterTaskId ?? null],
      { name: 'task_store_unconfirmed_dispatches' },
    );
    return rows.map(taskFromRow);
  }

  async #existingIds(taskIds: readonly string[]): Promise<string[]> {
    const { rows } = await this.sql.query<{ task_id: string }>(
      `SELECT task_id FROM tasks WHERE task_id = ANY (ARRAY(SELECT jsonb_array_elements_text($1::jsonb)))
       ORDER BY task_id`,
      [JSON.stringify(taskIds)],
    );
    return rows.map((r) => r.task_id);
  }
}
