import { jetstream } from '@nats-io/jetstream';
import { SimulatedAgents } from '../../src/demo/simulated-agents.js';
import { TaskDispatch } from '../../src/domain/messages.js';
import { TaskTypeCatalog } from '../../src/domain/task-types.js';
import { approvalsOf, newProjectId } from '../../test/helpers/e2e-project.js';
import { expectThat, type Scenario, type ScenarioResult } from '../scenario.js';
import { World } from '../world.js';

const SHOTS = 20;

/**
 * Scenario 8: every inbound message three times — the project's event, every result and
 * every approval decision: twice through JetStream with the same `Nats-Msg-Id` (the stream
 * keeps one) and once as a core publish (the stream keeps it too: a real duplicate for the
 * orchestrator). Approvals on, at the four checkpoints. Exactly one effect each: every task
 * created once and completed once, every checkpoint decided once, nothing dead-lettered,
 * and the spend counted once. Figure: duplicate messages sent.
 */
export function triplicates(): Scenario {
  return {
    id: 'triplicates',
    title: 'every inbound message three times',
    async run(log): Promise<ScenarioResult> {
      const world = await World.create({ shots: SHOTS });
      const { nc } = world;
      const js = jetstream(nc);
      let duplicates = 0;
      /** Publishes `body` on `subject` three times: JetStream ×2 with one message id, core ×1. */
      const thrice = async (subject: string, body: unknown, msgID: string) => {
        const data = JSON.stringify(body);
        await js.publish(subject, data, { msgID });
        await js.publish(subject, data, { msgID });
        nc.publish(subject, data);
        duplicates += 2;
      };
      try {
        // The agents: a core subscriber of every dispatch, answering each three times.
        const simulated = new SimulatedAgents(new TaskTypeCatalog(), { shots: SHOTS, random: () => 0.5 });
        const answered = new Set<string>();
        const agentSub = nc.subscribe(`${world.prefix}.tasks.*`, {
          callback: (err, msg) => {
            if (err) return;
            const task = TaskDispatch.parse(msg.json());
            const key = `${task.taskId}:${task.fencingToken}`;
            if (answered.has(key)) return; // a re-sent dispatch: answered already (thrice)
            answered.add(key);
            const { output, actualCost } = simulated.run(task);
            void thrice(`${world.prefix}.results.${task.projectId}`, { taskId: task.taskId, fencingToken: task.fencingToken, status: 'completed', output, actualCost }, key);
          },
        });
        await nc.flush();
        const projectId = newProjectId();
        await world.startOrchestrator('chaos-8');
        const event = world.projectCreated(projectId, { budget: 1_000, approvals: true });
        await thrice(`${world.prefix}.events.${projectId}.PROJECT_CREATED`, event, event.id);
        // The reviewer: approves every pending checkpoint, each decision three times.
        const decided = new Set<string>();
        let reviewing = true;
        const reviewer = (async () => {
          while (reviewing) {
            for (const a of await approvalsOf(world.sql, projectId)) {
              if (a.status !== 'pending' || decided.has(a.approval_id)) continue;
              decided.add(a.approval_id);
              await thrice(`${world.prefix}.approvals.decided.${projectId}`, { approvalId: a.approval_id, decision: 'approved', by: 'chaos-reviewer' }, `${a.approval_id}:approved`);
            }
            await new Promise((r) => setTimeout(r, 100));
          }
        })();
        try {
          await world.projectDone(projectId, 300_000);
        } finally {
          reviewing = false;
          await reviewer;
          agentSub.unsubscribe();
        }
        // Duplicates still in the stream are handled before the checks.
        await world.until(async () => world.watch.messages.length > 0 && (await world.inboundPending()) === 0, 'the inbound stream drained', 60_000, 200);
        log(`${duplicates} duplicates sent`);
        const counts = await world.statusCounts(projectId);
        const total = Object.values(counts).reduce((a, b) => a + b, 0);
        const approvals = await approvalsOf(world.sql, projectId);
        const { rows: spend } = await world.sql.query<{ spent: number; charged: number }>(
          `SELECT p.spent::float AS spent, (SELECT COALESCE(sum(actual_cost), 0)::float FROM tasks t WHERE t.project_id = p.project_id) AS charged
           FROM projects p WHERE p.project_id = $1`,
          [projectId],
        );
        const dlq = world.watch.on(`${world.prefix}.dlq`);
        return {
          did: `${total} tasks, ${approvals.length} checkpoints, ${duplicates} duplicate messages`,
          checks: [
            expectThat('project completed', (await world.projectState(projectId)) === 'completed', JSON.stringify(counts)),
            expectThat(`${2 * SHOTS + 9} tasks, created once`, total === 2 * SHOTS + 9, `${total} tasks`),
            expectThat('each checkpoint requested and decided once', approvals.length === 4 && approvals.every((a) => a.status === 'approved'), approvals.map((a) => `${a.checkpoint}=${a.status}`).join(' ')),
            expectThat('nothing dead-lettered', dlq.length === 0, `${dlq.length} dead letters${dlq[0] ? `: ${JSON.stringify(dlq[0].body).slice(0, 200)}` : ''}`),
            expectThat('spend counted once', Math.abs(spend[0]!.spent - spend[0]!.charged) < 1e-6, `spent ${spend[0]!.spent}, tasks' costs ${spend[0]!.charged}`),
            ...(await world.invariants(projectId)),
          ],
          figure: { label: 'duplicate messages', value: duplicates, unit: '' },
        };
      } finally {
        await world.close();
      }
    },
  };
}
