import { afterEach, describe, expect, it } from 'vitest';
import type { TaskDispatch } from '../../../src/domain/messages.js';
import type { Instance } from '../../helpers/defects.js';
import { allCompleted, completed, coreAgent, createDefectScope, createProject, eventually, intercept, mentions, startInstance } from '../../helpers/defects.js';
import { connectTestNats } from '../../helpers/nats.js';

/**
 * Issue 15, defect 6: a process dies between taking the leases of a dispatch batch and
 * writing the tasks RUNNING (its RUNNING write never returns; it is never stopped). The
 * leases it took stay in Redis until they expire. A new instance must not drop those
 * tasks from the queue for good: every task completes. (Today the restart queues the READY
 * tasks, its first pass pops them, fails to lease them and drops them; nothing queues
 * them again.) Short task timeouts keep the orphaned leases short (timeout + grace).
 */
let cleanup: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const fn of cleanup.reverse()) await fn().catch(() => undefined);
  cleanup = [];
});

describe('defect 6: a crash between the leases and the RUNNING write', () => {
  it('tasks whose leases the dead process holds are dispatched once they can be, and complete', async () => {
    const scope = await createDefectScope();
    cleanup.push(() => scope.cleanup());
    const agentNc = await connectTestNats(`agent-${scope.id}`, scope.natsUrl);
    cleanup.push(() => agentNc.close());
    let holdFirst = true;
    const held: TaskDispatch[] = [];
    const agent = coreAgent(agentNc, scope.subjectPrefix, (t) => {
      if (holdFirst && t.taskId === 'tsk_d6root') {
        held.push(t);
        return null;
      }
      return completed(t);
    });
    await agentNc.flush();

    let armed = false;
    let leasesTaken = 0;
    let crashed = false;
    let a: Instance | undefined;
    // The process "dies" at its first RUNNING write after the trap is armed: the write hangs
    // and the whole instance with it.
    const trap = <T extends object>(port: T): T =>
      intercept(port, (_method, args, next) => {
        if (armed && (mentions(args, 'event', ['DISPATCH']) || mentions(args, 'to', ['RUNNING']))) {
          crashed = true;
          void a?.kill();
          return new Promise(() => undefined);
        }
        return next();
      });
    a = await startInstance(scope, 'a', {
      wrap: (bb) => ({
        tasks: trap(bb.tasks),
        projects: trap(bb.projects),
        commit: trap(bb.commit),
        locks: intercept(bb.locks, (method, args, next) => {
          if (armed && method.startsWith('acquire')) leasesTaken += Array.isArray(args[0]) ? args[0].length : 1;
          return next();
        }),
      }),
    });
    cleanup.push(() => a!.stop());
    await createProject(a.orchestrator, 'prj_d6');
    const dependents = Array.from({ length: 5 }, (_, i) => ({
      taskId: `tsk_d6dep${i}`,
      taskType: 'ANALYZE_BRIEF' as const,
      dependencies: ['tsk_d6root'],
      timeoutMs: 1_000,
    }));
    await a.orchestrator.submitTasks('prj_d6', [{ taskId: 'tsk_d6root', taskType: 'ANALYZE_BRIEF', timeoutMs: 1_000 }, ...dependents]);
    await eventually(() => held.length === 1, 'the root task dispatched');
    // The root completes; its dependents become READY, and A dies dispatching them.
    armed = true;
    holdFirst = false;
    agent.answer(completed(held[0]!));
    await eventually(() => crashed, 'A reached the RUNNING write of the dependents');
    expect(leasesTaken).toBeGreaterThan(0);
    await a.kill();

    const b = await startInstance(scope, 'b');
    cleanup.push(() => b.stop());
    await allCompleted(b.raw, 'prj_d6', 6, 75_000);
    for (const d of dependents) expect(agent.count(d.taskId)).toBeGreaterThanOrEqual(1);
  }, 120_000);
});
