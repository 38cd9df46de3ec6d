/**
 * The statements of a task transition (PostgresCommit.applyTransition(s)): the task row,
 * its audit row, a dispatch's outbox row, the project's budget and the raised events, in one statement each — atomic
 * on its own (autocommit), one round trip.
 */
import type { ProjectState } from '../../ports/project-store.js';
import { UNCONFIRMED_CTE, UNCONFIRMED_UPSERT } from './task-sql.js';

/** SQLSTATE raised (via orchestrator_fail) when a transition's budget effect is refused. */
export const BUDGET_REFUSED = 'LA001';

/**
 * One statement for a whole transition:
 * - `updated`: the task row, only if its version matches and the carried fencing token
 *   is the stored one (or a newer one the write itself sets: a new lease); patch keys
 *   absent from $5 keep their column;
 * - `audit`: the transition row, only if `updated` wrote;
 * - `unconfirmed`: a write into RUNNING (a dispatch) records its dispatch as not yet
 *   confirmed (the dispatch outbox), only if `updated` wrote;
 * - `dispatch_ended`: a write out of RUNNING (the attempt ended) removes the attempt's
 *   dispatch record, confirmed or not: nothing is left to send again;
 * - `budget`: the project's reserved/spent, only if `updated` wrote; with `enforce`, only
 *   if the project is active (or completed: its remaining tasks finish) and spent + reserved stay within the limit. The row lock
 *   makes a concurrent reservation re-check against the committed amounts, so several
 *   processes cannot overspend together;
 * - `raised`: the outbox rows, only if `updated` wrote;
 * - the final row tells what happened, with the project's state and amounts after
 *   `budget` (`p_*`; nulls without it). When the task was written but the budget was
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
    snapshot = NULLIF($6::jsonb, 'null'::jsonb),
    machine_version = $7::text,
    ready_at = CASE WHEN $4::text = 'READY' AND t.status <> 'READY' THEN $8::timestamp ELSE t.ready_at END,
    updated_at = $8::timestamp,
    version = t.version + 1
  WHERE t.task_id = $1::text AND t.version = $2::bigint
    AND ($3::bigint IS NULL OR t.fencing_token IS NULL OR t.fencing_token = $3::bigint
         OR (($5::jsonb ->> 'fencingToken')::bigint = $3::bigint AND t.fencing_token < $3::bigint))
  RETURNING t.task_id, t.project_id, t.version, t.fencing_token, CASE WHEN $4::text = 'RUNNING' AND $9::text <> 'RUNNING' THEN t.input END AS input
), audit AS (
  INSERT INTO task_transitions (task_id, project_id, from_status, to_status, event, detail, at, by_instance)
  SELECT task_id, project_id, $9::text, $4::text, $10::text, $11::jsonb, $8::timestamp, $12::text FROM updated
), ${UNCONFIRMED_CTE}
  SELECT task_id, fencing_token, $8::timestamp FROM updated
  WHERE $4::text = 'RUNNING' AND $9::text <> 'RUNNING' AND fencing_token IS NOT NULL
  ${UNCONFIRMED_UPSERT}
), dispatch_ended AS (
  DELETE FROM dispatch_outbox WHERE $9::text = 'RUNNING' AND $4::text <> 'RUNNING'
    AND task_id = (SELECT task_id FROM updated)
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
    AND (NOT e.enforce OR (p.state IN ('active', 'completed') AND (p.budget_limit IS NULL
      OR p.spent + e.spend + GREATEST(p.reserved + e.reserve - e.release, 0) <= p.budget_limit)))
  RETURNING p.project_id, p.state, p.paused_reason, p.budget_limit, p.spent, p.reserved
), raised AS (
  INSERT INTO outbox (event_id, event_type, project_id, task_id, payload, at)
  SELECT r.event_id, r.event_type, r.project_id, r.task_id, r.payload, r.at
  FROM jsonb_to_recordset(COALESCE($14::jsonb, '[]'::jsonb)) AS r(
    event_id text, event_type text, project_id text, task_id text, payload jsonb, at timestamp)
  WHERE EXISTS (SELECT 1 FROM updated)
  ON CONFLICT (event_id) DO NOTHING
)
SELECT (SELECT version FROM updated) AS new_version,
       (SELECT input FROM updated) AS input,
       (SELECT version FROM before) AS old_version,
       (SELECT fencing_token FROM before) AS old_fencing_token,
       EXISTS (SELECT 1 FROM before) AS found,
       b.project_id AS p_id, b.state AS p_state, b.paused_reason AS p_paused_reason,
       b.budget_limit AS p_limit, b.spent AS p_spent, b.reserved AS p_reserved,
       CASE WHEN EXISTS (SELECT 1 FROM effect) AND EXISTS (SELECT 1 FROM updated)
             AND NOT EXISTS (SELECT 1 FROM budget)
            THEN orchestrator_fail('${BUDGET_REFUSED}', 'budget effect refused')
            ELSE true END AS budget_ok
FROM (SELECT 1) AS one LEFT JOIN budget b ON true`;

/** The project columns after a statement's budget update (nulls without one). */
export interface ProjectBudgetColumns {
  p_id: string | null;
  p_state: ProjectState | null;
  p_paused_reason: string | null;
  p_limit: number | null;
  p_spent: number | null;
  p_reserved: number | null;
}

/** The row APPLY_TRANSITION returns. */
export interface TransitionResultRow extends ProjectBudgetColumns {
  new_version: number | null;
  /** The task's input, when the write moved it into RUNNING (what its dispatch carries). */
  input: Record<string, unknown> | null;
  old_version: number | null;
  old_fencing_token: number | null;
  found: boolean;
}

/**
 * The patched task columns, from `d.patch` (a write of the batch); keys absent from the
 * patch keep their column (the same rules as APPLY_TRANSITION's $5).
 */
const PATCHED_COLUMNS = `
    status = d.to_status,
    attempts = CASE WHEN d.patch ? 'attempts' THEN (d.patch ->> 'attempts')::integer ELSE t.attempts END,
    deadline = CASE WHEN d.patch ? 'deadline' THEN (d.patch ->> 'deadline')::timestamp ELSE t.deadline END,
    not_before = CASE WHEN d.patch ? 'notBefore' THEN (d.patch ->> 'notBefore')::timestamp ELSE t.not_before END,
    fencing_token = CASE WHEN d.patch ? 'fencingToken' THEN (d.patch ->> 'fencingToken')::bigint ELSE t.fencing_token END,
    last_error = CASE WHEN d.patch ? 'lastError' THEN d.patch ->> 'lastError' ELSE t.last_error END,
    started_at = CASE WHEN d.patch ? 'startedAt' THEN (d.patch ->> 'startedAt')::timestamp ELSE t.started_at END,
    completed_at = CASE WHEN d.patch ? 'completedAt' THEN (d.patch ->> 'completedAt')::timestamp ELSE t.completed_at END,
    output = CASE WHEN d.patch ? 'output' THEN NULLIF(d.patch -> 'output', 'null'::jsonb) ELSE t.output END,
    actual_cost = CASE WHEN d.patch ? 'actualCost' THEN (d.patch ->> 'actualCost')::numeric ELSE t.actual_cost END,
    snapshot = NULLIF(d.snapshot -> 'v', 'null'::jsonb),
    machine_version = d.machine_version,
    ready_at = CASE WHEN d.to_status = 'READY' AND t.status <> 'READY' THEN d.at ELSE t.ready_at END,
    updated_at = d.at,
    version = t.version + 1`;

/** SQLSTATE of a broken invariant of APPLY_TRANSITIONS (a decided write not written); never expected. */
export const BATCH_INVARIANT = 'LA002';

/**
 * Many transitions in one statement. $1: the writes as a JSON array (see
 * transitionToJson), each with its index `idx` in the call. Task ids are distinct (the
 * adapter checks). Step by step:
 *
 * - `cur` locks the batch's task rows, in task id order (concurrent batches cannot
 *   deadlock on them), and reads their current version and token: under READ COMMITTED
 *   a row locked after a concurrent writer committed is read in its new version, so the
 *   checks below are exact and a write that passes them is sure to be written;
 * - `chk`: each write's task check, with applyTransition's rules (found, token not older
 *   than the stored one, version matches);
 * - `proj` then locks the projects of the budget effects that passed their task check,
 *   in project id order, and reads their amounts. Tasks before projects: the order the
 *   single write takes them in (its task row, then its project row), so batches and
 *   single writes do not deadlock either. The ARRAY(...) sublink reads all of `chk`
 *   before the first project is locked;
 * - budget decision, per project, in the order of the writes: a write without `enforce`
 *   always applies; an enforced one applies when the project is active (or completed) and spent +
 *   reserved after it stays within the limit, judged on the running amounts of the
 *   writes accepted before it — exactly as if the writes had been applied one at a time
 *   in order, so a misfit does not stop a smaller write after it. Reserved is clamped at
 *   0 at each step, as the single write does (with P_i the unclamped running reserved,
 *   the clamped one is P_i - least(0, min P_j for j <= i)).
 *   `traj`/`fast`: the trajectory if every write of the project applied; when each
 *   enforced write fits in it (the common case), all apply. Otherwise `fold` replays the
 *   project's writes one by one (a recursive CTE over arrays, one step per write: about
 *   17 ms for 1000 writes of one project, 1 to 2 ms for 100; it runs only for the projects
 *   where a reservation did not fit);
 * - `dec`: the decision per write; `updated`, `audit`, `unconfirmed`, `dispatch_ended`,
 *   `raised`: the task rows, their audit rows (in write order), the dispatch outbox rows
 *   of the writes into RUNNING (added) and out of it (removed: the attempt ended) and the
 *   outbox rows of raised events, of the writes that apply. `updated`
 *   returns every column of the write that the CTEs after it need, so none of them joins
 *   `updated` back to `dec`: the planner has no statistics for CTE scans and joined them
 *   in a nested loop, quadratic in the batch (with batches of ~140 writes, about 130 µs
 *   of PostgreSQL CPU per task in the flat benchmark);
 * - `budget`: each touched project's spent/reserved once, from the effects of the
 *   written tasks (reserved clamped per step as above), still under the lock taken
 *   by `proj`;
 * - the final rows, one per write in order, tell what happened and why (the before-state
 *   of the task, the project's state and the amounts before the write), so refusals need
 *   no second round trip; a written write with a budget effect also gets its project's
 *   state and amounts after the statement (`p_*`, from `budget`). `updated` re-checks the version all the same; should a write
 *   decided under the lock not be written, the final row aborts the whole statement
 *   (SQLSTATE LA002) rather than report budgets that were not applied. It cannot happen
 *   while the locks above hold.
 */
export const APPLY_TRANSITIONS = `
WITH RECURSIVE w AS (
  SELECT * FROM jsonb_to_recordset($1::jsonb) AS x(
    idx integer, task_id text, expected_version bigint, fencing_token bigint, from_status text,
    to_status text, event text, detail jsonb, patch jsonb, snapshot jsonb, machine_version text,
    by_instance text, at timestamp, budget_project text, reserve numeric, release numeric,
    spend numeric, enforce boolean, raise jsonb)
), cur AS MATERIALIZED (
  SELECT t.task_id, t.version, t.fencing_token FROM tasks t
  WHERE t.task_id = ANY (ARRAY(SELECT task_id FROM w))
  ORDER BY t.task_id
  FOR NO KEY UPDATE
), chk AS MATERIALIZED (
  SELECT w.idx, w.task_id, w.expected_version, w.from_status, w.to_status, w.event, w.detail, w.patch,
         w.snapshot, w.machine_version, w.by_instance, w.at, w.raise, w.budget_project,
         COALESCE(w.reserve, 0) AS reserve, COALESCE(w.release, 0) AS release,
         COALESCE(w.spend, 0) AS spend, COALESCE(w.enforce, false) AS enforce,
         c.task_id IS NOT NULL AS found, c.version AS old_version, c.fencing_token AS old_token,
         COALESCE(c.version = w.expected_version
           AND (w.fencing_token IS NULL OR c.fencing_token IS NULL OR c.fencing_token = w.fencing_token
                OR ((w.patch ->> 'fencingToken')::bigint = w.fencing_token AND c.fencing_token < w.fencing_token)), false) AS task_ok
  FROM w LEFT JOIN cur c ON c.task_id = w.task_id
), proj AS MATERIALIZED (
  SELECT p.project_id, p.state IN ('active', 'completed') AS active, p.budget_limit::numeric AS budget_limit,
         p.spent::numeric AS spent, p.reserved::numeric AS reserved
  FROM projects p
  WHERE p.project_id = ANY (ARRAY(SELECT DISTINCT budget_project FROM chk WHERE task_ok AND budget_project IS NOT NULL))
  ORDER BY p.project_id
  FOR NO KEY UPDATE
), eff AS MATERIALIZED (
  SELECT c.idx, c.budget_project AS project_id, c.reserve, c.release, c.spend, c.enforce
  FROM chk c JOIN proj p ON p.project_id = c.budget_project
  WHERE c.task_ok
), traj AS (
  SELECT e.idx, e.project_id, e.enforce,
         p.spent + sum(e.spend) OVER run AS s,
         p.reserved + sum(e.reserve - e.release) OVER run AS r
  FROM eff e JOIN proj p ON p.project_id = e.project_id
  WINDOW run AS (PARTITION BY e.project_id ORDER BY e.idx ROWS UNBOUNDED PRECEDING)
), fast AS (
  SELECT t.project_id,
         bool_and(NOT t.enforce OR (p.active AND (p.budget_limit IS NULL
           OR t.s + t.r - LEAST(0, t.r_min) <= p.budget_limit))) AS all_fit
  FROM (SELECT traj.*, min(traj.r) OVER (PARTITION BY traj.project_id ORDER BY traj.idx ROWS UNBOUNDED PRECEDING) AS r_min
        FROM traj) t
  JOIN proj p ON p.project_id = t.project_id
  GROUP BY t.project_id
), seq AS MATERIALIZED (
  SELECT e.project_id, count(*)::integer AS n,
         array_agg(e.idx ORDER BY e.idx) AS idxs, array_agg(e.enforce ORDER BY e.idx) AS enf,
         array_agg(e.reserve ORDER BY e.idx) AS rs, array_agg(e.release ORDER BY e.idx) AS rl,
         array_agg(e.spend ORDER BY e.idx) AS sp
  FROM eff e JOIN fast f ON f.project_id = e.project_id
  WHERE NOT f.all_fit
  GROUP BY e.project_id
), fold (project_id, k, s, r, idx, granted, s_before, r_before) AS (
  SELECT q.project_id, 0, p.spent, p.reserved, NULL::integer, NULL::boolean, NULL::numeric, NULL::numeric
  FROM seq q JOIN proj p ON p.project_id = q.project_id
  UNION ALL
  SELECT f.project_id, f.k + 1, CASE WHEN x.ok THEN y.s ELSE f.s END, CASE WHEN x.ok THEN y.r ELSE f.r END,
         q.idxs[f.k + 1], x.ok, f.s, f.r
  FROM fold f
  JOIN seq q ON q.project_id = f.project_id
  JOIN proj p ON p.project_id = f.project_id
  CROSS JOIN LATERAL (VALUES (f.s + q.sp[f.k + 1], GREATEST(f.r + q.rs[f.k + 1] - q.rl[f.k + 1], 0))) AS y(s, r)
  CROSS JOIN LATERAL (VALUES (NOT q.enf[f.k + 1]
    OR (p.active AND (p.budget_limit IS NULL OR y.s + y.r <= p.budget_limit)))) AS x(ok)
  WHERE f.k < q.n
), dec AS MATERIALIZED (
  SELECT c.*, p.project_id IS NOT NULL AS project_found, p.active, p.budget_limit,
         COALESCE(fo.s_before, p.spent) AS s_before, COALESCE(fo.r_before, p.reserved) AS r_before,
         CASE WHEN NOT c.task_ok THEN false
              WHEN c.budget_project IS NULL THEN true
              WHEN p.project_id IS NULL THEN false
              WHEN fa.all_fit THEN true
              ELSE COALESCE(fo.granted, false) END AS apply
  FROM chk c
  LEFT JOIN proj p ON p.project_id = c.budget_project AND c.task_ok
  LEFT JOIN fast fa ON fa.project_id = p.project_id
  LEFT JOIN fold fo ON fo.idx = c.idx
), updated AS (
  UPDATE tasks t SET ${PATCHED_COLUMNS}
  FROM dec d
  WHERE d.apply AND t.task_id = d.task_id AND t.version = d.expected_version
  RETURNING d.idx, t.task_id, t.project_id, t.version, t.fencing_token, d.from_status, d.to_status, d.event,
    d.detail, d.at, d.by_instance, d.raise, d.budget_project, d.spend, d.reserve, d.release,
    d.to_status = 'RUNNING' AND d.from_status <> 'RUNNING' AS dispatched,
    d.from_status = 'RUNNING' AND d.to_status <> 'RUNNING' AS ended,
    CASE WHEN d.to_status = 'RUNNING' AND d.from_status <> 'RUNNING' THEN t.input END AS input
), audit AS (
  INSERT INTO task_transitions (task_id, project_id, from_status, to_status, event, detail, at, by_instance)
  SELECT u.task_id, u.project_id, u.from_status, u.to_status, u.event, u.detail, u.at, u.by_instance
  FROM updated u
  ORDER BY u.idx
), ${UNCONFIRMED_CTE}
  SELECT u.task_id, u.fencing_token, u.at FROM updated u
  WHERE u.dispatched AND u.fencing_token IS NOT NULL
  -- In task id order, as the rows are locked everywhere (a conflict updates a row in place).
  ORDER BY u.task_id
  ${UNCONFIRMED_UPSERT}
), ending AS (
  -- The outbox rows of the attempts that ended, locked in task id order as every writer of
  -- the table takes them (CONFIRM_DISPATCHES): deleted in the table's order, they could
  -- deadlock against a confirmation of the same attempts.
  SELECT o.task_id FROM dispatch_outbox o
  WHERE o.task_id = ANY (ARRAY(SELECT task_id FROM updated WHERE ended))
  ORDER BY o.task_id
  FOR UPDATE OF o
), dispatch_ended AS (
  DELETE FROM dispatch_outbox d USING ending e WHERE d.task_id = e.task_id
), raised AS (
  INSERT INTO outbox (event_id, event_type, project_id, task_id, payload, at)
  SELECT r.event_id, r.event_type, r.project_id, r.task_id, r.payload, r.at
  FROM updated u
  CROSS JOIN LATERAL jsonb_to_recordset(COALESCE(u.raise, '[]'::jsonb)) AS r(
    event_id text, event_type text, project_id text, task_id text, payload jsonb, at timestamp)
  ORDER BY u.idx
  ON CONFLICT (event_id) DO NOTHING
), applied AS (
  SELECT u.budget_project AS project_id, u.at, u.spend, u.reserve - u.release AS dr,
         sum(u.reserve - u.release) OVER (PARTITION BY u.budget_project ORDER BY u.idx ROWS UNBOUNDED PRECEDING) AS dr_run
  FROM updated u
  WHERE u.budget_project IS NOT NULL
), budget AS (
  UPDATE projects p SET
    spent = p.spent + e.spend,
    reserved = p.reserved + e.dr - LEAST(0, p.reserved + e.dr_min),
    updated_at = e.at
  FROM (SELECT project_id, sum(spend) AS spend, sum(dr) AS dr, min(dr_run) AS dr_min, max(at) AS at
        FROM applied GROUP BY project_id) e
  WHERE p.project_id = e.project_id
  RETURNING p.project_id, p.state, p.paused_reason, p.budget_limit, p.spent, p.reserved
)
SELECT d.idx, u.version AS new_version, u.input, d.found, d.old_version, d.old_token, d.task_ok, d.project_found,
       d.active, d.budget_limit, d.s_before, d.r_before,
       b.project_id AS p_id, b.state AS p_state, b.paused_reason AS p_paused_reason,
       b.budget_limit AS p_limit, b.spent AS p_spent, b.reserved AS p_reserved,
       CASE WHEN d.apply AND u.idx IS NULL
            THEN orchestrator_fail('${BATCH_INVARIANT}', 'task ' || d.task_id || ' passed its checks under lock but was not written')
            ELSE true END AS written_as_decided
FROM dec d LEFT JOIN updated u ON u.idx = d.idx
LEFT JOIN budget b ON b.project_id = d.budget_project AND u.idx IS NOT NULL
ORDER BY d.idx`;

/** A row of APPLY_TRANSITIONS: one per write, in the order of the writes. */
export interface BatchResultRow extends ProjectBudgetColumns {
  idx: number;
  /** The new row version when the write applied; null otherwise. */
  new_version: number | null;
  /** The task's input, when the write moved it into RUNNING (what its dispatch carries). */
  input: Record<string, unknown> | null;
  found: boolean;
  old_version: number | null;
  old_token: number | null;
  /** The task check passed (found, token not stale, version matched). */
  task_ok: boolean;
  /** The project of the budget effect exists (false without a budget effect or a task check). */
  project_found: boolean;
  /** The project's state is active (null when not read). */
  active: boolean | null;
  budget_limit: number | null;
  /** The project's spent and reserved just before this write (the amounts it was judged on). */
  s_before: number | null;
  r_before: number | null;
}

/** $1 project id: what a refused budget effect is explained with. */
export const PROJECT_BUDGET = `SELECT state, budget_limit, spent, reserved FROM projects WHERE project_id = $1`;

export interface ProjectBudgetRow {
  state: string;
  budget_limit: number | null;
  spent: number;
  reserved: number;
}
