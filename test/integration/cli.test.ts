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

  it('machines --mermaid exports the task machine', () => {
    const r = cli(['machines', '--mermaid']);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('READY --> RUNNING: DISPATCH');
  });
});
