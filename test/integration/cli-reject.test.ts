import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ApprovalRequested, ProjectStatusMessage } from '../../src/domain/messages.js';
import { approvalsOf, newProjectId, publishDecision, publishProjectCreated, tasksOf } from '../helpers/e2e-project.js';
import { NatsWatch, until } from '../helpers/nats-watch.js';
import { runCli, startAgents, startService, stopAll, type ManagedProcess } from '../helpers/service-process.js';
import { createServiceScope, type ServiceScope } from '../helpers/service-scope.js';

/**
 * Issue 16, as a reviewer at the command line (`orchestrator start`, the agents example and
 * the CLI as separate processes): `orchestrator reject --shots 9` on a 3-shot preview is
 * refused with the reason before anything is sent; `orchestrator reject` without `--shots`
 * redoes every shot and the preview, and the project completes.
 */
let scope: ServiceScope;
let watch: NatsWatch;
const processes: (ManagedProcess | undefined)[] = [];

beforeAll(async () => {
  scope = await createServiceScope();
  watch = await NatsWatch.start(scope.nc, [`${scope.prefix}.projects.>`, `${scope.prefix}.approvals.requested.>`]);
}, 60_000);

afterAll(async () => {
  await stopAll(processes);
  watch?.close();
  await scope?.cleanup();
}, 60_000);

describe('orchestrator reject at the preview', () => {
  it('refuses shots the preview does not have, and without --shots redoes every shot; the project completes', async () => {
    const service = await startService(scope.env);
    processes.push(service);
    const agents = await startAgents(scope.env);
    processes.push(agents);
    const projectId = newProjectId();
    await publishProjectCreated(scope.nc, scope.prefix, projectId);

    const decided = new Set<string>();
    let refusal: { code: number | null; stderr: string } | undefined;
    let rejected: { code: number | null; stdout: string; stderr: string } | undefined;
    await until(async () => {
      for (const { body } of watch.on<ApprovalRequested>(`${scope.prefix}.approvals.requested.${projectId}`)) {
        if (decided.has(body.approvalId) || body.reminder) continue;
        decided.add(body.approvalId);
        if (body.checkpoint !== 'PREVIEW_VIDEO_READY' || rejected) {
          await publishDecision(scope.nc, scope.prefix, projectId, body.approvalId);
          continue;
        }
        refusal = await runCli(['reject', projectId, '--shots', '1,9', '--comment', 'shot 9'], scope.env);
        rejected = await runCli(['reject', projectId, '--comment', 'warmer light'], scope.env);
      }
      return watch.on<ProjectStatusMessage>(`${scope.prefix}.projects.${projectId}`, (b) => b.state === 'completed').length > 0;
    }, `project ${projectId} completed\n${service.describe()}\n${agents.describe()}`, 120_000);

    expect(refusal?.code).not.toBe(0);
    expect(refusal?.stderr).toMatch(/--shots: 9 not among the 3 shots of PREVIEW_VIDEO_READY \(0 to 2; without --shots, every shot is redone\)/);
    expect(rejected?.code, rejected?.stderr).toBe(0);
    expect(rejected?.stdout).toMatch(/^rejected PREVIEW_VIDEO_READY/);
    expect((await approvalsOf(scope.sql, projectId)).filter((a) => a.checkpoint === 'PREVIEW_VIDEO_READY').map((a) => a.status)).toEqual(['rejected', 'approved']);
    const tasks = await tasksOf(scope.sql, projectId);
    expect(tasks.filter((t) => t.task_type === 'EDIT_IMAGE').map((t) => t.status)).toEqual(['COMPLETED', 'COMPLETED', 'COMPLETED']);
  }, 180_000);
});
