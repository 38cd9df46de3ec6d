import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createServiceScope, type ServiceScope } from '../helpers/service-scope.js';
import { runCli, startService, stopAll, type ManagedProcess } from '../helpers/service-process.js';
import { newProjectId, publishProjectCreated } from '../helpers/e2e-project.js';
import { waitFor } from '../helpers/wait.js';

/**
 * The command line against a running `orchestrator start` (no agents: the project's first
 * task waits RUNNING), and `start` / `demo --services` when a server cannot be reached.
 */
let scope: ServiceScope;
let service: ManagedProcess | undefined;

beforeAll(async () => {
  scope = await createServiceScope();
});
afterAll(async () => {
  await stopAll([service]);
  await scope.cleanup();
});

describe('orchestrator commands over NATS', () => {
  it('status, pause, resume, retry, budget and cancel a running project', async () => {
    service = await startService(scope.env);
    const projectId = newProjectId();
    await publishProjectCreated(scope.nc, scope.prefix, projectId, 25);
    const status = async () => JSON.parse((await runCli(['status', projectId, '--json'], scope.env)).stdout) as { project: { state: string; pausedReason: string | null }; budget: { limit: number } };
    await waitFor(async () => (await runCli(['status', projectId, '--json'], scope.env)).code === 0, { timeoutMs: 60_000 });

    const paused = await runCli(['pause', projectId, '--reason', 'client review'], scope.env);
    expect(paused.code).toBe(0);
    expect(paused.stdout).toContain('paused (client review)');
    expect((await status()).project).toMatchObject({ state: 'paused', pausedReason: 'client review' });

    expect((await runCli(['resume', projectId], scope.env)).code).toBe(0);
    expect((await status()).project.state).toBe('active');

    // Nothing failed: a retry is refused with the reason, exit 1, and nothing changes.
    const retry = await runCli(['retry', projectId], scope.env);
    expect(retry.code).toBe(1);
    expect(retry.stderr).toContain(`project ${projectId} is active: it has no task that failed for good to retry`);
    expect((await status()).project.state).toBe('active');

    const budget = await runCli(['budget', projectId, '--set', '40', '--json'], scope.env);
    expect(budget.code).toBe(0);
    expect((JSON.parse(budget.stdout) as { budget: { limit: number } }).budget.limit).toBe(40);

    const readable = await runCli(['status', projectId], scope.env);
    expect(readable.stdout).toMatch(/^budget\s+\[/m);
    expect(readable.stdout).toMatch(/of \$40\.00/);

    expect((await runCli(['cancel', projectId, '--reason', 'brief changed'], scope.env)).code).toBe(0);
    expect((await status()).project.state).toBe('cancelled');
    const { rows } = await scope.sql.query<{ status: string }>('SELECT status FROM tasks WHERE project_id = $1', [projectId]);
    expect(rows.every((r) => r.status === 'CANCELLED')).toBe(true);

    // An unknown project is a clear error, exit 1.
    const unknown = await runCli(['pause', 'prj_nope'], scope.env);
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toContain('project prj_nope does not exist');
  });

  it('demo --services runs a whole project on the real PostgreSQL, Redis and NATS', async () => {
    // Its own scope: no other orchestrator consumes its streams.
    const own = await createServiceScope();
    try {
      const r = await runCli(['demo', '--services', '--shots', '2'], own.env, 110_000);
      expect(r.stderr).not.toMatch(/error/i);
      expect(r.code).toBe(0);
      expect(r.stdout).toMatch(/project demo_\w+ completed/);
      expect(r.stdout).toMatch(/\| GENERATE_KEYFRAME\s+\|\s+2 \|\s+2 \|/);
      const { rows } = await own.sql.query<{ state: string }>(`SELECT state FROM projects WHERE project_id LIKE 'demo_%'`);
      expect(rows.map((p) => p.state)).toEqual(['completed']);
    } finally {
      await own.cleanup();
    }
  }, 120_000);

  it('start names the server it cannot reach, where, and how to start it', async () => {
    for (const [variable, value, name] of [
      ['DATABASE_URL', 'postgres://postgres@127.0.0.1:1/test', 'PostgreSQL'],
      ['REDIS_URL', 'redis://127.0.0.1:1', 'Redis'],
      ['NATS_URL', 'nats://127.0.0.1:1', 'NATS'],
    ] as const) {
      const r = await runCli(['start'], { ...scope.env, [variable]: value });
      expect(r.code, name).toBe(1);
      expect(r.stderr).toContain(`cannot reach ${name} at`);
      expect(r.stderr).toContain('127.0.0.1:1');
      expect(r.stderr).toContain('docker compose up -d');
      expect(r.stderr).not.toMatch(/^\s+at /m);
    }
  });
});
