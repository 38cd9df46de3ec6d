import { readFile, rm, stat } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { findChromium, openBrowser, SCREENSHOT_DIR, type TestBrowser } from '../helpers/browser.js';

/** The browser harness (test/helpers/browser.ts) on a page served by this test: Debian's Chromium, headless. */
const PAGES: Record<string, string> = {
  '/': `<!doctype html><html><head><meta charset="utf-8"><title>harness</title></head>
<body><h1 id="title">Review console</h1><p id="count"></p>
<script>document.getElementById('count').textContent = String(2 + 3) + ' tasks';</script></body></html>`,
  '/broken': `<!doctype html><html><body><p>broken</p>
<script>console.error('something went wrong'); setTimeout(() => { throw new Error('boom from the page'); }, 0);</script></body></html>`,
};

const PNG_SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);

describe('browser harness', () => {
  let server: Server;
  let base: string;
  let browser: TestBrowser;

  beforeAll(async () => {
    server = createServer((req, res) => {
      // Chromium asks for one, and logs a 404 as a console error.
      if (req.url === '/favicon.ico') {
        res.writeHead(204).end();
        return;
      }
      const body = PAGES[req.url ?? ''];
      if (body === undefined) {
        res.writeHead(404, { 'content-type': 'text/plain' }).end('not found');
        return;
      }
      res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' }).end(body);
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    browser = await openBrowser();
  });

  afterAll(async () => {
    await browser?.close();
    await new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve()));
  });

  it('opens a page, reads the DOM its script wrote, and reports no error', async () => {
    const page = await browser.page();
    await page.goto(`${base}/`);
    expect(await page.locator('#title').textContent()).toBe('Review console');
    expect(await page.locator('#count').textContent()).toBe('5 tasks');
    expect(browser.errors(page)).toEqual([]);
    await page.close();
  });

  it('writes a PNG screenshot to test-output/screenshots/<name>.png', async () => {
    const page = await browser.page();
    await page.goto(`${base}/`);
    const name = 'browser-harness-self-test';
    const path = `${SCREENSHOT_DIR}${name}.png`;
    await rm(path, { force: true });
    expect(await browser.screenshot(page, name)).toBe(path);
    expect((await stat(path)).size).toBeGreaterThan(1000);
    const bytes = await readFile(path);
    expect(bytes.subarray(0, 8).equals(PNG_SIGNATURE)).toBe(true);
    // The IHDR chunk: the viewport's width (1280) and at least its height.
    expect(bytes.readUInt32BE(16)).toBe(1280);
    expect(bytes.readUInt32BE(20)).toBeGreaterThanOrEqual(800);
    await expect(browser.screenshot(page, '../outside')).rejects.toThrow(/letters, digits/);
    await page.close();
  });

  it('collects a page\'s console errors and uncaught exceptions, per page', async () => {
    const quiet = await browser.page();
    await quiet.goto(`${base}/`);
    const page = await browser.page();
    await page.goto(`${base}/broken`);
    await expect.poll(() => browser.errors(page).length).toBe(2);
    const [logged, thrown] = browser.errors(page);
    expect(logged).toMatchObject({ kind: 'console', url: `${base}/broken`, text: 'something went wrong', source: `${base}/broken` });
    expect(thrown?.kind).toBe('pageerror');
    expect(thrown?.text).toContain('boom from the page');
    expect(browser.errors(quiet)).toEqual([]);
    expect(browser.errors().map((problem) => problem.kind)).toEqual(['console', 'pageerror']);
    await page.close();
    await quiet.close();
  });

  it('reports a resource that failed to load, naming it', async () => {
    const page = await browser.page();
    await page.setContent(`<img src="${base}/missing.png">`);
    await expect.poll(() => browser.errors(page).length).toBe(1);
    expect(browser.errors(page)[0]).toMatchObject({ kind: 'console', source: `${base}/missing.png` });
    expect(browser.errors(page)[0]?.text).toContain('404');
    await page.close();
  });
});

describe('finding Chromium', () => {
  afterEach(() => {
    vi.unstubAllEnvs();
  });

  it('finds CHROMIUM_BIN, or the chromium on PATH', () => {
    const path = findChromium();
    expect(path === process.env.CHROMIUM_BIN || path.endsWith('/chromium')).toBe(true);
  });

  it('says how to install it when there is none', () => {
    vi.stubEnv('CHROMIUM_BIN', '');
    vi.stubEnv('PATH', '/nonexistent');
    expect(() => findChromium()).toThrow(/Chromium is not installed.*apt-get install -y chromium/);
    vi.stubEnv('CHROMIUM_BIN', '/nonexistent/chromium');
    expect(() => findChromium()).toThrow(/CHROMIUM_BIN=\/nonexistent\/chromium is not an executable/);
  });
});
