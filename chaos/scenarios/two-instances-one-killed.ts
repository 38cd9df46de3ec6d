import { newProjectId } from '../../test/helpers/e2e-project.js';
import { expectThat, type Scenario, type ScenarioResult } from '../scenario.js';
import { World } from '../world.js';

const SHOTS = 300;
const TASKS = 2 * SHOTS + 9;

/**
 * Scenario 5: two instances share the project; one is SIGKILLed halfway. The survivor
 * finishes it. On the wire, no attempt is dispatched twice except the dead instance's own
 * attempts whose dispatch it had not recorded as confirmed: those the survivor sends again
 * (same attempt, same token) once their lease expired. With `dispatchBatch`, several
 * dispatches per message (a dispatch in a message of many counts as sent once per message). Figure: the attempts sent again.
 */
export function twoInstancesOneKilled(options: { dispatchBatch?: number } = {}): Scenario {
  return {
    id: `two-instances-one-killed${options.dispatchBatch ? `-batch-${options.dispatchBatch}` : ''}`,
    title: `two instances, one SIGKILLed halfway${options.dispatchBatch ? ` (DISPATCH_BATCH ${options.dispatchBatch} for every agent)` : ''}`,
    async run(log): Promise<ScenarioResult> {
      const world = await World.create({ shots: SHOTS, ...options });
      try {
        await world.startAgents();
        const projectId = newProjectId();
        const a = await world.startOrchestrator('chaos-5a');
        await world.startOrchestrator('chaos-5b');
        await world.createProject(projectId);
        await world.until(async () => (await world.completions(projectId)) >= TASKS / 2, `${TASKS / 2} completions`, 300_000, 50);
        await a.stop('SIGKILL');
        const killedAt = Date.now();
        log(`chaos-5a killed at ${await world.completions(projectId)} completions`);
        await world.projectDone(projectId, 600_000);

        // Every dispatch seen on the wire, by attempt.
        const sends = new Map<string, number[]>();
        for (const m of world.watch.on<{ taskId: string; fencingToken: number; projectId: string }>(`${world.prefix}.tasks.`, (d) => d.projectId === projectId)) {
          const key = `${m.body.taskId}:${m.body.fencingToken}`;
          sends.set(key, [...(sends.get(key) ?? []), m.at]);
        }
        const { rows: dispatchedBy } = await world.sql.query<{ task_id: string; token: string; by_instance: string }>(
          `SELECT task_id, detail ->> 'fencingToken' AS token, by_instance FROM task_transitions
           WHERE project_id = $1 AND to_status = 'RUNNING' AND from_status <> 'RUNNING'`,
          [projectId],
        );
        const writer = new Map(dispatchedBy.map((r) => [`${r.task_id}:${r.token}`, r.by_instance]));
        const twice = [...sends].filter(([, at]) => at.length > 1);
        const unexplained = twice.filter(([key, at]) => !(writer.get(key) === 'chaos-5a' && at.slice(1).every((t) => t >= killedAt)));
        const counts = await world.statusCounts(projectId);
        const total = Object.values(counts).reduce((x, y) => x + y, 0);
        const completedBy = await world.sql.query<{ by_instance: string; n: number }>(
          `SELECT by_instance, count(*)::int AS n FROM task_transitions WHERE project_id = $1 AND to_status = 'COMPLETED' GROUP BY by_instance`,
          [projectId],
        );
        return {
          did: `${total} tasks; completed by ${completedBy.rows.map((r) => `${r.by_instance} ${r.n}`).join(', ')}`,
          checks: [
            expectThat('the survivor finished the project', (await world.projectState(projectId)) === 'completed', JSON.stringify(counts)),
            expectThat(`${TASKS} tasks`, total === TASKS, `${total} tasks`),
            expectThat('no attempt sent twice but the dead one\'s, after its death', unexplained.length === 0, `${twice.length} sent again, ${unexplained.length} unexplained${unexplained[0] ? `: ${unexplained[0][0]} by ${writer.get(unexplained[0][0])}` : ''}`),
            ...(options.dispatchBatch ? [expectThat('dispatches went several per message', world.watch.dispatchBatches > 0, `${world.watch.dispatchBatches} messages of several dispatches`)] : []),
            ...(await world.invariants(projectId)),
          ],
          figure: { label: 'attempts sent again', value: twice.length, unit: '' },
        };
      } finally {
        await world.close();
      }
    },
  };
}
