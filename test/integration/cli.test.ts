import { describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('../..', import.meta.url));

/** Runs the real command line in its own process (through tsx, so no build is needed). */
function cli(args: string[], env: Record<string, string> = {}) {
  const result = spawnSync(process.execPath, ['--import', 'tsx', 'src/cli/entry.ts', ...args], {
    cwd: root,
    env: { ...process.env, ...env },
    encoding: 'utf8',
    timeout: 60_000,
  });
  return { code: result.status, stdout: result.stdout, stderr: result.stderr };
}

describe('orchestrator command line', () => {
  it('--help lists its commands', () => {
    const r = cli(['--help']);
    expect(r.code).toBe(0);
    for (const command of ['start', 'demo', 'status', 'approve', 'reject', 'pause', 'resume', 'cancel', 'budget', 'migrate', 'machines', 'config']) {
      expect(r.stdout).toMatch(new RegExp(`^  ${command}\\b`, 'm'));
    }
  });

  it('an unknown command fails with the usage', () => {
    const r = cli(['frobnicate']);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain("unknown command 'frobnicate'");
  });

  it('a bad MAX_CONCURRENT_TASKS fails with the named message, not a stack trace', () => {
    const r = cli(['config'], { MAX_CONCURRENT_TASKS: 'abc' });
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('MAX_CONCURRENT_TASKS=abc: expected a positive integer');
    expect(r.stderr).not.toMatch(/^\s+at /m);
  });

  it('a bad NATS_URL fails with the named message and no secret', () => {
    const r = cli(['migrate'], { NATS_URL: 'http://user:pw123@host:80' });
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('NATS_URL=http://user:***@host:80: expected nats://host:port');
    expect(r.stderr).not.toContain('pw123');
    expect(r.stderr).not.toMatch(/^\s+at /m);
  });

  it('a task-type override of an unknown type fails config and start, before any connection', () => {
    for (const command of ['config', 'start']) {
      // Unreachable servers: the override is refused before start tries them.
      const r = cli([command], { TASK_TIMEOUTS: 'GENERATE_KEYFRAMES=120', DATABASE_URL: 'postgres://postgres@127.0.0.1:1/x', REDIS_URL: 'redis://127.0.0.1:1', NATS_URL: 'nats://127.0.0.1:1' });
      expect(r.code, command).toBe(2);
      expect(r.stderr).toContain('TASK_TIMEOUTS=GENERATE_KEYFRAMES=120: unknown task type GENERATE_KEYFRAMES');
      expect(r.stderr).not.toContain('cannot reach');
      expect(r.stderr).not.toMatch(/^\s+at /m);
    }
    const ok = cli(['config', '--json'], { TASK_TIMEOUTS: 'GENERATE_KEYFRAME=120' });
    expect(ok.code).toBe(0);
    expect((JSON.parse(ok.stdout) as { taskTypes: unknown }).taskTypes).toEqual({ timeoutsMs: { GENERATE_KEYFRAME: 120_000 } });
  });

  it('machines --mermaid exports the task machine', () => {
    const r = cli(['machines', '--mermaid']);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('READY --> RUNNING: DISPATCH');
  });
});
