import { newProjectId } from '../../test/helpers/e2e-project.js';
import { expectThat, type Scenario, type ScenarioResult } from '../scenario.js';
import { World } from '../world.js';

const SHOTS = 3;

interface ApprovalRow {
  approval_id: string;
  checkpoint: string;
  status: string;
  decided_by: string | null;
}

/**
 * Scenario 9: approval races on two instances (approvals on at the four checkpoints; the
 * decisions are core publishes, so none is de-duplicated by the stream):
 * - SCENE_WRITTEN approved twice at once;
 * - SHOT_PLANNED approved and rejected at once (the rejection, when it wins, asks for a
 *   revision, whose own request is approved);
 * - PREVIEW_VIDEO_READY left to expire (policy `approve`), then rejected late;
 * - a decision on an unknown approval id.
 * Exactly one outcome each: one decision per request, no task created twice, the late and
 * the unknown decisions refused (dead-lettered), the project completed.
 */
export function approvalRaces(): Scenario {
  return {
    id: 'approval-races-two-instances',
    title: 'approval races on two instances',
    async run(log): Promise<ScenarioResult> {
      // A short timeout for the preview's request only matters there: the reviewer answers the others at once.
      const world = await World.create({ shots: SHOTS, env: { APPROVAL_TIMEOUT: '0.05', APPROVAL_TIMEOUT_POLICY: 'approve' } });
      try {
        await world.startAgents();
        const projectId = newProjectId();
        await world.startOrchestrator('chaos-9a');
        await world.startOrchestrator('chaos-9b');
        const decide = (approvalId: string, decision: 'approved' | 'rejected') =>
          world.nc.publish(`${world.prefix}.approvals.decided.${projectId}`, JSON.stringify({ approvalId, decision, by: 'chaos-reviewer', comment: 'race' }));
        const approvals = async () =>
          (await world.sql.query<ApprovalRow>('SELECT approval_id, checkpoint, status, decided_by FROM approvals WHERE project_id = $1 ORDER BY requested_at', [projectId])).rows;
        // The project, with the four checkpoints.
        const event = world.projectCreated(projectId, { budget: 100, approvals: true });
        world.nc.publish(`${world.prefix}.events.${projectId}.PROJECT_CREATED`, JSON.stringify(event));
        const handled = new Set<string>();
        let late: string | null = null;
        let shotsRaced = false;
        let reviewing = true;
        const reviewer = (async () => {
          while (reviewing) {
            for (const a of await approvals()) {
              if (handled.has(a.approval_id)) continue;
              if (a.checkpoint === 'PREVIEW_VIDEO_READY') {
                if (a.status === 'pending') continue; // left to expire
                handled.add(a.approval_id);
                late = a.approval_id;
                decide(a.approval_id, 'rejected'); // after its expiry: refused
                continue;
              }
              if (a.status !== 'pending') continue;
              handled.add(a.approval_id);
              if (a.checkpoint === 'SCENE_WRITTEN') {
                decide(a.approval_id, 'approved');
                decide(a.approval_id, 'approved');
              } else if (a.checkpoint === 'SHOT_PLANNED' && !shotsRaced) {
                shotsRaced = true;
                decide(a.approval_id, 'approved');
                decide(a.approval_id, 'rejected');
              } else decide(a.approval_id, 'approved');
            }
            await new Promise((r) => setTimeout(r, 50));
          }
        })();
        decide('apr_unknown_chaos', 'approved');
        try {
          await world.projectDone(projectId, 300_000);
        } finally {
          reviewing = false;
          await reviewer;
        }
        await new Promise((r) => setTimeout(r, 500)); // the last decisions' dead letters
        const rows = await approvals();
        log(rows.map((a) => `${a.checkpoint}=${a.status}`).join(' '));
        const dlq = world.watch.on<{ reason: string; data: string }>(`${world.prefix}.dlq`);
        const dlqFor = (id: string) => dlq.filter((d) => String(d.body.data).includes(id));
        const preview = rows.find((a) => a.checkpoint === 'PREVIEW_VIDEO_READY');
        const counts = await world.statusCounts(projectId);
        const { rows: types } = await world.sql.query<{ task_type: string; n: number }>(
          'SELECT task_type, count(*)::int AS n FROM tasks WHERE project_id = $1 GROUP BY task_type',
          [projectId],
        );
        const byType = Object.fromEntries(types.map((t) => [t.task_type, t.n]));
        const shotsRejected = rows.some((a) => a.checkpoint === 'SHOT_PLANNED' && a.status === 'rejected');
        return {
          did: `${Object.values(counts).reduce((a, b) => a + b, 0)} tasks, ${rows.length} requests: ${rows.map((a) => `${a.checkpoint} ${a.status}`).join(', ')}`,
          checks: [
            expectThat('project completed', (await world.projectState(projectId)) === 'completed', JSON.stringify(counts)),
            expectThat('every request decided once', rows.every((a) => a.status !== 'pending'), rows.map((a) => `${a.checkpoint}=${a.status}`).join(' ')),
            expectThat('the double approval: one script, one shot plan', byType.WRITE_SCRIPT === 1 && (byType.PLAN_SHOTS ?? 0) === 1, JSON.stringify(byType)),
            expectThat(
              'approve against reject: one outcome',
              shotsRejected ? (byType.REVISE_SHOTS ?? 0) === 1 : (byType.REVISE_SHOTS ?? 0) === 0,
              `${shotsRejected ? 'rejected' : 'approved'}, REVISE_SHOTS ${byType.REVISE_SHOTS ?? 0}`,
            ),
            expectThat('the preview expired and was approved by its policy', preview?.status === 'approved' && preview.decided_by === 'orchestrator:timeout', JSON.stringify(preview ?? null)),
            expectThat('the late rejection refused', late !== null && dlqFor(late).length >= 1, `${late ? dlqFor(late).map((d) => d.body.reason).join('; ') : 'not sent'}`),
            expectThat('the unknown id refused', dlqFor('apr_unknown_chaos').length === 1, dlqFor('apr_unknown_chaos').map((d) => d.body.reason).join('; ') || 'not dead-lettered'),
            ...(await world.invariants(projectId)),
          ],
          figure: { label: 'requests decided', value: rows.length, unit: '' },
        };
      } finally {
        await world.close();
      }
    },
  };
}
