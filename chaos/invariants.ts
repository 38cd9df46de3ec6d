/**
 * The battery's invariants, checked on what PostgreSQL holds (the source of truth) and on
 * what the service published:
 *
 * - I1: every task of the project ends in a final state (COMPLETED, CANCELLED, or FAILED
 *   with its attempts spent);
 * - I2: at most one terminal transition per task in the audit log (into COMPLETED or
 *   CANCELLED), and none after it;
 * - I3: one effect per event and per result: each task's history is a legal chain of the
 *   task machine (every attempt ends once), and every raised event was handled once (no
 *   outbox row left, one processed_events row per event id — its key);
 * - I4: spent + reserved ≤ limit, in every budget message seen and in the projects row;
 *   and the last budget message of the project carries the row's figures (spent, reserved,
 *   limit) — waited for a while, since it may still be on its way when the check starts;
 * - I5: no write with a stale fencing token accepted: each attempt runs under a token above
 *   every earlier attempt's, and the row's token is its last attempt's.
 */
import type { SqlClient } from '../src/adapters/postgres/sql-client.js';
import type { BudgetStatus } from '../src/domain/messages.js';
import { transitionProblems } from '../test/helpers/e2e-project.js';
import type { NatsWatch } from '../test/helpers/nats-watch.js';
import { waitFor } from '../test/helpers/wait.js';

export interface Check {
  name: string;
  ok: boolean;
  /** What was found (the first problems when not ok). */
  detail: string;
}

interface AuditRow {
  task_id: string;
  from_status: string | null;
  to_status: string;
  event: string;
  detail: { fencingToken?: number } | null;
}

const EPSILON = 1e-6;
/**
 * How long the last budget message may take to carry the row's figures once the check
 * starts: the coalescing window, the notice retries' back-off (capped at 5 s), and a
 * stale instance's notices announced by a live one (NOTICE_STALE_AFTER, 30 s by default).
 */
const LAST_BUDGET_WAIT_MS = 60_000;

const check = (name: string, problems: readonly string[], okDetail: string): Check => ({
  name,
  ok: problems.length === 0,
  detail: problems.length ? `${problems.length} problem(s): ${problems.slice(0, 3).join('; ')}` : okDetail,
});

export async function checkInvariants(sql: SqlClient, watch: NatsWatch, prefix: string, projectId: string): Promise<Check[]> {
  const { rows: tasks } = await sql.query<{ task_id: string; status: string; attempts: number; max_attempts: number; fencing_token: number | null }>(
    'SELECT task_id, status, attempts, max_attempts, fencing_token FROM tasks WHERE project_id = $1',
    [projectId],
  );
  const { rows: audit } = await sql.query<AuditRow>(
    'SELECT task_id, from_status, to_status, event, detail FROM task_transitions WHERE project_id = $1 ORDER BY id',
    [projectId],
  );
  const byTask = new Map<string, AuditRow[]>();
  for (const r of audit) {
    let list = byTask.get(r.task_id);
    if (!list) byTask.set(r.task_id, (list = []));
    list.push(r);
  }

  // I1
  const notFinal = tasks.filter((t) => !(t.status === 'COMPLETED' || t.status === 'CANCELLED' || (t.status === 'FAILED' && t.attempts >= t.max_attempts)));
  const i1 = check('I1 every task final', notFinal.map((t) => `${t.task_id} ${t.status}`), `${tasks.length} tasks final`);

  // I2
  const twice: string[] = [];
  for (const [taskId, rows] of byTask) {
    const terminal = rows.findIndex((r) => r.to_status === 'COMPLETED' || r.to_status === 'CANCELLED');
    if (terminal >= 0 && terminal !== rows.length - 1) twice.push(`${taskId}: ${rows.length - 1 - terminal} transition(s) after ${rows[terminal]!.to_status}`);
  }
  const i2 = check('I2 one terminal transition per task', twice, `${audit.length} audit rows`);

  // I3
  const chain: string[] = [];
  for (const t of tasks) {
    const rows = byTask.get(t.task_id) ?? [];
    if (!rows.length) chain.push(`${t.task_id}: no audit row`);
    for (const p of transitionProblems(rows.map((r) => ({ from: r.from_status, to: r.to_status })))) chain.push(`${t.task_id}: ${p}`);
    if (rows.length && rows.at(-1)!.to_status !== t.status) chain.push(`${t.task_id}: row ${t.status}, audit ends ${rows.at(-1)!.to_status}`);
  }
  const { rows: outbox } = await sql.query<{ event_id: string }>('SELECT event_id FROM outbox WHERE project_id = $1', [projectId]);
  for (const o of outbox) chain.push(`raised event ${o.event_id} not handled`);
  const i3 = check('I3 one effect per event and result', chain, 'every history legal, no raised event left');

  // I4
  const over: string[] = [];
  const budgets = watch.on<BudgetStatus>(`${prefix}.budget.${projectId}`);
  for (const b of budgets) {
    const { limit, spent, reserved } = b.body;
    if (limit !== null && spent + reserved > limit + EPSILON) over.push(`message: spent ${spent} + reserved ${reserved} > ${limit}`);
  }
  const { rows: project } = await sql.query<{ budget_limit: number | null; spent: number; reserved: number }>(
    'SELECT budget_limit, spent, reserved FROM projects WHERE project_id = $1',
    [projectId],
  );
  const p = project[0];
  if (!p) over.push('no project row');
  else if (p.budget_limit !== null && Number(p.spent) + Number(p.reserved) > Number(p.budget_limit) + EPSILON) {
    over.push(`row: spent ${p.spent} + reserved ${p.reserved} > ${p.budget_limit}`);
  }
  const i4 = check('I4 never overspent', over, `${budgets.length} budget messages${p ? `, row spent ${Number(p.spent)} reserved ${Number(p.reserved)}` : ''}`);
  const i4Last = await lastBudgetIsTheRow(sql, watch, prefix, projectId);

  // I5
  const stale: string[] = [];
  for (const t of tasks) {
    const tokens = (byTask.get(t.task_id) ?? []).filter((r) => r.event === 'DISPATCH').map((r) => Number(r.detail?.fencingToken));
    tokens.forEach((tok, i) => {
      if (i > 0 && !(tok > tokens[i - 1]!)) stale.push(`${t.task_id}: attempt ${i + 1} under token ${tok} after ${tokens[i - 1]}`);
    });
    if (tokens.length && t.fencing_token !== null && Number(t.fencing_token) !== tokens.at(-1)) {
      stale.push(`${t.task_id}: row token ${t.fencing_token}, last attempt's ${tokens.at(-1)}`);
    }
  }
  const i5 = check('I5 no stale token accepted', stale, 'tokens rise with every attempt');

  return [i1, i2, i3, i4, i4Last, i5];
}

interface Figures {
  limit: number | null;
  spent: number;
  reserved: number;
}

const sameFigures = (a: Figures, b: Figures): boolean =>
  (a.limit === null ? b.limit === null : b.limit !== null && Math.abs(a.limit - b.limit) <= EPSILON) &&
  Math.abs(a.spent - b.spent) <= EPSILON &&
  Math.abs(a.reserved - b.reserved) <= EPSILON;

const show = (f: Figures | null | undefined): string => (f ? `spent ${f.spent} reserved ${f.reserved} limit ${f.limit}` : 'none');

/** I4, the figures a watcher is left with: the project's last budget message equals its row (waited for, LAST_BUDGET_WAIT_MS). */
async function lastBudgetIsTheRow(sql: SqlClient, watch: NatsWatch, prefix: string, projectId: string): Promise<Check> {
  let last: Figures | undefined;
  let row: Figures | null = null;
  const read = async (): Promise<boolean> => {
    const { rows } = await sql.query<{ budget_limit: number | null; spent: number; reserved: number }>(
      'SELECT budget_limit, spent, reserved FROM projects WHERE project_id = $1',
      [projectId],
    );
    const p = rows[0];
    row = p ? { limit: p.budget_limit === null ? null : Number(p.budget_limit), spent: Number(p.spent), reserved: Number(p.reserved) } : null;
    last = watch.on<BudgetStatus>(`${prefix}.budget.${projectId}`).at(-1)?.body;
    return row !== null && last !== undefined && sameFigures(last, row);
  };
  const ok = await waitFor(read, { timeoutMs: LAST_BUDGET_WAIT_MS, intervalMs: 200, what: 'the last budget message to equal the row' }).then(
    () => true,
    () => false,
  );
  return check('I4 last budget message = row', ok ? [] : [`last message ${show(last)}, row ${show(row)}`], `last message ${show(last)}`);
}
