import { newProjectId } from '../../test/helpers/e2e-project.js';
import { expectThat, type Scenario, type ScenarioResult } from '../scenario.js';
import { World } from '../world.js';

const SHOTS = 5;

/**
 * Scenario 10: a poison task. The agent fails one keyframe on every attempt. It gets
 * exactly its maxAttempts attempts, each retry after a back-off, then stays FAILED; the
 * tasks that depend on it are cancelled; and the project reports it (`failed`, the reason
 * naming the task). Then an operator retries the project over NATS (`retry` control
 * action): a copy of the poison task (which the agent now handles) and of each cancelled
 * dependent runs, and the project completes. Figure: the attempts the poison task got.
 */
export function poisonTask(): Scenario {
  return {
    id: 'poison-task',
    title: 'poison task: fails on every attempt',
    async run(log): Promise<ScenarioResult> {
      let poison: string | null = null;
      const world = await World.create({
        shots: SHOTS,
        handle: async (task, simulated) => {
          if (task.taskType === 'GENERATE_KEYFRAME') poison ??= task.taskId;
          if (task.taskId === poison) throw new Error(`poison: ${task.taskId} always fails (attempt ${task.attempt})`);
          const { output, actualCost } = simulated();
          return { output, actualCost };
        },
      });
      try {
        await world.startAgents();
        const projectId = newProjectId();
        await world.startOrchestrator('chaos-10');
        await world.createProject(projectId);
        const final = async () => {
          const { rows } = await world.sql.query<{ n: number }>(
            `SELECT count(*)::int AS n FROM tasks WHERE project_id = $1
               AND NOT (status IN ('COMPLETED', 'CANCELLED') OR (status = 'FAILED' AND attempts >= max_attempts))`,
            [projectId],
          );
          return poison !== null && rows[0]!.n === 0 && (await world.statusCounts(projectId)).FAILED === 1;
        };
        await world.until(final, 'every task final, the poison task failed', 180_000, 200);
        log(`poison task ${poison}`);
        const { rows: poisonRows } = await world.sql.query<{ status: string; attempts: number; max_attempts: number }>(
          'SELECT status, attempts, max_attempts FROM tasks WHERE task_id = $1',
          [poison],
        );
        const p = poisonRows[0]!;
        const { rows: audit } = await world.sql.query<{ event: string; to_status: string; detail: { notBefore?: number } | null; at: Date }>(
          'SELECT event, to_status, detail, at FROM task_transitions WHERE task_id = $1 ORDER BY id',
          [poison],
        );
        const dispatches = audit.filter((r) => r.event === 'DISPATCH').length;
        const retries = audit.filter((r) => r.event === 'RETRY');
        const backedOff = retries.every((r) => typeof r.detail?.notBefore === 'number' && r.detail.notBefore > new Date(r.at).getTime());
        const counts = await world.statusCounts(projectId);
        const state = await world.projectState(projectId);
        const reported = world.watch.on<{ state: string; reason?: string | null }>(`${world.prefix}.projects.${projectId}`).at(-1)?.body;
        const cancelledBefore = counts.CANCELLED ?? 0;
        // The way out: a retry over the control subject.
        const answer = await world.control(projectId, { action: 'retry' });
        log(`retry answered ${answer.ok ? 'ok' : JSON.stringify(answer.error)}`);
        let retried = answer.ok;
        try {
          await world.projectDone(projectId, 180_000);
        } catch {
          retried = false;
        }
        const after = await world.statusCounts(projectId);
        const again = await world.control(projectId, { action: 'retry' });
        return {
          did: `${Object.values(counts).reduce((a, b) => a + b, 0)} tasks, one keyframe failing every attempt`,
          checks: [
            expectThat('poison task FAILED after maxAttempts', p.status === 'FAILED' && p.attempts === p.max_attempts && dispatches === p.max_attempts, `${p.status}, ${dispatches} attempts of ${p.max_attempts}`),
            expectThat('each retry after a back-off', retries.length === p.max_attempts - 1 && backedOff, `${retries.length} retries, notBefore ahead of each: ${backedOff}`),
            expectThat('its dependents cancelled', (counts.CANCELLED ?? 0) > 0 && (counts.PENDING ?? 0) === 0, JSON.stringify(counts)),
            expectThat('the project reports it', state === 'failed' && reported?.state === 'failed' && String(reported?.reason ?? '').includes(poison ?? '?'), `row ${state}, last message ${JSON.stringify(reported ?? null)}`),
            expectThat(
              'a retry over NATS runs the failed task and its dependents again; the project completes',
              // The copies, then the stages their results raise (never reached before), complete; the originals stay as they ended.
              retried && after.FAILED === 1 && after.CANCELLED === cancelledBefore && (after.COMPLETED ?? 0) > (counts.COMPLETED ?? 0) + cancelledBefore,
              `${JSON.stringify(counts)} → ${JSON.stringify(after)}`,
            ),
            expectThat('a second retry is refused with a typed error', !again.ok && again.error?.code === 'ERR_VALIDATION', JSON.stringify(again.error ?? null)),
            ...(await world.invariants(projectId)),
          ],
          figure: { label: 'attempts of the poison task', value: dispatches, unit: '' },
        };
      } finally {
        await world.close();
      }
    },
  };
}
