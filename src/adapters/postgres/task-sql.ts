/**
 * The statements that create tasks (PostgresTaskStore, and inside an event's ingest,
 * PostgresCommit) and the non-final predicate. Each write is a single statement, so it is
 * atomic on its own (autocommit) and costs one round trip.
 */

/** The predicate of `tasks_non_final_idx`, repeated verbatim so the planner uses it. */
export const NON_FINAL = `NOT (status IN ('COMPLETED', 'CANCELLED') OR (status = 'FAILED' AND attempts >= max_attempts))`;

/**
 * The dispatch outbox (migrations/005): a row per RUNNING attempt whose dispatch the bus has
 * not confirmed yet, written by the statement that writes the task RUNNING — a task created
 * RUNNING (createTasksCtes), a DISPATCH transition (transition-sql.ts) — in this CTE
 * (`INSERT INTO dispatch_outbox … SELECT task_id, fencing_token, at …`, then
 * UNCONFIRMED_UPSERT); removed by CONFIRM_DISPATCHES, or by the transition that ends the
 * attempt (`dispatch_ended` in transition-sql.ts), whichever comes first; the sweep
 * (UNCONFIRMED_DISPATCHES) removes any record left of an attempt that ended. A task
 * dispatched again (a retry) replaces its earlier attempt's row. The table is the task
 * aggregate's.
 */
export const UNCONFIRMED_CTE = `unconfirmed AS (
  INSERT INTO dispatch_outbox (task_id, fencing_token, at)`;
export const UNCONFIRMED_UPSERT = `ON CONFLICT (task_id) DO UPDATE SET fencing_token = EXCLUDED.fencing_token, at = EXCLUDED.at`;

/**
 * The CTEs `batch`, `inserted`, `unconfirmed` and `audit` that insert new tasks: `tasks` is
 * the batch as a JSON array (see newTaskToJson), `by` the creating instance, `gate` a
 * condition every row is inserted under (e.g. that the event was marked processed).
 * Inserts the tasks, then their audit rows: the creation (null → PENDING, or the initial
 * status), and for a task that took steps before its first write (`created_steps`, e.g.
 * PENDING → READY → RUNNING) one row per step, in order; such a row starts at version 1 +
 * its steps. A task created RUNNING (dispatched at creation) gets its dispatch outbox row
 * (see UNCONFIRMED_CTE). With `skipExisting`, a task id that exists already is skipped
 * instead of failing the statement.
 */
export function createTasksCtes(tasks: string, by: string, gate: string, skipExisting: boolean): string {
  return `batch AS (
  SELECT * FROM jsonb_to_recordset(${tasks}::jsonb) AS x(
    task_id text, project_id text, task_type text, assigned_to text, status text, priority integer,
    input jsonb, output jsonb, dependencies jsonb, estimated_cost numeric, actual_cost numeric,
    created_at timestamp, started_at timestamp, completed_at timestamp, attempts integer,
    max_attempts integer, last_error text, deadline timestamp, not_before timestamp,
    fencing_token bigint, timeout_ms integer, snapshot jsonb, machine_version text, created_steps jsonb,
    trace_parent text)
  WHERE ${gate}
), inserted AS (
  INSERT INTO tasks (task_id, project_id, task_type, assigned_to, status, priority, input, output,
    dependencies, estimated_cost, actual_cost, created_at, started_at, completed_at, attempts,
    max_attempts, last_error, deadline, not_before, fencing_token, timeout_ms, snapshot,
    machine_version, version, ready_at, updated_at, trace_parent)
  SELECT task_id, project_id, task_type, assigned_to, status, priority, input, output,
    COALESCE(dependencies, '[]'::jsonb), estimated_cost, actual_cost, created_at, started_at,
    completed_at, attempts, max_attempts, last_error, deadline, not_before, fencing_token, timeout_ms,
    NULLIF(snapshot -> 'v', 'null'::jsonb), machine_version, 1 + COALESCE(jsonb_array_length(created_steps), 0),
    CASE WHEN status = 'READY' OR created_steps @> '[{"to": "READY"}]' THEN created_at END, created_at, trace_parent
  FROM batch${skipExisting ? ' ON CONFLICT (task_id) DO NOTHING' : ''}
  RETURNING task_id, project_id, status, created_at, version, fencing_token
), ${UNCONFIRMED_CTE}
  SELECT task_id, fencing_token, created_at FROM inserted WHERE status = 'RUNNING' AND fencing_token IS NOT NULL
  ${UNCONFIRMED_UPSERT}
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

/**
 * $1 the confirmed dispatches as a JSON array of {task_id, fencing_token}: their dispatch
 * outbox rows removed, one statement for a batch. A row of another attempt of the task
 * (another token) stays. The rows are locked in key order first, so two confirmations
 * that overlap (a taken-over attempt and its late first owner) wait for each other
 * instead of deadlocking.
 */
export const CONFIRM_DISPATCHES = `
WITH locked AS (
  SELECT d.task_id FROM dispatch_outbox d
  JOIN jsonb_to_recordset($1::jsonb) AS x(task_id text, fencing_token bigint)
    ON d.task_id = x.task_id AND d.fencing_token = x.fencing_token
  ORDER BY d.task_id
  FOR UPDATE OF d
)
DELETE FROM dispatch_outbox d USING locked WHERE d.task_id = locked.task_id`;

/**
 * $1 before, $2 limit, $3 after this task id (null: from the start). The RUNNING attempts
 * whose dispatch outbox row was written before $1 (their dispatch unconfirmed since), by
 * task id, a page at a time; `ended` removes, in the same statement, the rows written
 * before $1 of attempts that ended unconfirmed (the task left RUNNING, or runs under
 * another token), locked in task id order (`stale`) so it cannot deadlock another writer. The table holds only unconfirmed dispatches: read whole, it stays cheap.
 */
export const UNCONFIRMED_DISPATCHES = (columns: string) => `
WITH stale AS (
  -- Locked in task id order, as every writer of the table takes its rows; one another
  -- writer holds is skipped (that writer removes it: a confirmation, a batch ending it).
  SELECT d.task_id FROM dispatch_outbox d WHERE d.at < $1::timestamp
    AND NOT EXISTS (SELECT 1 FROM tasks t WHERE t.task_id = d.task_id AND t.status = 'RUNNING' AND t.fencing_token = d.fencing_token)
  ORDER BY d.task_id
  FOR UPDATE OF d SKIP LOCKED
), ended AS (
  DELETE FROM dispatch_outbox d USING stale s WHERE d.task_id = s.task_id
)
SELECT ${columns} FROM tasks
WHERE status = 'RUNNING'
  AND (task_id, fencing_token) IN (
    SELECT o.task_id, o.fencing_token FROM dispatch_outbox o
    WHERE o.at < $1::timestamp AND ($3::text IS NULL OR o.task_id > $3::text))
ORDER BY task_id LIMIT $2`;
