import { newProjectId } from '../../test/helpers/e2e-project.js';
import { expectThat, type Scenario, type ScenarioResult } from '../scenario.js';
import { World } from '../world.js';

const SHOTS = 100;
const LIMIT = 4;
const RAISED = 1_000;

/**
 * Scenario 7: a budget race across two instances. A hundred keyframes become READY at
 * once, on two instances, under a budget that fits about thirty of them: the project is
 * paused for its budget, never overspent (I4, in every budget message and in the row); the
 * limit is raised over the control subject (request-reply), the project resumes and
 * completes. Figure: the spend when the project paused.
 */
export function budgetRace(): Scenario {
  return {
    id: 'budget-race-two-instances',
    title: 'budget race on two instances: pause, raise, resume',
    async run(log): Promise<ScenarioResult> {
      const world = await World.create({ shots: SHOTS });
      try {
        await world.startAgents();
        const projectId = newProjectId();
        await world.startOrchestrator('chaos-7a');
        await world.startOrchestrator('chaos-7b');
        await world.createProject(projectId, LIMIT);
        type ProjectMsg = { state: string; reason?: string | null };
        const paused = () => world.watch.on<ProjectMsg>(`${world.prefix}.projects.${projectId}`, (m) => m.state === 'paused');
        await world.until(() => paused().length > 0, 'the project paused for its budget', 300_000, 50);
        const { rows } = await world.sql.query<{ state: string; paused_reason: string | null; spent: number; reserved: number }>(
          'SELECT state, paused_reason, spent::float AS spent, reserved::float AS reserved FROM projects WHERE project_id = $1',
          [projectId],
        );
        const atPause = rows[0]!;
        log(`paused (${atPause.paused_reason}) at spent ${atPause.spent}, reserved ${atPause.reserved}`);
        // Raised over NATS, as an operator would: the project resumes (its amounts now fit).
        const answer = await world.control(projectId, { action: 'set_budget', limit: RAISED });
        await world.projectDone(projectId, 300_000);
        const counts = await world.statusCounts(projectId);
        const total = Object.values(counts).reduce((a, b) => a + b, 0);
        const { rows: end } = await world.sql.query<{ spent: number; charged: number }>(
          `SELECT p.spent::float AS spent, (SELECT COALESCE(sum(actual_cost), 0)::float FROM tasks t WHERE t.project_id = p.project_id) AS charged
           FROM projects p WHERE p.project_id = $1`,
          [projectId],
        );
        const { rows: by } = await world.sql.query<{ by_instance: string; n: number }>(
          `SELECT by_instance, count(*)::int AS n FROM task_transitions WHERE project_id = $1 AND to_status = 'RUNNING' GROUP BY by_instance ORDER BY by_instance`,
          [projectId],
        );
        return {
          did: `${total} tasks, limit ${LIMIT} then ${RAISED}; dispatched by ${by.map((r) => `${r.by_instance} ${r.n}`).join(', ')}`,
          checks: [
            expectThat('paused for its budget', atPause.paused_reason === 'budget_exhausted', `${atPause.state} (${atPause.paused_reason})`),
            expectThat('within the limit when paused', atPause.spent + atPause.reserved <= LIMIT + 1e-6, `spent ${atPause.spent} + reserved ${atPause.reserved}`),
            expectThat('the raise accepted over NATS', answer.ok, JSON.stringify(answer)),
            expectThat('project completed after the raise', (await world.projectState(projectId)) === 'completed', JSON.stringify(counts)),
            expectThat('spend counted once', Math.abs(end[0]!.spent - end[0]!.charged) < 1e-6, `spent ${end[0]!.spent}, tasks' costs ${end[0]!.charged}`),
            ...(await world.invariants(projectId)),
          ],
          figure: { label: 'spend + reserved at the pause', value: atPause.spent + atPause.reserved, unit: `of ${LIMIT}` },
        };
      } finally {
        await world.close();
      }
    },
  };
}
