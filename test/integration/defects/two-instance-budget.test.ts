import { afterEach, describe, expect, it } from 'vitest';
import { createAgentWorker, type AgentWorker } from '../../../src/agent/worker.js';
import type { DeadLetterMessage } from '../../../src/domain/messages.js';
import { allCompleted, completionsPerTask, createDefectScope, createProject, eventually, startInstance } from '../../helpers/defects.js';
import { atMost, collect, connectTestNats } from '../../helpers/nats.js';

/**
 * Issue 15, "must show": two orchestrator instances on real PostgreSQL, Redis and NATS,
 * 200 tasks over the NATS contract with agents answering (the agent SDK's workers), a
 * budget that pauses the project and is then raised. Every task completes exactly once
 * (one COMPLETED transition each in the audit log), no genuine result is dead-lettered
 * (nothing on the dlq subject, nothing in dead_letters) and nothing stays reserved.
 * Half the chains are created by each instance, and each instance handles the results
 * the shared durable consumer gives it.
 */
let cleanup: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const fn of cleanup.reverse()) await fn().catch(() => undefined);
  cleanup = [];
});

describe('two instances, 200 tasks, a budget that pauses and is raised', () => {
  it('every task completes exactly once; nothing dead-lettered; nothing reserved', async () => {
    const scope = await createDefectScope();
    cleanup.push(() => scope.cleanup());
    const nc = await connectTestNats(`test-${scope.id}`, scope.natsUrl);
    cleanup.push(() => nc.close());
    const dlq = collect<DeadLetterMessage>(nc, `${scope.subjectPrefix}.dlq`).messages;
    await nc.flush();

    const config = { scheduler: { maxConcurrentTasks: 40 } };
    const a = await startInstance(scope, 'a', { config });
    cleanup.push(() => a.stop());
    const b = await startInstance(scope, 'b', { config });
    cleanup.push(() => b.stop());

    const agentNc = await connectTestNats(`agents-${scope.id}`, scope.natsUrl);
    cleanup.push(() => agentNc.close());
    const workers: AgentWorker[] = [];
    cleanup.push(() => atMost(Promise.all(workers.map((w) => w.stop({ abort: true }))), 10_000));
    for (let i = 0; i < 2; i++) {
      workers.push(
        await createAgentWorker({
          connection: agentNc,
          agent: 'script_writer',
          subjectPrefix: scope.subjectPrefix,
          streamPrefix: scope.streamPrefix,
          concurrency: 16,
          handle: async (task) => {
            await new Promise((r) => setTimeout(r, 5 + Math.floor(Math.random() * 20)));
            return { output: { done: task.taskId }, actualCost: 0.01 };
          },
        }),
      );
    }

    // A budget that runs out part-way (estimates 0.02 + 0.05 per chain are reserved).
    await createProject(a.orchestrator, 'prj_d10', { budget: 1.5 });
    const chains = 100;
    const ids: string[] = [];
    const chain = (i: number) => {
      ids.push(`tsk_d10first${i}`, `tsk_d10second${i}`);
      return [
        { taskId: `tsk_d10first${i}`, taskType: 'ANALYZE_BRIEF' as const },
        { taskId: `tsk_d10second${i}`, taskType: 'WRITE_VOICEOVER_SCRIPT' as const, dependencies: [`tsk_d10first${i}`] },
      ];
    };
    for (let i = 0; i < chains; i += 10) {
      const by = (i / 10) % 2 === 0 ? a : b;
      await by.orchestrator.submitTasks('prj_d10', Array.from({ length: 10 }, (_, k) => chain(i + k)).flat());
    }
    await eventually(
      async () => (await a.raw.projects.getProject('prj_d10'))?.state === 'paused',
      'the project paused for its budget',
      async () => JSON.stringify(await a.raw.projects.getProject('prj_d10')),
    );
    expect((await a.raw.projects.getProject('prj_d10'))!.pausedReason).toBe('budget_exhausted');
    await b.orchestrator.setBudget('prj_d10', 100);

    await allCompleted(a.raw, 'prj_d10', 2 * chains, 90_000, async () => {
      const letters = await a.raw.deadLetters.list('prj_d10');
      return `project ${JSON.stringify(await a.raw.projects.getProject('prj_d10').then((p) => p && { state: p.state, reserved: p.reserved, spent: p.spent }))}; dlq ${dlq.length} (${dlq[0]?.body.reason ?? ''}); dead_letters ${letters.length}`;
    });
    const once = await completionsPerTask(a.raw, ids);
    expect([...once.entries()].filter(([, n]) => n !== 1)).toEqual([]);
    expect(dlq.filter((m) => m.body.subject.includes('.results.')).map((m) => m.body.reason)).toEqual([]);
    expect(await a.raw.deadLetters.list('prj_d10')).toEqual([]);
    await eventually(async () => Math.abs((await a.raw.projects.getProject('prj_d10'))!.reserved) < 1e-9, 'nothing reserved', async () => `reserved ${(await a.raw.projects.getProject('prj_d10'))!.reserved}`);
  }, 120_000);
});
