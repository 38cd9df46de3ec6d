/**
 * The orchestrator embedded in your own service, with no servers: the embedded blackboard
 * (PGlite, in-memory queue and leases), the in-process event bus and in-process agents.
 * Runs one video project from PROJECT_CREATED to completion, approving every checkpoint,
 * prints a line per task status change and exits 0.
 *
 *   npx tsx examples/embedded-service.ts
 */
import { randomUUID } from 'node:crypto';
import {
  InProcessEventBus,
  OrchestratorFactory,
  TaskTypeCatalog,
  createEmbeddedBlackboard,
  type TaskDispatch,
} from '../src/index.js';

/** What each task type returns (the README's data contract); anything else gets an artifact. */
function outputOf(task: TaskDispatch): Record<string, unknown> {
  switch (task.taskType) {
    case 'WRITE_SCRIPT':
      return { script: `INT. LIGHTHOUSE - NIGHT. ${String(task.input.brief)}.` };
    case 'PLAN_SHOTS':
      return { shots: [{ prompt: 'the keeper climbs the stairs' }, { prompt: 'a bottle on the rocks' }, { prompt: 'the lamp turns' }] };
    case 'GENERATE_KEYFRAME':
      return { image: `mem://frames/${task.taskId}.png` };
    case 'RUN_VISUAL_QA':
      return { passed: true, issues: [] };
    case 'GENERATE_PREVIEW_VIDEO':
    case 'GENERATE_FINAL_VIDEO':
      return { video: `mem://renders/${task.taskId}.mp4` };
    default:
      return { artifact: `mem://artifacts/${task.taskId}` };
  }
}

const catalog = new TaskTypeCatalog();
const blackboard = await createEmbeddedBlackboard();
const bus = new InProcessEventBus();
const projectId = `prj_${randomUUID().slice(0, 8)}`;

// In-process agents: one per agent name of the catalogue, a few milliseconds of "work" each.
for (const agent of new Set(catalog.list().map((t) => t.agent))) {
  bus.registerAgent(agent, async (task) => {
    await new Promise((resolve) => setTimeout(resolve, 20));
    const actualCost = catalog.estimateCost(task.taskType, task.input);
    await bus.sendResult(task.projectId, { taskId: task.taskId, fencingToken: task.fencingToken, status: 'completed', output: outputOf(task), actualCost });
  });
}

// What the orchestrator publishes: print status changes, approve checkpoints, wait for the end.
const finished = new Promise<string>((resolve) => {
  bus.subscribe((m) => {
    if (m.kind === 'status') console.log(`${m.body.taskType.padEnd(24)} ${m.body.from ?? '(new)'} -> ${m.body.to}`);
    if (m.kind === 'approval_requested') {
      console.log(`approval ${m.body.checkpoint}: approved`);
      void bus.sendDecision(m.body.projectId, { approvalId: m.body.approvalId, decision: 'approved', by: 'example' });
    }
    if (m.kind === 'dlq') console.error(`dead letter: ${m.body.reason}`);
    if (m.kind === 'project' && (m.body.state === 'completed' || m.body.state === 'cancelled')) resolve(m.body.state);
  });
});

const orchestrator = await OrchestratorFactory.createAndStart(blackboard, bus, { scheduler: { intervalSeconds: 0.05 } });
await orchestrator.handleEvent({
  id: `${projectId}:created`,
  type: 'PROJECT_CREATED',
  projectId,
  payload: { title: 'The Keeper', brief: 'a lighthouse keeper finds a message in a bottle', budget: 25 },
  occurredAt: new Date().toISOString(),
});
const state = await finished;
const budget = await orchestrator.getBudgetStatus(projectId);
console.log(`project ${projectId} ${state}: spent $${budget.spent.toFixed(2)} of $${budget.limit?.toFixed(2)}`);
await orchestrator.stop();
await blackboard.close();
process.exit(state === 'completed' ? 0 : 1);
