import { afterAll, describe, expect, it } from 'vitest';
import { CLI, ManagedProcess } from '../helpers/service-process.js';
import { until } from '../helpers/nats-watch.js';

/**
 * `orchestrator demo --ui`: the demo project on the embedded defaults, with the review
 * console on HTTP_ADDR and a person as the reviewer. It waits at each checkpoint for a
 * decision made through the console's API (as its page makes them), keeps serving after
 * the project completes, and stops with exit 0 on Ctrl-C.
 */

let demo: ManagedProcess | undefined;

afterAll(async () => {
  await demo?.stop('SIGKILL');
});

interface Review {
  approvalId: string;
  projectId: string;
  checkpoint: string;
  content: { kind: string };
}

describe('orchestrator demo --ui', () => {
  it('waits for the reviewer at each checkpoint, decided in the console, and runs until Ctrl-C', async () => {
    demo = ManagedProcess.start('demo --ui', CLI, ['demo', '--ui', '--shots', '2'], { HTTP_ADDR: '127.0.0.1:0', LOG_LEVEL: 'warn' });
    await demo.waitForOutput('review console: ', 90_000);
    const url = /review console: (http:\/\/\S+?)\/? /.exec(demo.stdout)![1]!;
    const shell = await fetch(`${url}/`);
    expect(shell.status).toBe(200);
    const csrf = /<meta name="csrf-token" content="([^"]+)"/.exec(await shell.text())![1]!;
    const inbox = async (): Promise<Review[]> => (await (await fetch(`${url}/api/inbox`)).json()) as Review[];

    const seen: string[] = [];
    for (const checkpoint of ['SCENE_WRITTEN', 'SHOT_PLANNED', 'PREVIEW_VIDEO_READY', 'FINAL_VIDEO_READY']) {
      let review: Review | undefined;
      await until(async () => {
        review = (await inbox()).find((r) => r.checkpoint === checkpoint);
        return review !== undefined;
      }, `the ${checkpoint} review`, 60_000);
      // Nothing goes on without the reviewer: the demo says it waits.
      expect(demo.stdout).toContain(`${checkpoint}: waiting for you in the review console`);
      seen.push(review!.content.kind);
      const res = await fetch(`${url}/api/projects/${review!.projectId}/decisions`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'x-csrf-token': csrf },
        body: JSON.stringify({ approvalId: review!.approvalId, decision: 'approved', by: 'demo user' }),
      });
      expect(res.status, await res.clone().text()).toBe(200);
    }
    // What each checkpoint shows: the script, the shot table, the preview and the final.
    expect(seen).toEqual(['script', 'shots', 'video', 'video']);
    await demo.waitForOutput(' completed', 60_000);
    // Still serving the finished project, until Ctrl-C.
    const projects = (await (await fetch(`${url}/api/projects`)).json()) as { state: string; pendingReviews: unknown[] }[];
    expect(projects).toHaveLength(1);
    expect(projects[0]).toMatchObject({ state: 'completed', pendingReviews: [] });
    expect(demo.running).toBe(true);
    const exit = await demo.stop('SIGINT');
    expect(exit, demo.describe()).toEqual({ code: 0, signal: null });
  }, 180_000);
});
