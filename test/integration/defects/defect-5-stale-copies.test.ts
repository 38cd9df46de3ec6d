import { afterEach, describe, expect, it } from 'vitest';
import type { TaskDispatch } from '../../../src/domain/messages.js';
import { allCompleted, completed, completionsPerTask, coreAgent, createDefectScope, createProject, startInstance } from '../../helpers/defects.js';
import { connectTestNats } from '../../helpers/nats.js';

/**
 * Issue 15, defect 5: two instances, each acting on its own in-memory copy of a task.
 * Instance B creates chains first → second; A handles the firsts' results (so A promotes
 * the seconds to READY), and whichever instance pops a second dispatches it; B handles the
 * seconds' genuine results. Every result must be applied (none refused, none
 * dead-lettered), every task complete exactly once, and every id popped from the shared
 * queue be dispatched or put back. (Today B still holds the seconds as PENDING: it refuses
 * their results with ERR_ILLEGAL_TRANSITION, or drops them when it pops them.)
 */
let cleanup: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const fn of cleanup.reverse()) await fn().catch(() => undefined);
  cleanup = [];
});

describe('defect 5: two instances acting on stale in-memory copies', () => {
  it('genuine results handled by either instance are applied once; every task completes', async () => {
    const scope = await createDefectScope();
    cleanup.push(() => scope.cleanup());
    const agentNc = await connectTestNats(`agent-${scope.id}`, scope.natsUrl);
    cleanup.push(() => agentNc.close());
    const inbox: TaskDispatch[] = [];
    const agent = coreAgent(agentNc, scope.subjectPrefix, (t) => {
      inbox.push(t);
      return null;
    });
    await agentNc.flush();

    const a = await startInstance(scope, 'a');
    cleanup.push(() => a.stop());
    const b = await startInstance(scope, 'b');
    cleanup.push(() => b.stop());
    await createProject(b.orchestrator, 'prj_d5');
    const chains = 10;
    const tasks = Array.from({ length: chains }, (_, i) => [
      { taskId: `tsk_d5first${i}`, taskType: 'ANALYZE_BRIEF' as const },
      { taskId: `tsk_d5second${i}`, taskType: 'WRITE_SCRIPT' as const, dependencies: [`tsk_d5first${i}`] },
    ]).flat();
    await b.orchestrator.submitTasks('prj_d5', tasks);

    // The results go where the bus would have sent them: firsts to A, seconds to B.
    const refused: string[] = [];
    let pumping = true;
    const pump = (async () => {
      while (pumping) {
        for (const d of inbox.splice(0)) {
          const to = d.taskId.includes('first') ? a : b;
          await to.orchestrator.handleResult('prj_d5', completed(d)).catch((err: Error) => refused.push(`${d.taskId} by ${to.name}: ${err.message}`));
        }
        await new Promise((r) => setTimeout(r, 20));
      }
    })();
    try {
      await allCompleted(a.raw, 'prj_d5', 2 * chains, 30_000, () => `refused: ${refused.slice(0, 2).join(' | ') || 'none'}`);
    } finally {
      pumping = false;
      await pump;
    }
    expect(refused).toEqual([]);
    const once = await completionsPerTask(a.raw, tasks.map((t) => t.taskId));
    expect([...once.values()].every((n) => n === 1)).toBe(true);
    expect(await a.raw.deadLetters.list('prj_d5')).toEqual([]);
    expect(agent.deliveries.length).toBe(2 * chains);
  });
});
