// Regenerates the README's screenshots of the review console (docs/console-*.png), in one
// process and with no server to start: the demo on the embedded environment (PGlite, the
// in-memory queue, the in-process bus), the console over its orchestrator, the HTTP server on a
// free loopback port, and Debian's Chromium (headless, driven by playwright-core) walking the
// checkpoints as a director would. `npm run screenshots` (or `npx tsx scripts/console-screenshots.ts`).
import { mkdir, stat } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import type { Page } from 'playwright-core';
import { loadConfig } from '../src/config/config.js';
import { ReviewConsole } from '../src/console/review-console.js';
import { runDemo, type DemoResult } from '../src/demo/demo.js';
import { embeddedEnvironment } from '../src/demo/embedded-environment.js';
import { consoleRoutes } from '../src/http/console.js';
import { startHttpServer, type HttpServer } from '../src/http/server.js';
import { silentLogger } from '../src/logger.js';
import type { Review } from '../src/ports/console.js';
import { findChromium, openBrowser, type TestBrowser } from '../test/helpers/browser.js';

const DOCS = fileURLToPath(new URL('../docs/', import.meta.url));
const REVIEWER = 'Ada (director)';
const SHOTS = 4;
const VIEWPORT = { width: 1280, height: 860 };
/** A page taller than this is cut to its top part. */
const MAX_HEIGHT = 2_400;
/** What a screenshot should stay under. */
const MAX_BYTES = 400 * 1024;
const STEP_TIMEOUT_MS = 60_000;

const log = (line: string): void => void process.stdout.write(`${line}\n`);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function until<T>(what: string, probe: () => Promise<T | null | undefined | false>, timeoutMs = STEP_TIMEOUT_MS): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs / 1000} s waiting for ${what}`);
    await sleep(100);
  }
}

async function main(): Promise<void> {
  // Before anything starts: without Chromium there is nothing to do.
  try {
    findChromium();
  } catch (err) {
    const message = (err as Error).message;
    throw new Error(message.includes('apt-get') ? message : `${message} (Debian: apt-get install -y chromium)`);
  }
  await mkdir(DOCS, { recursive: true });

  const logger = silentLogger();
  const config = loadConfig(process.env, {
    scheduler: { intervalSeconds: 0.05, retryBackoffSeconds: 0.2, maxConcurrentTasks: 6 },
    instanceId: 'demo',
  });
  const env = await embeddedEnvironment();
  let reviewConsole = null as ReviewConsole | null;
  let http = null as HttpServer | null;
  let browser = null as TestBrowser | null;
  let stop: () => void = () => undefined;
  const keepRunning = new Promise<void>((resolve) => (stop = resolve));
  let demo: Promise<DemoResult> | null = null;
  try {
    http = await startHttpServer({
      host: '127.0.0.1',
      port: 0,
      logger,
      routes: [consoleRoutes({ backend: () => reviewConsole, artifactsDir: null, access: {}, logger, host: '127.0.0.1' })],
    });
    const url = http.url;
    let ready: (c: ReviewConsole) => void = () => undefined;
    const consoleReady = new Promise<ReviewConsole>((resolve) => (ready = resolve));
    demo = runDemo({
      environment: env,
      config,
      logger,
      write: () => {},
      tty: false,
      shots: SHOTS,
      reviewer: 'human',
      keepRunning,
      started: async (orchestrator) => {
        reviewConsole = await ReviewConsole.start({ orchestrator, feed: { subscribe: (listener) => env.observe(listener) }, artifactsDir: null });
        ready(reviewConsole);
      },
    });
    // A demo that fails before the console starts must not leave us waiting.
    const backend = await Promise.race([consoleReady, demo.then((r) => Promise.reject(new Error(`the demo ended (${r.state}) before the console started`)))]);
    log(`console on ${url}/ (demo, ${SHOTS} shots)`);

    browser = await openBrowser({ timeoutMs: 30_000 });
    const inbox = await browser.page();
    await inbox.setViewportSize(VIEWPORT);

    /** The pending review of this checkpoint, other than those named. */
    const pending = (checkpoint: string, not: readonly string[] = []): Promise<Review> =>
      until(`a pending ${checkpoint} review`, async () => (await backend.inbox()).find((r) => r.checkpoint === checkpoint && !not.includes(r.approvalId)));

    /** Decides in the review's card, as a person would; resolves once the card has left the inbox. */
    const decide = async (review: Review, decision: 'approve' | 'reject', comment?: string): Promise<void> => {
      const card = inbox.locator(`[data-review="${review.approvalId}"]`);
      await card.locator('input[name="reviewer"]').fill(REVIEWER);
      if (comment !== undefined) await card.locator('textarea[name="comment"]').fill(comment);
      await card.locator(`button[data-action="${decision}"]`).click();
      const status = decision === 'approve' ? 'approved' : 'rejected';
      await until(`${review.checkpoint} ${status}`, async () => (await backend.review(review.approvalId)).status === status);
      await card.waitFor({ state: 'detached', timeout: STEP_TIMEOUT_MS });
    };

    /** The review's card shown, its reviewer (and comment) filled in as the director would before deciding. */
    const showCard = async (review: Review, comment?: string) => {
      const card = inbox.locator(`[data-review="${review.approvalId}"]`);
      await card.waitFor({ timeout: STEP_TIMEOUT_MS });
      await card.locator('input[name="reviewer"]').fill(REVIEWER);
      if (comment !== undefined) await card.locator('textarea[name="comment"]').fill(comment);
      return card;
    };

    // 1. The script.
    await inbox.goto(`${url}/inbox`);
    await loaded(inbox, 'inbox');
    await inbox.waitForSelector('[data-live="connected"]', { timeout: STEP_TIMEOUT_MS });
    const script1 = await pending('SCENE_WRITTEN');
    const projectId = script1.projectId;
    const card1 = await showCard(script1, 'Give the ending more hope');
    await card1.locator('.script-text').waitFor();
    await shoot(inbox, 'console-inbox-script.png');

    // 2. Rejected with a comment; the revision approved; the shot plan.
    await decide(script1, 'reject', 'Give the ending more hope');
    const script2 = await pending('SCENE_WRITTEN', [script1.approvalId]);
    await showCard(script2);
    await decide(script2, 'approve');
    const plan = await pending('SHOT_PLANNED');
    const planCard = await showCard(plan);
    await until(`${SHOTS} rows in the shot plan`, async () => (await planCard.locator('table.shot-plan tbody tr[data-shot]').count()) === SHOTS);
    await shoot(inbox, 'console-inbox-shots.png');

    // 3. Approved: the keyframes, then the preview; shots 1 and 3 picked to redo.
    await decide(plan, 'approve');
    const preview1 = await pending('PREVIEW_VIDEO_READY');
    const previewCard = await showCard(preview1, 'Warmer light in shots 1 and 3');
    await until(`the ${SHOTS} keyframes drawn`, () => imagesDrawn(previewCard.locator('.keyframe-grid img'), SHOTS));
    await until('the preview drawn', () => imagesDrawn(previewCard.locator('.player img'), 1).then(async (ok) => ok || (await previewCard.locator('.player video').count()) === 1));
    for (const i of [0, 2]) {
      const frame = previewCard.locator(`[data-keyframe="${i}"]`);
      await frame.click();
      await until(`keyframe ${i + 1} selected`, async () => (await frame.getAttribute('aria-pressed')) === 'true');
    }
    // The animated preview past its first (blank) frame, the pointer off the grid.
    await inbox.mouse.move(0, 0);
    await sleep(2_000);
    await shoot(inbox, 'console-inbox-preview.png');

    // 4. Rejected for shots 1 and 3: their edits, then a new preview; the project page.
    await decide(preview1, 'reject', 'Warmer light in shots 1 and 3');
    const preview2 = await pending('PREVIEW_VIDEO_READY', [preview1.approvalId]);
    const project = await browser.page();
    await project.setViewportSize(VIEWPORT);
    await project.goto(`${url}/projects/${encodeURIComponent(projectId)}`);
    await loaded(project, 'project');
    await project.waitForSelector('svg.task-graph g.node', { timeout: STEP_TIMEOUT_MS });
    await until('the pending preview on the project page', async () => (await project.locator(`tr[data-checkpoint-row][data-approval="${preview2.approvalId}"], [data-approval="${preview2.approvalId}"]`).count()) > 0);
    await sleep(500);
    await shoot(project, 'console-project.png');

    // 5. The new preview approved, then the final; the projects page and a keyframe task.
    await showCard(preview2);
    await decide(preview2, 'approve');
    const final = await pending('FINAL_VIDEO_READY');
    await showCard(final);
    await decide(final, 'approve');
    await until('the project completed', async () => (await backend.project(projectId)).project.state === 'completed');
    const list = await browser.page();
    await list.setViewportSize(VIEWPORT);
    await list.goto(`${url}/`);
    await list.waitForSelector(`[data-project="${projectId}"][data-state="completed"]`, { timeout: STEP_TIMEOUT_MS });
    await loaded(list, 'projects');
    await shoot(list, 'console-projects.png');

    const graph = (await backend.project(projectId)).graph;
    const keyframe = graph.nodes.find((n) => n.taskType === 'GENERATE_KEYFRAME' && n.shotIndex === 0) ?? graph.nodes.find((n) => n.taskType === 'GENERATE_KEYFRAME');
    if (!keyframe) throw new Error(`no GENERATE_KEYFRAME task in project ${projectId}`);
    await list.goto(`${url}/tasks/${encodeURIComponent(keyframe.taskId)}`);
    await loaded(list, 'task');
    await list.waitForSelector('tr[data-transition]', { timeout: STEP_TIMEOUT_MS });
    await until('the task page\'s images drawn', async () => {
      const imgs = list.locator('[data-page="task"] img');
      return imagesDrawn(imgs, await imgs.count());
    });
    await shoot(list, 'console-task.png');

    const problems = browser.errors();
    if (problems.length) {
      log(`! the pages reported ${problems.length} problem(s):`);
      for (const p of problems) log(`  ${p.kind} on ${p.url}: ${p.text}${p.source ? ` (${p.source})` : ''}`);
    }
  } finally {
    stop();
    const result = await demo?.catch((err: unknown) => {
      log(`! the demo failed: ${(err as Error).message}`);
      return null;
    });
    if (result) log(`project ${result.projectId} ${result.state}: ${result.tasks} tasks, $${result.spent.toFixed(2)}`);
    await browser?.close().catch(() => undefined);
    await reviewConsole?.close().catch(() => undefined);
    await http?.close().catch(() => undefined);
    await env.close().catch(() => undefined);
  }
}

/** Waits for the page root to have rendered its data. */
async function loaded(page: Page, root: string): Promise<void> {
  await page.waitForSelector(`[data-page="${root}"][data-loaded="true"]`, { timeout: STEP_TIMEOUT_MS });
}

/** Whether `count` images (at least) of the locator are loaded and drawn. */
async function imagesDrawn(images: ReturnType<Page['locator']>, count: number): Promise<boolean> {
  const drawn = await images.evaluateAll((imgs) =>
    imgs.filter((i) => {
      const img = i as unknown as { complete: boolean; naturalWidth: number };
      return img.complete && img.naturalWidth > 0;
    }).length,
  );
  return drawn >= count;
}

/**
 * The page as docs/<name>: from the top to the bottom of its content (the page root, not the
 * viewport's empty rest), at most MAX_HEIGHT pixels; nothing focused.
 */
async function shoot(page: Page, name: string): Promise<void> {
  // Lazy images below the fold: scrolled into view once, so the full page shows them drawn.
  const bottom = await page.evaluate(async () => {
    type El = { getBoundingClientRect(): { bottom: number }; blur?: () => void };
    const doc = (globalThis as unknown as { document: { documentElement: { scrollHeight: number }; activeElement: El | null; querySelector(s: string): El | null } }).document;
    const win = globalThis as unknown as { scrollTo(x: number, y: number): void; innerHeight: number };
    doc.activeElement?.blur?.();
    for (let y = 0; y < doc.documentElement.scrollHeight; y += win.innerHeight) {
      win.scrollTo(0, y);
      await new Promise((r) => setTimeout(r, 50));
    }
    win.scrollTo(0, 0);
    const root = doc.querySelector('[data-page]');
    return root ? root.getBoundingClientRect().bottom : doc.documentElement.scrollHeight;
  });
  await until(`${name}: every image loaded`, () =>
    page.evaluate(() => [...(globalThis as unknown as { document: { images: Iterable<{ complete: boolean }> } }).document.images].every((i) => i.complete)),
  );
  const failed = page.locator('[data-page] [data-error]');
  if (await failed.count()) throw new Error(`${name}: the page shows an error: ${await failed.first().innerText()}`);
  const full = Math.ceil(bottom) + 8;
  const height = Math.min(full, MAX_HEIGHT);
  const path = `${DOCS}${name}`;
  await page.screenshot({ path, type: 'png', fullPage: true, animations: 'allow', clip: { x: 0, y: 0, width: VIEWPORT.width, height } });
  const { size } = await stat(path);
  const kb = Math.round(size / 1024);
  log(`✓ docs/${name} (${VIEWPORT.width}×${height}${full > MAX_HEIGHT ? `, cut from ${full}` : ''}, ${kb} KB)${size > MAX_BYTES ? ` — over ${MAX_BYTES / 1024} KB` : ''}`);
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    process.stderr.write(`console-screenshots: ${(err as Error).message}\n`);
    process.exit(1);
  },
);
