import { afterEach, describe, expect, it } from 'vitest';
import type { TaskDispatch } from '../../../src/domain/messages.js';
import { ServiceUnavailableError } from '../../../src/errors.js';
import { allCompleted, completed, coreAgent, createDefectScope, createProject, eventually, intercept, mentions, startInstance } from '../../helpers/defects.js';
import { connectTestNats } from '../../helpers/nats.js';

/**
 * Issue 15, defect 8: the promotion of a completed task's dependents fails once, after the
 * COMPLETE was committed (a TaskStore whose dependents lookup or promotion write rejects
 * once). The dependents must still become READY and complete, without a restart. (Today
 * the result is redelivered, found "already applied", and returns early: the dependents
 * stay PENDING until a restart.) The result travels over NATS, as an agent sends it.
 */
let cleanup: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const fn of cleanup.reverse()) await fn().catch(() => undefined);
  cleanup = [];
});

describe('defect 8: promotion failing once after the COMPLETE commit', () => {
  it('the dependents are promoted and complete without a restart', async () => {
    const scope = await createDefectScope();
    cleanup.push(() => scope.cleanup());
    const agentNc = await connectTestNats(`agent-${scope.id}`, scope.natsUrl);
    cleanup.push(() => agentNc.close());
    let holdRoot = true;
    const held: TaskDispatch[] = [];
    const agent = coreAgent(agentNc, scope.subjectPrefix, (t) => {
      if (holdRoot && t.taskId === 'tsk_d8root') {
        held.push(t);
        return null;
      }
      return completed(t);
    });
    await agentNc.flush();

    let armed = false;
    const injected: string[] = [];
    const a = await startInstance(scope, 'a', {
      wrap: (bb) => {
        const failOnce = <T extends object>(port: T): T =>
          intercept(port, (method, args, next) => {
            if (armed && (method === 'listDependentsOf' || mentions(args, 'event', ['DEPENDENCIES_MET']))) {
              armed = false;
              injected.push(method);
              return Promise.reject(new ServiceUnavailableError('postgres', 'Connection terminated unexpectedly (injected)'));
            }
            return next();
          });
        return { tasks: failOnce(bb.tasks), commit: failOnce(bb.commit) };
      },
    });
    cleanup.push(() => a.stop());
    await createProject(a.orchestrator, 'prj_d8');
    const dependents = Array.from({ length: 3 }, (_, i) => ({ taskId: `tsk_d8dep${i}`, taskType: 'ANALYZE_BRIEF' as const, dependencies: ['tsk_d8root'] }));
    await a.orchestrator.submitTasks('prj_d8', [{ taskId: 'tsk_d8root', taskType: 'ANALYZE_BRIEF' }, ...dependents]);
    await eventually(() => held.length === 1, 'the root task dispatched');
    armed = true;
    holdRoot = false;
    agent.answer(completed(held[0]!));
    await eventually(async () => (await a.raw.tasks.getTask('tsk_d8root'))?.status === 'COMPLETED', 'the root COMPLETED');
    await allCompleted(a.raw, 'prj_d8', 4, 30_000, () => `failure injected in: ${injected.join(',') || 'nothing'}`);
    expect(injected, 'the promotion failure was injected once (dependents lookup or promotion write)').toHaveLength(1);
  });
});
