import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { BudgetStatus, DeadLetterMessage, ProjectStatusMessage, TaskStatusMessage } from '../../src/domain/messages.js';
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
import { runCli, startAgents, startService, stopAll, type ManagedProcess } from '../helpers/service-process.js';
import { createServiceScope, type ServiceScope } from '../helpers/service-scope.js';

/**
 * The main job, end to end, as separate processes against the real servers:
 * `orchestrator start`, the agents example, the CLI; the test talks to them over NATS
 * only (and reads PostgreSQL to check). Every wait is a poll with a generous limit.
 */

interface ApprovalRequest {
  approvalId: string;
  projectId: string;
  checkpoint: string;
}

let scope: ServiceScope;
let watch: NatsWatch;
const processes: (ManagedProcess | undefined)[] = [];

beforeAll(async () => {
  scope = await createServiceScope();
  const p = scope.prefix;
  watch = await NatsWatch.start(scope.nc, [`${p}.status.>`, `${p}.budget.>`, `${p}.projects.>`, `${p}.approvals.requested.>`, `${p}.dlq`]);
}, 60_000);

afterAll(async () => {
  await stopAll(processes);
  watch?.close();
  await scope?.cleanup();
}, 60_000);

const statusOf = (projectId: string) => watch.on<TaskStatusMessage>(`${scope.prefix}.status.${projectId}.`);
const requestsOf = (projectId: string) => watch.on<ApprovalRequest>(`${scope.prefix}.approvals.requested.${projectId}`);
const projectState = (projectId: string, state: string) =>
  watch.on<ProjectStatusMessage>(`${scope.prefix}.projects.${projectId}`, (b) => b.state === state).length > 0;

describe('orchestrator start with the agents example, as separate processes', () => {
  it('runs a project to completion over NATS: every task COMPLETED in a legal order, budget = actual costs, 4 approvals', async () => {
    const service = await startService(scope.env);
    processes.push(service);
    const agents = await startAgents(scope.env);
    processes.push(agents);
    const projectId = newProjectId();
    await publishProjectCreated(scope.nc, scope.prefix, projectId);

    // The reviewer: approves each request once; SHOT_PLANNED through `orchestrator approve`.
    const decided = new Set<string>();
    let cliStatus: { tasks: Record<string, number>; pendingApprovals: { approvalId: string; checkpoint: string }[] } | undefined;
    let cliApproved: { pendingApprovals: { approvalId: string }[] } | undefined;
    let cliApprovalId = '';
    await until(async () => {
      for (const { body } of requestsOf(projectId)) {
        if (decided.has(body.approvalId)) continue;
        decided.add(body.approvalId);
        if (body.checkpoint !== 'SHOT_PLANNED') {
          await publishDecision(scope.nc, scope.prefix, projectId, body.approvalId);
          continue;
        }
        const status = await runCli(['status', projectId, '--json'], scope.env);
        expect(status.code, status.stderr).toBe(0);
        cliStatus = JSON.parse(status.stdout) as typeof cliStatus;
        const approve = await runCli(['approve', projectId, '--json', '--by', 'e2e-cli'], scope.env);
        expect(approve.code, approve.stderr).toBe(0);
        cliApproved = JSON.parse(approve.stdout) as typeof cliApproved;
        cliApprovalId = body.approvalId;
      }
      return projectState(projectId, 'completed');
    }, `project ${projectId} completed\n${service.describe()}\n${agents.describe()}`, 120_000);

    // `orchestrator status --json` at the SHOT_PLANNED checkpoint, and what `approve` replied.
    expect(cliStatus?.pendingApprovals.map((a) => a.checkpoint)).toEqual(['SHOT_PLANNED']);
    expect(cliStatus?.pendingApprovals[0]?.approvalId).toBe(cliApprovalId);
    expect(cliStatus?.tasks.WAITING_APPROVAL).toBe(8); // 3 keyframes, 3 QAs, consistency, preview
    expect(cliStatus?.tasks.COMPLETED).toBe(2);
    expect(cliApproved?.pendingApprovals.some((a) => a.approvalId === cliApprovalId)).toBe(false);

    // Status stream: every task of the pipeline, each reaching COMPLETED once, in a legal order.
    const byTask = new Map<string, TaskStatusMessage[]>();
    for (const { body } of statusOf(projectId)) byTask.set(body.taskId, [...(byTask.get(body.taskId) ?? []), body]);
    const finalType = [...byTask.values()].map((steps) => ({ task_type: steps[0]!.taskType, to: steps.at(-1)!.to }));
    expect(countByType(finalType)).toEqual(PIPELINE_TASKS);
    for (const [taskId, steps] of byTask) {
      expect(transitionProblems(steps), `${taskId} ${steps.map((s) => s.to).join(' > ')}`).toEqual([]);
      expect(steps.filter((s) => s.to === 'COMPLETED')).toHaveLength(1);
      expect(steps.at(-1)!.to).toBe('COMPLETED');
    }

    // PostgreSQL agrees: every task COMPLETED, the audit log chained and legal.
    const tasks = await tasksOf(scope.sql, projectId);
    expect(tasks.map((t) => t.task_id).sort()).toEqual([...byTask.keys()].sort());
    expect(tasks.every((t) => t.status === 'COMPLETED' && t.actual_cost !== null)).toBe(true);
    const audit = await transitionsOf(scope.sql, projectId);
    for (const t of tasks) {
      const rows = audit.filter((r) => r.task_id === t.task_id).map((r) => ({ from: r.from_status, to: r.to_status }));
      expect(transitionProblems(rows), t.task_id).toEqual([]);
      expect(rows.map((r) => r.to)).toEqual(byTask.get(t.task_id)!.map((s) => s.to));
    }

    // Budget: the last budget message's spent is the sum of the actual costs; nothing left reserved.
    // (Settles are published coalesced, shortly after: wait for the one after the last settle.)
    const sum = tasks.reduce((acc, t) => acc + (t.actual_cost ?? 0), 0);
    const lastBudget = () => watch.on<BudgetStatus>(`${scope.prefix}.budget.${projectId}`).at(-1)?.body;
    await until(() => Math.abs((lastBudget()?.spent ?? -1) - sum) < 1e-6, `a budget message with spent = ${sum}`, 20_000);
    const last = lastBudget()!;
    expect(last.spent).toBeCloseTo(sum, 4);
    expect(last.reserved).toBeCloseTo(0, 4);
    const row = await projectRow(scope.sql, projectId);
    expect(row?.state).toBe('completed');
    expect(row?.spent).toBeCloseTo(sum, 4);

    // The four checkpoints, each requested and approved once.
    const approvals = await approvalsOf(scope.sql, projectId);
    expect(approvals.map((a) => a.checkpoint)).toEqual([...CHECKPOINTS]);
    expect(approvals.every((a) => a.status === 'approved')).toBe(true);
    expect(new Set(requestsOf(projectId).map((r) => r.body.approvalId)).size).toBe(4);
    // Nothing of this project was dead-lettered (heartbeats, results, decisions all accepted).
    expect(watch.on<DeadLetterMessage>(`${scope.prefix}.dlq`)).toEqual([]);

    // `orchestrator status` after the end.
    const after = await runCli(['status', projectId, '--json'], scope.env);
    expect(after.code, after.stderr).toBe(0);
    const final = JSON.parse(after.stdout) as { project: { state: string }; tasks: Record<string, number>; pendingApprovals: unknown[] };
    expect(final.project.state).toBe('completed');
    expect(final.tasks.COMPLETED).toBe(15);
    expect(final.pendingApprovals).toEqual([]);

    // Graceful stops: SIGTERM, exit 0.
    expect(await service.stop('SIGTERM'), service.describe()).toEqual({ code: 0, signal: null });
    expect(await agents.stop('SIGTERM'), agents.describe()).toEqual({ code: 0, signal: null });
    expect(agents.stdout).toContain('agents stopped');
  }, 240_000);
});
