import { afterEach, describe, expect, it } from 'vitest';
import { createAgentWorker, type AgentWorker } from '../../../src/agent/worker.js';
import { FOLLOW_UP_PIPELINE, allCompleted, createDefectScope, createProject, refuseApprovalsOf, startInstance } from '../../helpers/defects.js';
import { atMost, connectTestNats } from '../../helpers/nats.js';

/**
 * Issue 15, "must show": one project's reaction keeps failing while another project's
 * results keep completing and its raised events are handled, without a restart. Project P1
 * stops at a checkpoint after every task, and its approval requests cannot be published
 * (the event bus refuses them, as NATS refuses a message over max_payload). Project P2
 * runs the same pipeline without the checkpoint: each completed ANALYZE_BRIEF raises
 * STEP_DONE, which creates a follow-up. Agents answer over NATS; results of both projects
 * arrive together. Every P2 task and every P2 follow-up must complete.
 */
let cleanup: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const fn of cleanup.reverse()) await fn().catch(() => undefined);
  cleanup = [];
});

const FAILING = 'prj_ri_failing';
const HEALTHY = 'prj_ri_healthy';

describe("reaction isolation: one project's failing reaction", () => {
  it("another project's results keep completing and its raised events are handled", async () => {
    const scope = await createDefectScope();
    cleanup.push(() => scope.cleanup());
    const a = await startInstance(scope, 'a', { pipeline: FOLLOW_UP_PIPELINE, wrapBus: refuseApprovalsOf(FAILING), config: { scheduler: { maxConcurrentTasks: 40 } } });
    cleanup.push(() => a.stop());
    const agentNc = await connectTestNats(`agents-${scope.id}`, scope.natsUrl);
    cleanup.push(() => agentNc.close());
    const workers: AgentWorker[] = [];
    cleanup.push(() => atMost(Promise.all(workers.map((w) => w.stop({ abort: true }))), 10_000));
    workers.push(
      await createAgentWorker({
        connection: agentNc,
        agent: 'script_writer',
        subjectPrefix: scope.subjectPrefix,
        streamPrefix: scope.streamPrefix,
        concurrency: 20,
        handle: async (task) => {
          await new Promise((r) => setTimeout(r, 5 + Math.floor(Math.random() * 10)));
          return { output: { done: task.taskId }, actualCost: 0.01 };
        },
      }),
    );

    await createProject(a.orchestrator, FAILING, { checkpoints: ['STEP_DONE'] });
    await createProject(a.orchestrator, HEALTHY);
    const rounds = 6;
    const perRound = 5;
    for (let r = 0; r < rounds; r++) {
      await a.orchestrator.submitTasks(FAILING, Array.from({ length: perRound }, () => ({ taskType: 'ANALYZE_BRIEF' as const })));
      await a.orchestrator.submitTasks(HEALTHY, Array.from({ length: perRound }, () => ({ taskType: 'ANALYZE_BRIEF' as const })));
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    const n = rounds * perRound;
    // Every healthy task and the follow-up its STEP_DONE created.
    const rows = await allCompleted(a.raw, HEALTHY, 2 * n, 60_000, async () => {
      const outbox = await a.raw.tasks.listOutbox(1_000);
      return `healthy events left in the outbox: ${outbox.filter((e) => e.projectId === HEALTHY).length}`;
    });
    expect(rows.filter((t) => t.taskType === 'WRITE_VOICEOVER_SCRIPT')).toHaveLength(n);
    expect(await a.raw.deadLetters.list(HEALTHY)).toEqual([]);
  }, 120_000);
});
