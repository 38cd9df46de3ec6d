/**
 * The statements that create tasks (PostgresTaskStore, and inside an event's ingest,
 * PostgresCommit) and the non-final predicate. Each write is a single statement, so it is
 * atomic on its own (autocommit) and costs one round trip.
 */

/** The predicate of `tasks_non_final_idx`, repeated verbatim so the planner uses it. */
export const NON_FINAL = `NOT (status IN ('COMPLETED', 'CANCELLED') OR (status = 'FAILED' AND attempts >= max_attempts))`;

/**
 * The CTEs `batch`, `inserted` and `audit` that insert new tasks: `tasks` is the batch as
 * a JSON array (see newTaskToJson), `by` the creating instance, `gate` a condition every
 * row is inserted under (e.g. that the event was marked processed). Inserts the tasks,
 * then their audit rows: the creation (null → PENDING, or the initial status), and for a
 * task that took steps before its first write (`created_steps`, e.g. PENDING → READY →
 * RUNNING) one row per step, in order; such a row starts at version 1 + its steps. With `skipExisting`,
 * a task id that exists already is skipped instead of failing the statement.
 */
export function createTasksCtes(tasks: string, by: string, gate: string, skipExisting: boolean): string {
  return `batch AS (
  SELECT * FROM jsonb_to_recordset(${tasks}::jsonb) AS x(
    task_id text, project_id text, task_type text, assigned_to text, status text, priority integer,
    input jsonb, output jsonb, dependencies jsonb, estimated_cost numeric, actual_cost numeric,
    created_at timestamp, started_at timestamp, completed_at timestamp, attempts integer,
    max_attempts integer, last_error text, deadline timestamp, not_before timestamp,
    fencing_token bigint, timeout_ms integer, snapshot jsonb, machine_version text, created_steps jsonb)
  WHERE ${gate}
), inserted AS (
  INSERT INTO tasks (task_id, project_id, task_type, assigned_to, status, priority, input, output,
    dependencies, estimated_cost, actual_cost, created_at, started_at, completed_at, attempts,
    max_attempts, last_error, deadline, not_before, fencing_token, timeout_ms, snapshot,
    machine_version, version, ready_at, updated_at)
  SELECT task_id, project_id, task_type, assigned_to, status, priority, input, output,
    COALESCE(dependencies, '[]'::jsonb), estimated_cost, actual_cost, created_at, started_at,
    completed_at, attempts, max_attempts, last_error, deadline, not_before, fencing_token, timeout_ms,
    snapshot -> 'v', machine_version, 1 + COALESCE(jsonb_array_length(created_steps), 0),
    CASE WHEN status = 'READY' OR created_steps @> '[{"to": "READY"}]' THEN created_at END, created_at
  FROM batch${skipExisting ? ' ON CONFLICT (task_id) DO NOTHING' : ''}
  RETURNING task_id, project_id, status, created_at, version
), audit AS (
  INSERT INTO task_transitions (task_id, project_id, from_status, to_status, event, detail, at, by_instance)
  SELECT task_id, project_id, from_status, to_status, event, detail, created_at, ${by}::text
  FROM (
    SELECT i.task_id, i.project_id, NULL AS from_status, CASE WHEN i.version > 1 THEN 'PENDING' ELSE i.status END AS to_status,
           'CREATED' AS event, NULL::jsonb AS detail, i.created_at, 0::bigint AS step
    FROM inserted i
    UNION ALL
    SELECT i.task_id, i.project_id, s.step ->> 'from', s.step ->> 'to', s.step ->> 'event',
           NULLIF(s.step -> 'detail', 'null'::jsonb), i.created_at, s.n
    FROM inserted i JOIN batch b ON b.task_id = i.task_id
    CROSS JOIN LATERAL jsonb_array_elements(b.created_steps) WITH ORDINALITY AS s(step, n)
    WHERE i.version > 1
  ) steps
  ORDER BY task_id, step
)`;
}

/** The batch's ids that were not inserted (taken already), as a JSON array. */
export const SKIPPED_IDS = `COALESCE((SELECT jsonb_agg(b.task_id ORDER BY b.task_id) FROM batch b
    WHERE NOT EXISTS (SELECT 1 FROM inserted i WHERE i.task_id = b.task_id)), '[]'::jsonb)`;

/**
 * $1 the batch as a JSON array (see newTaskToJson), $2 the creating instance (see
 * createTasksCtes). With `skipExisting` (no savepoint needed inside a transaction), the
 * result row lists the skipped ids, and the caller fails the transaction.
 */
function createTasksStatement(skipExisting: boolean): string {
  return `
WITH ${createTasksCtes('$1', '$2', 'true', skipExisting)}
SELECT ${skipExisting ? SKIPPED_IDS : `'[]'::jsonb`} AS skipped`;
}

export const CREATE_TASKS = createTasksStatement(false);
export const CREATE_NEW_TASKS = createTasksStatement(true);
