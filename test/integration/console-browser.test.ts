import { jetstream } from '@nats-io/jetstream';
import type { Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createAgentWorker, type AgentWorker } from '../../src/agent/worker.js';
import { SimulatedAgents } from '../../src/demo/simulated-agents.js';
import { TaskTypeCatalog } from '../../src/domain/task-types.js';
import { silentLogger } from '../../src/logger.js';
import { openBrowser, type TestBrowser } from '../helpers/browser.js';
import { approvalsOf, newProjectId, projectRow, publishDecision, publishProjectCreated, tasksOf } from '../helpers/e2e-project.js';
import { until } from '../helpers/nats-watch.js';
import { startAgents, startService, stopAll, type ManagedProcess } from '../helpers/service-process.js';
import { createServiceScope, type ServiceScope } from '../helpers/service-scope.js';

/**
 * The review console in a real browser (Debian's Chromium, headless) against `orchestrator
 * start` on real PostgreSQL, Redis and NATS, with the example agents (and a script writer
 * and storyboard artist of the test's, whose outputs carry HTML and script injections).
 * A director walks the four checkpoints: reads the script and rejects it, sees the revision
 * arrive live, approves it; reads the shot table; approves and sees the keyframes; rejects
 * the preview for shots 1 and 3 (indexes 0 and 2) and sees only those redone; approves the
 * final. Screenshots go to test-output/screenshots/.
 */

const SHOTS = 3;
const INJECTED_TITLE = '<script>window.__pwned = "title"</script>The Keeper';
const INJECTED_SCRIPT_LINE = '<img src=x onerror="window.__pwned = \'script\'">';
const INJECTED_SHOT = '<script>window.__pwned = "shot"</script>A gull circles the lamp';

let scope: ServiceScope;
let browser: TestBrowser;
const processes: (ManagedProcess | undefined)[] = [];
const workers: AgentWorker[] = [];
let url = '';

beforeAll(async () => {
  scope = await createServiceScope({ AGENT_DURATION_MS: '40', APPROVAL_TIMEOUT: '60' });
  const service = await startService(scope.env);
  processes.push(service);
  const m = / serving HTTP on (http:\/\/\S+) /.exec(service.stdout);
  if (!m) throw new Error(`no HTTP address printed\n${service.describe()}`);
  url = m[1]!;
  // The example agents, but for the two whose outputs the test injects into.
  const catalog = new TaskTypeCatalog();
  const simulated = new SimulatedAgents(catalog, { shots: SHOTS, artwork: true });
  const others = simulated.agents().filter((a) => a !== 'script_writer' && a !== 'storyboard_artist');
  processes.push(await startAgents({ ...scope.env, AGENTS: others.join(',') }));
  for (const agent of ['script_writer', 'storyboard_artist']) {
    workers.push(
      await createAgentWorker({
        connection: scope.nc,
        agent,
        subjectPrefix: scope.prefix,
        concurrency: 2,
        logger: silentLogger(),
        handle: async (task) => {
          const { output, actualCost } = simulated.run(task);
          if (typeof output.script === 'string') output.script = `${output.script}\n${INJECTED_SCRIPT_LINE}`;
          if (Array.isArray(output.shots)) (output.shots[1] as Record<string, unknown>).description = INJECTED_SHOT;
          return { output, actualCost };
        },
      }),
    );
  }
  browser = await openBrowser();
}, 180_000);

afterAll(async () => {
  await browser?.close();
  await Promise.all(workers.map((w) => w.stop()));
  await stopAll(processes);
  await scope?.cleanup();
}, 60_000);

/** Waits for the page root to have rendered (a fresh fetch after `version`, when given). */
async function loaded(page: Page, root: string): Promise<void> {
  await page.waitForSelector(`[data-page="${root}"][data-loaded="true"]`, { timeout: 30_000 });
}

async function pendingApproval(projectId: string, checkpoint: string, not: readonly string[] = []): Promise<string> {
  let id = '';
  await until(async () => {
    const row = (await approvalsOf(scope.sql, projectId)).find((a) => a.checkpoint === checkpoint && a.status === 'pending' && !not.includes(a.approval_id));
    id = row?.approval_id ?? '';
    return id !== '';
  }, `a pending ${checkpoint} request`, 90_000);
  return id;
}

/** Decides in the review's card, as a person would; resolves once the decision is in the database (the card shows it, then leaves the inbox). */
async function decide(page: Page, projectId: string, approvalId: string, decision: 'approve' | 'reject', comment?: string): Promise<void> {
  const card = page.locator(`[data-review="${approvalId}"]`);
  await card.locator('input[name="reviewer"]').fill('Director Ada');
  if (comment !== undefined) await card.locator('textarea[name="comment"]').fill(comment);
  await card.locator(`button[data-action="${decision}"]`).click();
  const status = decision === 'approve' ? 'approved' : 'rejected';
  await until(async () => (await approvalsOf(scope.sql, projectId)).some((a) => a.approval_id === approvalId && a.status === status), `${approvalId} ${status}`, 30_000);
  // Decided, it leaves the open inbox with the next refresh (no reload).
  await card.waitFor({ state: 'detached', timeout: 30_000 });
}

describe('the review console, walked by a director', () => {
  it('judges the four checkpoints in the browser, live, with injections shown as text', async () => {
    const projectId = newProjectId();
    const page = await browser.page();
    await page.goto(`${url}/inbox`);
    await loaded(page, 'inbox');
    await page.waitForSelector('[data-live="connected"]', { timeout: 30_000 });
    const event = {
      id: `${projectId}:created`,
      type: 'PROJECT_CREATED',
      projectId,
      payload: { title: INJECTED_TITLE, brief: 'a lighthouse keeper finds a message in a bottle', budget: 25, shotCount: SHOTS },
      occurredAt: new Date().toISOString(),
    };
    await jetstream(scope.nc).publish(`${scope.prefix}.events.${projectId}.PROJECT_CREATED`, JSON.stringify(event), { msgID: event.id });

    // 1. The script arrives in the open inbox (no reload), as readable text.
    const script1 = await pendingApproval(projectId, 'SCENE_WRITTEN');
    const card1 = page.locator(`[data-review="${script1}"]`);
    await card1.waitFor({ timeout: 30_000 });
    expect(await card1.getAttribute('data-checkpoint')).toBe('SCENE_WRITTEN');
    const scriptText = await card1.locator('.script-text').innerText();
    expect(scriptText).toContain('lighthouse');
    expect(scriptText).toContain(INJECTED_SCRIPT_LINE);
    expect(await card1.innerText()).toContain(INJECTED_TITLE);
    await browser.screenshot(page, 'console-1-script');

    // 2. Rejected with a comment: the revision arrives live, in the same page.
    await decide(page, projectId, script1, 'reject', 'Darker ending, fewer characters');
    const script2 = await pendingApproval(projectId, 'SCENE_WRITTEN', [script1]);
    const card2 = page.locator(`[data-review="${script2}"]`);
    await card2.waitFor({ timeout: 30_000 });
    expect(await card2.locator('.script-text').innerText()).toContain('Darker ending, fewer characters');
    const decided = (await approvalsOf(scope.sql, projectId)).find((a) => a.approval_id === script1);
    expect(decided).toMatchObject({ status: 'rejected' });
    await browser.screenshot(page, 'console-2-revision');

    // 3. Approved. 4. The shot plan as a table, the injected description as text.
    await decide(page, projectId, script2, 'approve');
    const plan = await pendingApproval(projectId, 'SHOT_PLANNED');
    const planCard = page.locator(`[data-review="${plan}"]`);
    await planCard.waitFor({ timeout: 30_000 });
    const rows = planCard.locator('table.shot-plan tbody tr[data-shot]');
    await expect.poll(() => rows.count(), { timeout: 10_000 }).toBe(SHOTS);
    expect(await planCard.locator('table.shot-plan tr[data-shot="1"]').innerText()).toContain(INJECTED_SHOT);
    await browser.screenshot(page, 'console-3-shot-plan');

    // 5. Approved: the keyframes are drawn, and the preview comes with its grid.
    await decide(page, projectId, plan, 'approve');
    const preview1 = await pendingApproval(projectId, 'PREVIEW_VIDEO_READY');
    const previewCard = page.locator(`[data-review="${preview1}"]`);
    await previewCard.waitFor({ timeout: 30_000 });
    const keyframes = previewCard.locator('.keyframe-grid [data-keyframe]');
    await expect.poll(() => keyframes.count(), { timeout: 10_000 }).toBe(SHOTS);
    // Every keyframe image is loaded and drawn (an SVG from the shot's description).
    await expect
      .poll(() => previewCard.locator('.keyframe-grid img').evaluateAll((imgs) => imgs.filter((i) => { const img = i as unknown as { complete: boolean; naturalWidth: number }; return img.complete && img.naturalWidth > 0; }).length), { timeout: 10_000 })
      .toBe(SHOTS);
    expect(await previewCard.locator('.player img, .player video').count()).toBe(1);
    await browser.screenshot(page, 'console-4-preview');

    // 6. The preview rejected for shots 0 and 2, picked by clicking them: only those are redone.
    await previewCard.locator('[data-keyframe="0"]').click();
    await previewCard.locator('[data-keyframe="2"]').click();
    expect(await previewCard.locator('[data-keyframe="0"]').getAttribute('aria-pressed')).toBe('true');
    expect(await previewCard.locator('[data-keyframe="1"]').getAttribute('aria-pressed')).toBe('false');
    await decide(page, projectId, preview1, 'reject', 'Warmer light in shots 1 and 3');
    const preview2 = await pendingApproval(projectId, 'PREVIEW_VIDEO_READY', [preview1]);
    const edits = await scope.sql.query<{ shot: number }>(`SELECT (input->>'shotIndex')::int AS shot FROM tasks WHERE project_id = $1 AND task_type = 'EDIT_IMAGE' ORDER BY shot`, [projectId]);
    expect(edits.rows.map((r) => r.shot)).toEqual([0, 2]);
    // The project page shows the same: two revisions, for shots 0 and 2.
    const projectPage = await browser.page();
    await projectPage.goto(`${url}/projects/${projectId}`);
    await loaded(projectPage, 'project');
    const editNodes = projectPage.locator('svg.task-graph g.node[data-type="EDIT_IMAGE"]');
    await expect.poll(() => editNodes.count(), { timeout: 10_000 }).toBe(2);
    expect((await editNodes.evaluateAll((nodes) => nodes.map((n) => n.getAttribute('data-shot')))).sort()).toEqual(['0', '2']);
    expect(await editNodes.evaluateAll((nodes) => nodes.map((n) => n.getAttribute('data-origin')))).toEqual(['revision', 'revision']);
    await browser.screenshot(projectPage, 'console-5-project-after-preview-rejection');

    // 7. The new preview approved, then the final.
    const preview2Card = page.locator(`[data-review="${preview2}"]`);
    await preview2Card.waitFor({ timeout: 30_000 });
    await decide(page, projectId, preview2, 'approve');
    const final = await pendingApproval(projectId, 'FINAL_VIDEO_READY');
    const finalCard = page.locator(`[data-review="${final}"]`);
    await finalCard.waitFor({ timeout: 30_000 });
    expect(await finalCard.locator('.player img, .player video').count()).toBe(1);
    await browser.screenshot(page, 'console-6-final');
    await decide(page, projectId, final, 'approve');
    await until(async () => (await projectRow(scope.sql, projectId))?.state === 'completed', 'the project completed', 90_000);

    // Every decision is the director's, with the comments given.
    const approvals = await approvalsOf(scope.sql, projectId);
    expect(approvals.map((a) => a.status).sort()).toEqual(['approved', 'approved', 'approved', 'approved', 'rejected', 'rejected']);

    // The project page, live: completed, its budget bar the database's figures.
    await projectPage.waitForSelector('[data-page="project"] [data-state="completed"]', { timeout: 30_000 });
    const row = (await projectRow(scope.sql, projectId))!;
    const bar = projectPage.locator('[data-page="project"] .budget-bar').first();
    await expect.poll(async () => Number(await bar.getAttribute('data-spent')), { timeout: 10_000 }).toBeCloseTo(Number(row.spent), 4);
    expect(Number(await bar.getAttribute('data-reserved'))).toBeCloseTo(Number(row.reserved), 4);
    expect(Number(await bar.getAttribute('data-limit'))).toBe(25);
    const history = projectPage.locator('tr[data-checkpoint-row]');
    expect(await history.count()).toBe(6);
    expect(await history.first().innerText()).toContain('Director Ada');
    await browser.screenshot(projectPage, 'console-7-project-completed');

    // The projects page and a task page render as well.
    const list = await browser.page();
    await list.goto(`${url}/`);
    await list.waitForSelector(`[data-project="${projectId}"][data-state="completed"]`, { timeout: 30_000 });
    expect(await list.locator(`[data-project="${projectId}"]`).innerText()).toContain(INJECTED_TITLE);
    await browser.screenshot(list, 'console-8-projects');
    const keyframeTask = (await tasksOf(scope.sql, projectId)).find((t) => t.task_type === 'GENERATE_KEYFRAME')!;
    await list.goto(`${url}/tasks/${keyframeTask.task_id}`);
    await loaded(list, 'task');
    expect(await list.locator('tr[data-transition]').count()).toBeGreaterThanOrEqual(4);
    await browser.screenshot(list, 'console-9-task');

    // Nothing injected ran, and no page logged an error.
    for (const p of [page, projectPage, list]) expect(await p.evaluate(() => (globalThis as { __pwned?: unknown }).__pwned)).toBeUndefined();
    expect(browser.errors()).toEqual([]);
  }, 600_000);

  it('shows a decision that lost a race, and an action on a project that changed meanwhile, as such', async () => {
    const projectId = newProjectId();
    await publishProjectCreated(scope.nc, scope.prefix, projectId);
    const approvalId = await pendingApproval(projectId, 'SCENE_WRITTEN');
    // Pages that hear nothing (their event stream cut): what they show goes stale.
    const page = await browser.page();
    await page.route('**/api/events', (route) => route.abort());
    await page.goto(`${url}/inbox`);
    await loaded(page, 'inbox');
    const card = page.locator(`[data-review="${approvalId}"]`);
    await card.waitFor({ timeout: 30_000 });
    const projectPage = await browser.page();
    await projectPage.route('**/api/events', (route) => route.abort());
    await projectPage.goto(`${url}/projects/${projectId}`);
    await loaded(projectPage, 'project');
    // Someone else decides first, on the decision subject; the project is then cancelled on the control subject.
    await publishDecision(scope.nc, scope.prefix, projectId, approvalId, 'approved');
    await until(async () => (await approvalsOf(scope.sql, projectId)).some((a) => a.approval_id === approvalId && a.status === 'approved'), 'the other decision', 30_000);
    await card.locator('input[name="reviewer"]').fill('Director Ada');
    await card.locator('button[data-action="reject"]').click();
    const error = card.locator('[data-error]');
    await error.waitFor({ timeout: 30_000 });
    expect(await error.getAttribute('data-code')).toBe('ERR_APPROVAL');
    expect(await error.innerText()).toMatch(/decided|approved/i);
    expect((await approvalsOf(scope.sql, projectId)).find((a) => a.approval_id === approvalId)?.status).toBe('approved');
    await browser.screenshot(page, 'console-lost-race');

    const reply = await scope.nc.request(`${scope.prefix}.control.${projectId}`, JSON.stringify({ action: 'cancel', reason: 'changed meanwhile' }), { timeout: 10_000 });
    expect(reply.json<{ ok: boolean }>().ok).toBe(true);
    await projectPage.locator('button[data-action="pause"]').click();
    const refused = projectPage.locator('[data-page="project"] [data-error]');
    await refused.waitFor({ timeout: 30_000 });
    expect(await refused.getAttribute('data-code')).toBe('ERR_ILLEGAL_TRANSITION');
    expect((await projectRow(scope.sql, projectId))?.state).toBe('cancelled');
    await browser.screenshot(projectPage, 'console-changed-meanwhile');
  }, 300_000);
});
