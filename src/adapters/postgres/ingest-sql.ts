/** The statements of an event's ingest (PostgresCommit.ingestEvent). */
import { PROJECT_COLUMNS } from './project-rows.js';
import { SKIPPED_IDS, createTasksCtes } from './task-sql.js';

/**
 * For each pair of $2 (a JSON array of {old, new}), the waiting dependents of `old` in
 * project $1 depend on `new` instead (a new task itself keeps its dependency on the old
 * one): order kept, a dependency listed twice after the swap kept once. The rows are locked
 * in task id order first, the order the transition batches lock theirs in, so the two
 * cannot deadlock.
 */
export const SUPERSEDE = `
WITH s AS (
  SELECT * FROM jsonb_to_recordset($2::jsonb) AS x(old text, new text)
), target AS MATERIALIZED (
  SELECT t.task_id FROM tasks t
  WHERE t.project_id = $1::text AND t.status IN ('PENDING', 'WAITING_APPROVAL')
    AND EXISTS (SELECT 1 FROM s WHERE t.dependencies @> jsonb_build_array(s.old) AND t.task_id <> s.new)
  ORDER BY t.task_id
  FOR NO KEY UPDATE
)
UPDATE tasks t SET dependencies = (
  SELECT COALESCE(jsonb_agg(to_jsonb(x.dep) ORDER BY x.pos), '[]'::jsonb)
  FROM (SELECT COALESCE((SELECT s.new FROM s WHERE s.old = e.d AND s.new <> t.task_id LIMIT 1), e.d) AS dep, min(e.pos) AS pos
        FROM jsonb_array_elements_text(t.dependencies) WITH ORDINALITY AS e(d, pos)
        GROUP BY 1) x)
FROM target WHERE t.task_id = target.task_id`;

/** SQLSTATE raised (via orchestrator_fail) when INGEST_ACTIVE cannot write all it was given. */
export const INGEST_INCOMPLETE = 'LA003';

/**
 * $1 project, $2 amount, $3 enforce, $4 at: reserves the estimates of tasks created READY,
 * when the project is active and, with enforce, spent + reserved stay within the limit.
 * The row after it; none: nothing reserved (the tasks are created PENDING and promoted one by one).
 */
export const RESERVE_FOR_READY = `
UPDATE projects SET reserved = reserved + $2::numeric, updated_at = $4::timestamp
WHERE project_id = $1::text AND state = 'active'
  AND (NOT $3::boolean OR budget_limit IS NULL OR spent + reserved + $2::numeric <= budget_limit)
RETURNING ${PROJECT_COLUMNS}`;

/**
 * An event of an active project in one statement (one round trip, atomic on its own),
 * for `onlyIfActive` ingests without project, approval or supersession:
 *
 * - `p`: the project, only if it is active (read without a lock: as the transaction's own
 *   check would, a concurrent state change may land just after);
 * - `cleared`, `marked`: the event's outbox row cleared and its processed mark, only when
 *   `p` found the project — the mark is the first write, so a concurrent ingest of the
 *   same id waits on it and then finds it taken (written = false);
 * - `reserved`: with READY tasks ($7 not null), their estimates under the project row's
 *   lock, state and limit re-checked there;
 * - `batch`/`inserted`/`audit`: the tasks (READY variants where given), only when marked;
 * - the final row: active, written, and the project's columns after the reservation
 *   (nulls without one). When the event was marked but the reservation did not
 *   fit or a task id was taken, INGEST_INCOMPLETE aborts the statement (nothing written)
 *   and the caller ingests the event the general way.
 *
 * $1 event id, $2 project, $3 event type, $4 at, $5 the tasks as a JSON array (see
 * newTaskToJson), $6 by, $7 the READY tasks' estimates (null: no READY task), $8 enforce.
 */
export const INGEST_ACTIVE = `
WITH p AS MATERIALIZED (
  SELECT project_id FROM projects WHERE project_id = $2::text AND state = 'active'
), cleared AS (
  DELETE FROM outbox WHERE event_id = $1::text AND EXISTS (SELECT 1 FROM p)
), marked AS (
  INSERT INTO processed_events (event_id, project_id, event_type, processed_at)
  SELECT $1::text, $2::text, $3::text, $4::timestamp FROM p
  ON CONFLICT (event_id) DO NOTHING RETURNING event_id
), reserved AS (
  UPDATE projects SET reserved = reserved + $7::numeric, updated_at = $4::timestamp
  WHERE project_id = $2::text AND $7::numeric IS NOT NULL AND state = 'active'
    AND (NOT $8::boolean OR budget_limit IS NULL OR spent + reserved + $7::numeric <= budget_limit)
    AND EXISTS (SELECT 1 FROM marked)
  RETURNING ${PROJECT_COLUMNS}
), ${createTasksCtes('$5', '$6', 'EXISTS (SELECT 1 FROM marked)', true)}
SELECT EXISTS (SELECT 1 FROM p) AS active, EXISTS (SELECT 1 FROM marked) AS written, r.*,
  CASE WHEN EXISTS (SELECT 1 FROM marked)
        AND (($7::numeric IS NOT NULL AND NOT EXISTS (SELECT 1 FROM reserved)) OR ${SKIPPED_IDS} <> '[]'::jsonb)
    THEN orchestrator_fail('${INGEST_INCOMPLETE}', 'event not ingested in one statement') END AS incomplete
FROM (SELECT 1) AS one LEFT JOIN reserved r ON true`;
