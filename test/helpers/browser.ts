import { accessSync, constants } from 'node:fs';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium, type BrowserContext, type Page } from 'playwright-core';

/**
 * A headless browser for tests: Debian's Chromium (`apt-get install -y chromium`, which
 * .ci/run does when it is missing), driven by playwright-core. Never a downloaded browser:
 * playwright-core brings none, and the executable is the one on PATH (or CHROMIUM_BIN).
 * Each `openBrowser()` starts its own Chromium on a fresh profile (a temporary
 * user-data dir, removed by `close()`), with the flags that keep it off the network
 * (this machine refuses outbound connections).
 */

/** The flags of the machine guide: no sandbox (root), no GPU, nothing fetched in the background. */
export const CHROMIUM_ARGS = [
  '--no-sandbox',
  '--disable-gpu',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--no-first-run',
] as const;

/** Where `screenshot()` writes: test-output/screenshots/ at the repository's root (ignored by git). */
export const SCREENSHOT_DIR = fileURLToPath(new URL('../../test-output/screenshots/', import.meta.url));

/** Something a page reported as wrong: a `console.error` (or a failed load Chromium logs so), or an uncaught exception. */
export interface PageProblem {
  kind: 'console' | 'pageerror';
  /** The page's URL when it happened. */
  url: string;
  text: string;
  /**
   * For a console message, where it came from: the script, or the resource that failed to load
   * (Chromium logs a 404 as a console error, a missing /favicon.ico included).
   */
  source?: string;
}

export interface TestBrowser {
  /** A new tab, whose console errors and page errors are collected. */
  page(): Promise<Page>;
  /** Writes the page's screenshot (the whole page) to test-output/screenshots/<name>.png; returns the path. */
  screenshot(page: Page, name: string): Promise<string>;
  /** What the page reported, in order; without a page, what every page reported. */
  errors(page?: Page): PageProblem[];
  /** Closes Chromium and removes its profile. Idempotent. */
  close(): Promise<void>;
}

/** The Chromium to run: CHROMIUM_BIN, or `chromium` on PATH (as `which chromium` finds it). */
export function findChromium(): string {
  const override = process.env.CHROMIUM_BIN;
  if (override) {
    if (isExecutable(override)) return override;
    throw new Error(`CHROMIUM_BIN=${override} is not an executable file`);
  }
  for (const dir of (process.env.PATH ?? '').split(delimiter)) {
    if (!dir) continue;
    const candidate = join(dir, 'chromium');
    if (isExecutable(candidate)) return candidate;
  }
  throw new Error(
    'Chromium is not installed: no `chromium` on PATH. The browser tests use Debian\'s build, never a downloaded one: ' +
      'run `apt-get install -y chromium` (as root; .ci/run does it when it is missing), or set CHROMIUM_BIN to its path.',
  );
}

function isExecutable(path: string): boolean {
  try {
    accessSync(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

export async function openBrowser(options: { timeoutMs?: number } = {}): Promise<TestBrowser> {
  const executablePath = findChromium();
  const timeout = options.timeoutMs ?? 10_000;
  const profile = await mkdtemp(join(tmpdir(), 'lap-chromium-'));
  let context: BrowserContext;
  try {
    context = await chromium.launchPersistentContext(profile, {
      executablePath,
      headless: true,
      args: [...CHROMIUM_ARGS],
      timeout: 30_000,
      viewport: { width: 1280, height: 800 },
    });
  } catch (err) {
    await rm(profile, { recursive: true, force: true });
    throw err;
  }
  context.setDefaultTimeout(timeout);
  context.setDefaultNavigationTimeout(timeout);

  const problems = new Map<Page, PageProblem[]>();
  const order: PageProblem[] = [];
  const watch = (page: Page): void => {
    if (problems.has(page)) return;
    const list: PageProblem[] = [];
    problems.set(page, list);
    const add = (problem: PageProblem): void => {
      list.push(problem);
      order.push(problem);
    };
    page.on('console', (message) => {
      if (message.type() !== 'error') return;
      const source = message.location().url;
      add({ kind: 'console', url: page.url(), text: message.text(), ...(source ? { source } : {}) });
    });
    page.on('pageerror', (error) => add({ kind: 'pageerror', url: page.url(), text: error.stack ?? error.message }));
  };
  // The persistent context opens with a blank tab, and pages may open others (window.open): watch them all.
  for (const page of context.pages()) watch(page);
  context.on('page', watch);

  let closed: Promise<void> | null = null;
  return {
    async page() {
      const page = await context.newPage();
      watch(page);
      return page;
    },
    async screenshot(page, name) {
      if (!/^[A-Za-z0-9][\w.-]*$/.test(name)) throw new Error(`screenshot name ${JSON.stringify(name)}: letters, digits, '.', '_' and '-' only`);
      await mkdir(SCREENSHOT_DIR, { recursive: true });
      const path = join(SCREENSHOT_DIR, `${name}.png`);
      await page.screenshot({ path, fullPage: true, type: 'png' });
      return path;
    },
    errors(page) {
      return [...(page === undefined ? order : (problems.get(page) ?? []))];
    },
    close() {
      closed ??= (async () => {
        try {
          await context.close();
        } finally {
          await rm(profile, { recursive: true, force: true });
        }
      })();
      return closed;
    },
  };
}
