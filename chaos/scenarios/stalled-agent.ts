import { jetstream } from '@nats-io/jetstream';
import type { TaskDispatch } from '../../src/domain/messages.js';
import { newProjectId } from '../../test/helpers/e2e-project.js';
import { expectThat, type Scenario, type ScenarioResult } from '../scenario.js';
import { World } from '../world.js';

const SHOTS = 30;
const TASKS = 2 * SHOTS + 9;
/** The types whose first attempt stalls: one keyframe and one visual QA per shot. */
const STALLED_TYPES = ['GENERATE_KEYFRAME', 'RUN_VISUAL_QA'];
/** Their per-attempt timeout, through TASK_TIMEOUTS (the catalogue's own: 10 minutes). */
const TIMEOUT_SECONDS = 1.5;
/** What a late result claims it cost: far above any accepted attempt's, so a charge of it shows. */
const LATE_COST = 7.77;
const BUDGET = 100;

/** When a late result arrives: while the retry still runs, or after it completed. */
type Window = 'retry running' | 'retry completed';

/** A late result the stalled agent sent, with its attempt's (old) fencing token. */
interface Late {
  taskId: string;
  fencingToken: number;
  status: 'completed' | 'failed';
  how: 'agent SDK' | 'direct';
  window: Window;
}

interface Dlq {
  subject: string;
  reason: string;
  data: string;
}

/**
 * Scenario 6: a stalled agent past its timeout. `orchestrator start` runs with
 * TASK_TIMEOUTS shortening two built-in types (a keyframe and a visual QA per shot) to
 * 1.5 s; the agents stall the first attempt of each of those tasks — no heartbeat, no
 * result — until the orchestrator has timed it out and moved on under a new fencing token,
 * then send the late result with the old token. Half are completed (through the agent SDK,
 * claiming a cost; a QA's says the keyframe failed, which would raise a repair if taken),
 * half failed (one published directly over NATS claiming a cost, then the SDK's). Half
 * arrive while the retry runs (it holds, heartbeating, until they are answered), half
 * after it completed. The retry succeeds normally. Every late result is refused
 * (dead-lettered: stale fencing token), never charged (the spend is the sum of the
 * accepted attempts' costs, in the projects row and in every budget message, and no late
 * cost is learnt), and every task is completed exactly once, by its retry. Figure: the
 * late results refused.
 */
export function stalledAgent(): Scenario {
  return {
    id: 'stalled-agent',
    title: 'stalled agent past its timeout, late results with the old token',
    async run(log): Promise<ScenarioResult> {
      const late: Late[] = [];
      /** Costs of the results sent for attempts that were not stalled: what may be charged. */
      const accepted = new Map<string, number>();
      const stalled: TaskDispatch[] = [];
      const windows = new Map<string, Window>();
      let world!: World;
      const seen = <T>(subject: string, where: (body: T) => boolean) => world.watch.on<T>(subject, where).length > 0;
      const refusals = (projectId: string) =>
        world.watch.on<Dlq>(`${world.prefix}.dlq`, (d) => typeof d === 'object' && d !== null && d.subject === `${world.prefix}.results.${projectId}`);
      const refusedOf = (l: Late, projectId: string) =>
        refusals(projectId).filter((m) => {
          let r: { taskId?: string; fencingToken?: number; status?: string; error?: string };
          try {
            r = JSON.parse(m.body.data) as typeof r;
          } catch {
            return false;
          }
          return r.taskId === l.taskId && r.fencingToken === l.fencingToken && r.status === l.status && (l.status === 'completed' || (r.error === 'late failure, reported directly') === (l.how === 'direct'));
        });
      world = await World.create({
        shots: SHOTS,
        concurrency: 100, // the stalled handlers never hold back the retries
        heartbeatMs: 3_600_000, // a stalled agent sends no heartbeat
        handle: async (task, simulated, context) => {
          if (!STALLED_TYPES.includes(task.taskType) || task.attempt > 2) {
            const { output, actualCost } = simulated();
            accepted.set(`${task.taskId}:${task.fencingToken}`, actualCost);
            return { output, actualCost };
          }
          if (task.attempt === 2) {
            // The retry. When the late results are to arrive while it runs, it holds (a working
            // agent: heartbeating) until they have been refused, then completes normally.
            if (windows.get(task.taskId) === 'retry running') {
              await world.until(
                () => {
                  void context.heartbeat();
                  const mine = late.filter((l) => l.taskId === task.taskId);
                  return mine.length > 0 && mine.every((l) => refusedOf(l, task.projectId).length > 0);
                },
                `the late results of ${task.taskId} answered`,
                60_000,
                250,
              ).catch(() => undefined); // a late result never answered fails the checks below
            }
            const { output, actualCost } = simulated();
            accepted.set(`${task.taskId}:${task.fencingToken}`, actualCost);
            return { output, actualCost };
          }
          // The first attempt stalls: no heartbeat, no result, past its timeout.
          const i = stalled.push(task) - 1;
          const status = i % 2 === 0 ? 'completed' : 'failed';
          const window: Window = Math.floor(i / 2) % 2 === 0 ? 'retry running' : 'retry completed';
          windows.set(task.taskId, window);
          // The orchestrator has moved on: the retry dispatched under a new token (or completed).
          await world.until(
            () =>
              window === 'retry running'
                ? seen<TaskDispatch>(`${world.prefix}.tasks.`, (d) => d.taskId === task.taskId && d.fencingToken > task.fencingToken)
                : seen<{ to: string }>(`${world.prefix}.status.${task.projectId}.${task.taskId}`, (d) => d.to === 'COMPLETED'),
            `the retry of ${task.taskId} (${window})`,
            120_000,
            20,
          );
          const base = { taskId: task.taskId, fencingToken: task.fencingToken, window };
          if (status === 'completed') {
            late.push({ ...base, status, how: 'agent SDK' });
            // A QA that says the keyframe failed would raise VISUAL_QA_FAILED (an EDIT_IMAGE) if it were taken.
            const output = task.taskType === 'RUN_VISUAL_QA' ? { passed: false, issues: ['late'] } : simulated().output;
            return { output, actualCost: LATE_COST };
          }
          late.push({ ...base, status, how: 'direct' }, { ...base, status, how: 'agent SDK' });
          const direct = { taskId: task.taskId, status: 'failed', fencingToken: task.fencingToken, error: 'late failure, reported directly', actualCost: LATE_COST };
          await jetstream(world.nc).publish(`${world.prefix}.results.${task.projectId}`, JSON.stringify(direct), { msgID: `${task.taskId}:${task.fencingToken}:late` });
          throw new Error('late failure');
        },
      });
      try {
        await world.startAgents();
        const projectId = newProjectId();
        // A user's deployment: the stalled types' timeout shortened from the environment.
        await world.startOrchestrator('chaos-6', { TASK_TIMEOUTS: STALLED_TYPES.map((t) => `${t}=${TIMEOUT_SECONDS}`).join(','), MAX_CONCURRENT_TASKS: '100' });
        await world.createProject(projectId, BUDGET);
        await world.projectDone(projectId, 150_000);
        // Every late result sent has been answered on the dead-letter subject.
        await world.until(() => late.length > 0 && late.every((l) => refusedOf(l, projectId).length > 0), 'every late result dead-lettered', 60_000, 100).catch(() => undefined);
        log(`${stalled.length} attempts stalled, ${late.length} late results sent, ${refusals(projectId).length} dead-lettered`);

        const refusedLate = late.filter((l) => refusedOf(l, projectId).some((m) => m.body.reason.startsWith('ERR_STALE_FENCING_TOKEN')));
        const notRefused = late.filter((l) => !refusedLate.includes(l));
        const { rows: tasks } = await world.sql.query<{ task_id: string; task_type: string; status: string; attempts: number; timeout_ms: number; actual_cost: string | null; fencing_token: string }>(
          'SELECT task_id, task_type, status, attempts, timeout_ms, actual_cost, fencing_token FROM tasks WHERE project_id = $1',
          [projectId],
        );
        const { rows: audit } = await world.sql.query<{ task_id: string; event: string; to_status: string; detail: { fencingToken?: number; actualCost?: number } | null }>(
          'SELECT task_id, event, to_status, detail FROM task_transitions WHERE project_id = $1 ORDER BY id',
          [projectId],
        );
        const events = new Map<string, string[]>();
        for (const r of audit) events.set(r.task_id, [...(events.get(r.task_id) ?? []), r.event]);
        const count = (taskId: string, event: string) => (events.get(taskId) ?? []).filter((e) => e === event).length;

        // Stalled tasks: timed out once, dispatched twice, completed once by the retry; no FAIL ever taken.
        const stalledIds = new Set(stalled.map((t) => t.taskId));
        const stalledRows = tasks.filter((t) => stalledIds.has(t.task_id));
        const wrongHistory = stalledRows.filter((t) => !(count(t.task_id, 'TIME_OUT') === 1 && count(t.task_id, 'DISPATCH') === 2 && count(t.task_id, 'COMPLETE') === 1 && count(t.task_id, 'FAIL') === 0 && t.status === 'COMPLETED'));
        const completedTwice = tasks.filter((t) => count(t.task_id, 'COMPLETE') !== 1 || t.status !== 'COMPLETED');
        const lateCostKept = tasks.filter((t) => t.actual_cost !== null && Math.abs(Number(t.actual_cost) - LATE_COST) < 1e-9);

        // What may be charged: the costs the agents sent for the attempts that were not stalled.
        const expected = Math.round([...accepted.values()].reduce((a, b) => a + b, 0) * 10_000) / 10_000;
        const { rows: projectRows } = await world.sql.query<{ spent: string; reserved: string }>('SELECT spent, reserved FROM projects WHERE project_id = $1', [projectId]);
        const spent = Number(projectRows[0]?.spent);
        const reserved = Number(projectRows[0]?.reserved);
        const sumOfTasks = Math.round(tasks.reduce((a, t) => a + Number(t.actual_cost ?? 0), 0) * 10_000) / 10_000;
        const budgets = world.watch.on<{ spent: number }>(`${world.prefix}.budget.${projectId}`);
        const overCharged = budgets.filter((b) => b.body.spent > expected + 1e-6);
        const { rows: learnt } = await world.sql.query<{ task_type: string; ewma: string }>(
          `SELECT task_type, ewma FROM cost_observations WHERE task_type = ANY($1::text[])`,
          [STALLED_TYPES],
        );
        const learntLate = learnt.filter((r) => Number(r.ewma) > 1);

        const wrongTimeout = tasks.filter((t) => (STALLED_TYPES.includes(t.task_type) ? t.timeout_ms !== TIMEOUT_SECONDS * 1000 : t.timeout_ms === TIMEOUT_SECONDS * 1000));
        const completedLate = late.filter((l) => l.status === 'completed').length;
        const whileRunning = late.filter((l) => l.window === 'retry running').length;
        return {
          did: `${tasks.length} tasks, ${stalled.length} attempts stalled past a ${TIMEOUT_SECONDS} s timeout (TASK_TIMEOUTS), ${late.length} late results (${completedLate} completed, ${late.length - completedLate} failed; ${whileRunning} while the retry ran, ${late.length - whileRunning} after it completed)`,
          checks: [
            expectThat(`${TASKS} tasks, the project completed`, tasks.length === TASKS && (await world.projectState(projectId)) === 'completed', `${tasks.length} tasks, ${JSON.stringify(await world.statusCounts(projectId))}`),
            expectThat('TASK_TIMEOUTS honoured by orchestrator start', wrongTimeout.length === 0, wrongTimeout.length ? `${wrongTimeout.length} rows, e.g. ${wrongTimeout[0]!.task_type} ${wrongTimeout[0]!.timeout_ms} ms` : `${STALLED_TYPES.join(', ')}: ${TIMEOUT_SECONDS * 1000} ms; the others their catalogue's`),
            expectThat('50+ attempts stalled, each timed out once and retried', stalled.length >= 50 && stalledRows.length === stalled.length && wrongHistory.length === 0, `${stalled.length} stalled${wrongHistory[0] ? `; ${wrongHistory.length} wrong, e.g. ${wrongHistory[0].task_id}: ${(events.get(wrongHistory[0].task_id) ?? []).join(' ')}` : ''}`),
            expectThat('every late result refused (stale fencing token)', late.length >= 50 && notRefused.length === 0, notRefused.length ? `${notRefused.length} not refused, e.g. ${JSON.stringify(notRefused[0])}: ${refusedOf(notRefused[0]!, projectId).map((m) => m.body.reason).join('; ') || 'no dead letter'}` : `${refusedLate.length} of ${late.length} dead-lettered with ERR_STALE_FENCING_TOKEN`),
            expectThat('each task completed exactly once', completedTwice.length === 0, completedTwice.length ? `${completedTwice.length} tasks, e.g. ${completedTwice[0]!.task_id}: ${(events.get(completedTwice[0]!.task_id) ?? []).join(' ')}` : `${tasks.length} completions`),
            expectThat(
              'late results never charged',
              Math.abs(spent - expected) < 1e-6 && Math.abs(sumOfTasks - expected) < 1e-6 && reserved === 0 && overCharged.length === 0 && lateCostKept.length === 0 && learntLate.length === 0,
              `row spent ${spent} (reserved ${reserved}), accepted attempts' costs ${expected}, tasks' costs ${sumOfTasks}; ${overCharged.length} of ${budgets.length} budget messages above it; ${lateCostKept.length} tasks with a late cost; learnt ${learnt.map((r) => `${r.task_type} ${Number(r.ewma)}`).join(', ')}`,
            ),
            ...(await world.invariants(projectId)),
          ],
          figure: { label: 'late results refused', value: refusedLate.length, unit: '' },
        };
      } finally {
        await world.close();
      }
    },
  };
}
