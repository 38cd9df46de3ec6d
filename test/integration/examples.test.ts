import { describe, expect, it } from 'vitest';
import { ManagedProcess } from '../helpers/service-process.js';

/**
 * The examples run as a user would run them, each in its own process. `examples/agents.ts`
 * against a running `orchestrator start` is exercised by service-e2e.test.ts.
 */
describe('examples', () => {
  it('embedded-service.ts runs one project to completion on the embedded adapters and exits 0', async () => {
    const run = ManagedProcess.start('embedded-service', 'examples/embedded-service.ts', [], { LOG_LEVEL: 'warn' });
    const timer = setTimeout(() => void run.stop('SIGKILL'), 110_000);
    const exit = await run.exited;
    clearTimeout(timer);
    expect(exit, run.describe()).toEqual({ code: 0, signal: null });
    const lines = run.stdout.trim().split('\n');
    // A line per status change: 15 tasks, each ending RUNNING -> COMPLETED.
    expect(lines.filter((l) => l.endsWith('RUNNING -> COMPLETED'))).toHaveLength(15);
    expect(lines.filter((l) => /^GENERATE_KEYFRAME +RUNNING -> COMPLETED$/.test(l))).toHaveLength(3);
    expect(lines.filter((l) => l.startsWith('approval '))).toEqual([
      'approval SCENE_WRITTEN: approved',
      'approval SHOT_PLANNED: approved',
      'approval PREVIEW_VIDEO_READY: approved',
      'approval FINAL_VIDEO_READY: approved',
    ]);
    expect(lines.at(-1)).toMatch(/^project prj_\w+ completed: spent \$\d+\.\d\d of \$25\.00$/);
    expect(run.stderr).not.toContain('dead letter');
  }, 120_000);
});
