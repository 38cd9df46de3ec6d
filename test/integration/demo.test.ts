import { describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('../..', import.meta.url));

describe('orchestrator demo', () => {
  it('runs a whole project on the embedded adapters, with a revision loop, and prints the summary', () => {
    // No server addresses that could be reached: the demo must not need any.
    const r = spawnSync(process.execPath, ['--import', 'tsx', 'src/cli/entry.ts', 'demo', '--reject-first'], {
      cwd: root,
      env: { ...process.env, DATABASE_URL: 'postgres://nobody@127.0.0.1:1/none', REDIS_URL: 'redis://127.0.0.1:1', NATS_URL: 'nats://127.0.0.1:1' },
      encoding: 'utf8',
      timeout: 120_000,
    });
    expect(r.stderr).not.toMatch(/error/i);
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/project demo_\w+ completed/);
    expect(r.stdout).toContain('✗ rejected SCENE_WRITTEN');
    expect(r.stdout).toMatch(/\| REVISE_SCRIPT\s+\|\s+1 \|\s+1 \|/);
    expect(r.stdout).toMatch(/\| GENERATE_KEYFRAME\s+\|\s+3 \|\s+3 \|/);
    expect(r.stdout).toMatch(/spent \$\d+\.\d\d of \$25\.00/);
  });
});
