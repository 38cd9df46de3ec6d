import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { TaskDispatch } from '../../src/domain/messages.js';
import {
  approvalsOf,
  CHECKPOINTS,
  countByType,
  newProjectId,
  PIPELINE_TASKS,
  projectRow,
  publishDecision,
  publishProjectCreated,
  tasksOf,
  transitionProblems,
  transitionsOf,
} from '../helpers/e2e-project.js';
import { NatsWatch, until } from '../helpers/nats-watch.js';
import { startAgents, startService, stopAll, type ManagedProcess } from '../helpers/service-process.js';
import { createServiceScope, type ServiceScope } from '../helpers/service-scope.js';

/**
 * The crash case: `orchestrator start` is SIGKILLed while the keyframes run (after the
 * SHOT_PLANNED approval), started again with the same environment, and the project still
 * completes with every task completed exactly once and nothing lost. The agents process
 * keeps running throughout; results it publishes meanwhile wait in the inbound stream.
 */

let scope: ServiceScope;
let watch: NatsWatch;
const processes: (ManagedProcess | undefined)[] = [];
let approver: { stop(): Promise<void> } | undefined;

beforeAll(async () => {
  // Longer simulated work, so the kill lands while the keyframes are being rendered.
  scope = await createServiceScope({ AGENT_DURATION_MS: '1000' });
  const p = scope.prefix;
  watch = await NatsWatch.start(scope.nc, [`${p}.status.>`, `${p}.projects.>`, `${p}.tasks.>`, `${p}.results.>`]);
}, 60_000);

afterAll(async () => {
  await approver?.stop();
  await stopAll(processes);
  watch?.close();
  await scope?.cleanup();
}, 60_000);

/**
 * The reviewer, reading the pending approvals from PostgreSQL (a request published just
 * before a crash is not lost to it) and approving each once over NATS; it keeps going
 * while the service is down (the decision waits in the inbound stream).
 */
function startApprover(projectId: string): { decided: Set<string>; stop(): Promise<void> } {
  const decided = new Set<string>();
  let stopped = false;
  const loop = (async () => {
    while (!stopped) {
      const pending = (await approvalsOf(scope.sql, projectId)).filter((a) => a.status === 'pending' && !decided.has(a.approval_id));
      for (const a of pending) {
        await publishDecision(scope.nc, scope.prefix, projectId, a.approval_id);
        decided.add(a.approval_id);
      }
      await new Promise((r) => setTimeout(r, 100));
    }
  })();
  return {
    decided,
    async stop() {
      stopped = true;
      await loop.catch(() => undefined);
    },
  };
}

describe('orchestrator start killed in the middle of a project', () => {
  it('completes the project after a restart: each task completed once, every event and approval handled', async () => {
    const first = await startService(scope.env, 'orchestrator#1');
    processes.push(first);
    const agents = await startAgents(scope.env);
    processes.push(agents);
    const projectId = newProjectId();
    await publishProjectCreated(scope.nc, scope.prefix, projectId);
    const reviewer = startApprover(projectId);
    approver = reviewer;

    // The three keyframes dispatched (the agents have them): kill the service now.
    const keyframeDispatches = () =>
      watch.on<TaskDispatch>(`${scope.prefix}.tasks.`, (d) => d.projectId === projectId && d.taskType === 'GENERATE_KEYFRAME');
    await until(() => keyframeDispatches().length >= 3, `the keyframes dispatched\n${first.describe()}`, 90_000);
    expect(await first.stop('SIGKILL')).toEqual({ code: null, signal: 'SIGKILL' });
    const keyframeIds = new Set(keyframeDispatches().map((d) => d.body.taskId));
    expect(keyframeIds.size).toBe(3);

    // The agents finish the keyframes while no orchestrator runs; their results are kept.
    await until(
      () =>
        watch.on<{ taskId?: string; results?: { taskId: string }[] }>(`${scope.prefix}.results.${projectId}`, (r) =>
          (r.results ?? [r]).some((x) => keyframeIds.has(x.taskId!)),
        ).length >= 1,
      `a keyframe result published while the service is down\n${agents.describe()}`,
      60_000,
    );
    const beforeRestart = await tasksOf(scope.sql, projectId);
    expect(beforeRestart.filter((t) => t.task_type === 'GENERATE_KEYFRAME').every((t) => t.status === 'RUNNING')).toBe(true);

    // Same environment, a new process: it recovers and the project goes on to the end.
    const second = await startService(scope.env, 'orchestrator#2');
    processes.push(second);
    await until(
      async () => (await projectRow(scope.sql, projectId))?.state === 'completed',
      `project ${projectId} completed after the restart\n${second.describe()}\n${agents.describe()}`,
      150_000,
      200,
    );
    await reviewer.stop();
    await until(
      () => watch.on(`${scope.prefix}.projects.${projectId}`, (b: { state: string }) => b.state === 'completed').length > 0,
      'the completed project published',
      30_000,
    );

    // Every task of the pipeline exists once (no event lost, none handled twice), all final.
    const tasks = await tasksOf(scope.sql, projectId);
    expect(countByType(tasks)).toEqual(PIPELINE_TASKS);
    expect(tasks.filter((t) => t.status !== 'COMPLETED')).toEqual([]);

    // The audit log: exactly one COMPLETED per task, each task's history chained and legal.
    const audit = await transitionsOf(scope.sql, projectId);
    for (const t of tasks) {
      const rows = audit.filter((r) => r.task_id === t.task_id);
      expect(rows.filter((r) => r.to_status === 'COMPLETED'), t.task_id).toHaveLength(1);
      expect(transitionProblems(rows.map((r) => ({ from: r.from_status, to: r.to_status }))), t.task_id).toEqual([]);
    }
    expect(new Set(audit.map((r) => r.task_id))).toEqual(new Set(tasks.map((t) => t.task_id)));
    // The keyframes were dispatched by the first process and completed by the second.
    for (const id of keyframeIds) {
      const running = audit.find((r) => r.task_id === id && r.to_status === 'RUNNING')!;
      const completed = audit.find((r) => r.task_id === id && r.to_status === 'COMPLETED')!;
      expect(running.by_instance).not.toBe(completed.by_instance);
    }

    // Every checkpoint requested once and approved once; no raised event left unhandled.
    const approvals = await approvalsOf(scope.sql, projectId);
    expect(approvals.map((a) => a.checkpoint)).toEqual([...CHECKPOINTS]);
    expect(approvals.every((a) => a.status === 'approved')).toBe(true);
    expect(reviewer.decided.size).toBe(4);
    const outbox = await scope.sql.query<{ n: number }>('SELECT count(*)::int AS n FROM outbox WHERE project_id = $1', [projectId]);
    expect(outbox.rows[0]?.n).toBe(0);

    // The money: spent is the sum of the actual costs, nothing stays reserved.
    const row = await projectRow(scope.sql, projectId);
    expect(row?.spent).toBeCloseTo(tasks.reduce((acc, t) => acc + (t.actual_cost ?? 0), 0), 4);
    expect(row?.reserved).toBeCloseTo(0, 4);

    expect(await second.stop('SIGTERM'), second.describe()).toEqual({ code: 0, signal: null });
    expect(await agents.stop('SIGTERM'), agents.describe()).toEqual({ code: 0, signal: null });
  }, 300_000);
});
