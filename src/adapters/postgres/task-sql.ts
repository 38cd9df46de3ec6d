/**
 * The statements of PostgresTaskStore. Each write is a single statement, so it is
 * atomic on its own (autocommit) and costs one round trip.
 */

/** The predicate of `tasks_non_final_idx`, repeated verbatim so the planner uses it. */
export const NON_FINAL = `NOT (status IN ('COMPLETED', 'CANCELLED') OR (status = 'FAILED' AND attempts >= max_attempts))`;

/** SQLSTATE raised (via orchestrator_fail) when a transition's budget effect is refused. */
export const BUDGET_REFUSED = 'LA001';

/**
 * $1 the batch as a JSON array (see newTaskToJson), $2 the creating instance.
 * Inserts the tasks, then one creation audit row per task.
 */
export const CREATE_TASKS = `
WITH batch AS (
  SELECT * FROM jsonb_to_recordset($1::jsonb) AS x(
    task_id text, project_id text, task_type text, assigned_to text, status text, priority integer,
    input jsonb, output jsonb, dependencies jsonb, estimated_cost numeric, actual_cost numeric,
    created_at timestamp, started_at timestamp, completed_at timestamp, attempts integer,
    max_attempts integer, last_error text, deadline timestamp, not_before timestamp,
    fencing_token bigint, timeout_ms integer, snapshot jsonb, machine_version text)
), inserted AS (
  INSERT INTO tasks (task_id, project_id, task_type, assigned_to, status, priority, input, output,
    dependencies, estimated_cost, actual_cost, created_at, started_at, completed_at, attempts,
    max_attempts, last_error, deadline, not_before, fencing_token, timeout_ms, snapshot,
    machine_version, version, ready_at, updated_at)
  SELECT task_id, project_id, task_type, assigned_to, status, priority, input, output,
    COALESCE(dependencies, '[]'::jsonb), estimated_cost, actual_cost, created_at, started_at,
    completed_at, attempts, max_attempts, last_error, deadline, not_before, fencing_token, timeout_ms,
    snapshot -> 'v', machine_version, 1, CASE WHEN status = 'READY' THEN created_at END, created_at
  FROM batch
  RETURNING task_id, project_id, status, created_at
)
INSERT INTO task_transitions (task_id, project_id, from_status, to_status, event, detail, at, by_instance)
SELECT task_id, project_id, NULL, status, 'CREATED', NULL, created_at, $2::text FROM inserted ORDER BY task_id`;

/**
 * One statement for a whole transition:
 * - `updated`: the task row, only if its version matches and the carried fencing token
 *   is not older than the stored one; patch keys absent from $5 keep their column;
 * - `audit`: the transition row, only if `updated` wrote;
 * - `budget`: the project's reserved/spent, only if `updated` wrote; with `enforce`, only
 *   if the project is active and spent + reserved stay within the limit. The row lock
 *   makes a concurrent reservation re-check against the committed amounts, so several
 *   processes cannot overspend together;
 * - `raised`: the outbox rows, only if `updated` wrote;
 * - the final row tells what happened. When the task was written but the budget was
 *   refused, orchestrator_fail aborts the statement, undoing everything.
 *
 * $1 task id, $2 expected version, $3 carried fencing token, $4 to, $5 patch (JSON),
 * $6 snapshot (JSON), $7 machine version, $8 at, $9 from, $10 event, $11 detail (JSON),
 * $12 by, $13 budget effect (JSON or null), $14 raised events (JSON array or null).
 */
export const APPLY_TRANSITION = `
WITH before AS (
  SELECT version, fencing_token FROM tasks WHERE task_id = $1::text
), updated AS (
  UPDATE tasks t SET
    status = $4::text,
    attempts = CASE WHEN $5::jsonb ? 'attempts' THEN ($5::jsonb ->> 'attempts')::integer ELSE t.attempts END,
    deadline = CASE WHEN $5::jsonb ? 'deadline' THEN ($5::jsonb ->> 'deadline')::timestamp ELSE t.deadline END,
    not_before = CASE WHEN $5::jsonb ? 'notBefore' THEN ($5::jsonb ->> 'notBefore')::timestamp ELSE t.not_before END,
    fencing_token = CASE WHEN $5::jsonb ? 'fencingToken' THEN ($5::jsonb ->> 'fencingToken')::bigint ELSE t.fencing_token END,
    last_error = CASE WHEN $5::jsonb ? 'lastError' THEN $5::jsonb ->> 'lastError' ELSE t.last_error END,
    started_at = CASE WHEN $5::jsonb ? 'startedAt' THEN ($5::jsonb ->> 'startedAt')::timestamp ELSE t.started_at END,
    completed_at = CASE WHEN $5::jsonb ? 'completedAt' THEN ($5::jsonb ->> 'completedAt')::timestamp ELSE t.completed_at END,
    output = CASE WHEN $5::jsonb ? 'output' THEN NULLIF($5::jsonb -> 'output', 'null'::jsonb) ELSE t.output END,
    actual_cost = CASE WHEN $5::jsonb ? 'actualCost' THEN ($5::jsonb ->> 'actualCost')::numeric ELSE t.actual_cost END,
    snapshot = $6::jsonb,
    machine_version = $7::text,
    ready_at = CASE WHEN $4::text = 'READY' AND t.status <> 'READY' THEN $8::timestamp ELSE t.ready_at END,
    updated_at = $8::timestamp,
    version = t.version + 1
  WHERE t.task_id = $1::text AND t.version = $2::bigint
    AND ($3::bigint IS NULL OR t.fencing_token IS NULL OR t.fencing_token <= $3::bigint)
  RETURNING t.task_id, t.project_id, t.version
), audit AS (
  INSERT INTO task_transitions (task_id, project_id, from_status, to_status, event, detail, at, by_instance)
  SELECT task_id, project_id, $9::text, $4::text, $10::text, $11::jsonb, $8::timestamp, $12::text FROM updated
), effect AS (
  SELECT $13::jsonb ->> 'projectId' AS project_id,
         COALESCE(($13::jsonb ->> 'reserve')::numeric, 0) AS reserve,
         COALESCE(($13::jsonb ->> 'release')::numeric, 0) AS release,
         COALESCE(($13::jsonb ->> 'spend')::numeric, 0) AS spend,
         COALESCE(($13::jsonb ->> 'enforce')::boolean, false) AS enforce
  WHERE $13::jsonb IS NOT NULL
), budget AS (
  UPDATE projects p SET
    reserved = GREATEST(p.reserved + e.reserve - e.release, 0),
    spent = p.spent + e.spend,
    updated_at = $8::timestamp
  FROM effect e
  WHERE p.project_id = e.project_id AND EXISTS (SELECT 1 FROM updated)
    AND (NOT e.enforce OR (p.state = 'active' AND (p.budget_limit IS NULL
      OR p.spent + e.spend + GREATEST(p.reserved + e.reserve - e.release, 0) <= p.budget_limit)))
  RETURNING p.project_id
), raised AS (
  INSERT INTO outbox (event_id, event_type, project_id, task_id, payload, at)
  SELECT r.event_id, r.event_type, r.project_id, r.task_id, r.payload, r.at
  FROM jsonb_to_recordset(COALESCE($14::jsonb, '[]'::jsonb)) AS r(
    event_id text, event_type text, project_id text, task_id text, payload jsonb, at timestamp)
  WHERE EXISTS (SELECT 1 FROM updated)
  ON CONFLICT (event_id) DO NOTHING
)
SELECT (SELECT version FROM updated) AS new_version,
       (SELECT version FROM before) AS old_version,
       (SELECT fencing_token FROM before) AS old_fencing_token,
       EXISTS (SELECT 1 FROM before) AS found,
       CASE WHEN EXISTS (SELECT 1 FROM effect) AND EXISTS (SELECT 1 FROM updated)
             AND NOT EXISTS (SELECT 1 FROM budget)
            THEN orchestrator_fail('${BUDGET_REFUSED}', 'budget effect refused')
            ELSE true END AS budget_ok`;

export interface TransitionOutcome {
  new_version: number | null;
  old_version: number | null;
  old_fencing_token: number | null;
  found: boolean;
}

/** $1 project id: what a refused budget effect is explained with. */
export const PROJECT_BUDGET = `SELECT state, budget_limit, spent, reserved FROM projects WHERE project_id = $1`;

export interface ProjectBudgetRow {
  state: string;
  budget_limit: number | null;
  spent: number;
  reserved: number;
}
