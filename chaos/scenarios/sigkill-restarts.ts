import { newProjectId } from '../../test/helpers/e2e-project.js';
import { expectThat, seeded, type Scenario, type ScenarioResult } from '../scenario.js';
import { firstSeenAfter, World } from '../world.js';

/** Shots of the project: two tasks per shot (keyframe, visual QA) and nine more, so 1 009 tasks. */
const SHOTS = 500;
const TASKS = 2 * SHOTS + 9;
const KILLS = 3;

/**
 * Scenario 1: `orchestrator start` SIGKILLed at three random moments of a 1 009-task
 * project (approvals off) and started again each time, with the same INSTANCE_ID (a
 * restarted container). The agents keep running; results sent while no orchestrator runs
 * wait in the inbound stream. With `dispatchBatch`, the orchestrator sends every agent
 * several dispatches per message (DISPATCH_BATCH). Figure: the worst time from a restart (the process says it
 * is running) to its first dispatch.
 */
export function sigkillRestarts(seed: number, options: { dispatchBatch?: number } = {}): Scenario {
  const batched = options.dispatchBatch ? `-batch-${options.dispatchBatch}` : '';
  return {
    id: `sigkill-restarts-seed-${seed}${batched}`,
    title: `SIGKILL ×${KILLS} mid-project, restart (seed ${seed}${options.dispatchBatch ? `, DISPATCH_BATCH ${options.dispatchBatch} for every agent` : ''})`,
    async run(log): Promise<ScenarioResult> {
      const random = seeded(seed);
      // Kill points: completions in [5 %, 90 %] of the project, in order.
      const points = Array.from({ length: KILLS }, () => Math.floor(TASKS * (0.05 + 0.85 * random()))).sort((a, b) => a - b);
      const world = await World.create({ shots: SHOTS, ...options });
      try {
        await world.startAgents();
        const projectId = newProjectId();
        let orchestrator = await world.startOrchestrator('chaos-1');
        await world.createProject(projectId);
        const gaps: number[] = [];
        for (const [k, point] of points.entries()) {
          await world.until(async () => (await world.completions(projectId)) >= point, `${point} completions`, 300_000, 50);
          await orchestrator.stop('SIGKILL');
          const done = await world.completions(projectId);
          log(`kill ${k + 1}/${KILLS} at ${done} completions`);
          orchestrator = await world.startOrchestrator('chaos-1');
          const restarted = Date.now();
          const first = await firstSeenAfter<{ projectId: string }>(world, `${world.prefix}.tasks.`, restarted, (d) => d.projectId === projectId, 'a dispatch after the restart');
          gaps.push(first - restarted);
        }
        await world.projectDone(projectId, 600_000);
        const counts = await world.statusCounts(projectId);
        const total = Object.values(counts).reduce((a, b) => a + b, 0);
        return {
          did: `${KILLS} kills at ${points.join(', ')} completions of ${total} tasks`,
          checks: [
            expectThat('project completed', (await world.projectState(projectId)) === 'completed', JSON.stringify(counts)),
            expectThat(`${TASKS} tasks`, total === TASKS, `${total} tasks`),
            ...(options.dispatchBatch ? [expectThat('dispatches went several per message', world.watch.dispatchBatches > 0, `${world.watch.dispatchBatches} messages of several dispatches`)] : []),
            ...(await world.invariants(projectId)),
          ],
          figure: { label: 'worst restart → first dispatch', value: Math.max(...gaps) / 1000, unit: 's' },
        };
      } finally {
        await world.close();
      }
    },
  };
}
