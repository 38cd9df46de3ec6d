import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createEmbeddedBlackboard } from '../../src/adapters/blackboards.js';
import { loadConfig, redactedConfig } from '../../src/config/config.js';
import { ReviewConsole } from '../../src/console/review-console.js';
import { ApprovalError, ConfigError, VersionConflictError } from '../../src/errors.js';
import { checkConsoleExposure, consoleRoutes, type ConsoleAccess } from '../../src/http/console.js';
import { startHttpServer, type HttpServer } from '../../src/http/server.js';
import { silentLogger } from '../../src/logger.js';
import type { Blackboard } from '../../src/orchestrator/factory.js';
import { startHarness } from '../helpers/pipeline-harness.js';
import { waitFor } from '../helpers/wait.js';

/**
 * The review console's HTTP surface over a real orchestrator (the embedded adapters): its
 * access control, CSRF, the actions' typed errors, the event stream, ARTIFACTS_DIR.
 */

let blackboard: Blackboard;
let harness: Awaited<ReturnType<typeof startHarness>>;
let reviewConsole: ReviewConsole;
let artifactsDir: string;
const servers: HttpServer[] = [];
const projectId = 'console_http_1';

async function serve(access: ConsoleAccess, host = '127.0.0.1'): Promise<HttpServer> {
  const server = await startHttpServer({
    host: '127.0.0.1',
    port: 0,
    logger: silentLogger(),
    routes: [consoleRoutes({ backend: () => reviewConsole, artifactsDir, access, logger: silentLogger(), host })],
  });
  servers.push(server);
  return server;
}

async function csrfOf(server: HttpServer, headers: Record<string, string> = {}): Promise<string> {
  const page = await server.app.inject({ method: 'GET', url: '/', headers: { host: '127.0.0.1', ...headers } });
  expect(page.statusCode).toBe(200);
  const token = /<meta name="csrf-token" content="([^"]+)"/.exec(page.body)?.[1];
  expect(token).toBeTruthy();
  return token!;
}

beforeAll(async () => {
  artifactsDir = await mkdtemp(join(tmpdir(), 'lap-artifacts-'));
  await mkdir(join(artifactsDir, 'frames'));
  await writeFile(join(artifactsDir, 'frames', 'shot 1.svg'), '<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>');
  await writeFile(join(artifactsDir, '.hidden'), 'TOP-SECRET-HIDDEN');
  await writeFile(join(tmpdir(), 'lap-outside-secret.txt'), 'TOP-SECRET-OUTSIDE');
  blackboard = await createEmbeddedBlackboard();
  // A person reviews: nobody answers the requests here.
  harness = await startHarness(blackboard, { reviewer: () => null });
  reviewConsole = await ReviewConsole.start({ orchestrator: harness.orchestrator, feed: { subscribe: async (l) => { const u = harness.bus.subscribe(l); return async () => u(); } }, artifactsDir });
  await harness.orchestrator.handleEvent({ id: `${projectId}:created`, type: 'PROJECT_CREATED', projectId, payload: { title: 'Console <b>test</b>', brief: 'a keeper', budget: 20 }, occurredAt: new Date().toISOString() });
  await waitFor(async () => (await reviewConsole.inbox()).length === 1, { what: 'the script review' });
}, 60_000);

afterAll(async () => {
  await Promise.all(servers.splice(0).map((s) => s.close()));
  await reviewConsole?.close();
  await harness?.stop();
  await blackboard?.close();
  await rm(artifactsDir, { recursive: true, force: true });
});

describe('exposure', () => {
  it('refuses a console on a non-loopback address without a token or users, naming HTTP_ADDR', () => {
    expect(() => checkConsoleExposure('0.0.0.0', {})).toThrow(ConfigError);
    expect(() => checkConsoleExposure('0.0.0.0', {})).toThrow(/HTTP_ADDR=0\.0\.0\.0: .*CONSOLE_TOKEN or CONSOLE_BASIC_AUTH/);
    expect(() => checkConsoleExposure('10.1.2.3', {})).toThrow(ConfigError);
    for (const host of ['127.0.0.1', '::1', 'localhost', '127.0.0.2']) expect(() => checkConsoleExposure(host, {})).not.toThrow();
    expect(() => checkConsoleExposure('0.0.0.0', { token: 't' })).not.toThrow();
    expect(() => checkConsoleExposure('0.0.0.0', { basicAuth: [{ user: 'ann', password: 'pw' }] })).not.toThrow();
  });

  it('reads CONSOLE_TOKEN, CONSOLE_BASIC_AUTH and ARTIFACTS_DIR, and never prints the secrets', () => {
    const config = loadConfig({ CONSOLE_TOKEN: 'tok-123456', CONSOLE_BASIC_AUTH: 'ann:pa:ss, bob:pw2', ARTIFACTS_DIR: '/srv/artifacts' });
    expect(config.console).toEqual({ enabled: true, token: 'tok-123456', basicAuth: [{ user: 'ann', password: 'pa:ss' }, { user: 'bob', password: 'pw2' }], artifactsDir: '/srv/artifacts' });
    const printed = JSON.stringify(redactedConfig(config));
    expect(printed).not.toContain('tok-123456');
    expect(printed).not.toContain('pa:ss');
    expect(printed).not.toContain('pw2');
    expect(() => loadConfig({ CONSOLE_BASIC_AUTH: 'ann' })).toThrow(/CONSOLE_BASIC_AUTH.*user:password/);
    expect(loadConfig({ CONSOLE_ENABLED: 'false' }).console.enabled).toBe(false);
  });
});

describe('an open console (loopback)', () => {
  it('serves the shell with a CSP allowing only its own scripts, and the front end from node_modules', async () => {
    const server = await serve({});
    const page = await server.app.inject({ method: 'GET', url: '/inbox', headers: { host: '127.0.0.1:1234' } });
    expect(page.statusCode).toBe(200);
    const csp = String(page.headers['content-security-policy']);
    expect(csp).toMatch(/script-src 'self' 'sha256-[A-Za-z0-9+/=]+'/);
    expect(csp).not.toContain('unsafe-inline');
    expect(page.headers['x-frame-options']).toBe('DENY');
    for (const file of ['preact.mjs', 'hooks.mjs', 'htm.mjs']) {
      const js = await server.app.inject({ method: 'GET', url: `/assets/vendor/${file}`, headers: { host: 'localhost' } });
      expect(js.statusCode).toBe(200);
      expect(js.headers['content-type']).toContain('javascript');
      expect(js.body.length).toBeGreaterThan(500);
    }
    expect((await server.app.inject({ method: 'GET', url: '/assets/vendor/evil.mjs', headers: { host: 'localhost' } })).statusCode).toBe(404);
  });

  it('answers only requests naming a loopback host or its own (no DNS rebinding)', async () => {
    const server = await serve({});
    const res = await server.app.inject({ method: 'GET', url: '/api/projects', headers: { host: 'attacker.example:8080' } });
    expect(res.statusCode).toBe(403);
    expect((await server.app.inject({ method: 'GET', url: '/api/projects', headers: { host: '[::1]:8080' } })).statusCode).toBe(200);
  });

  it('reads the projects and the inbox from the stores; unknown ids are typed 404s', async () => {
    const server = await serve({});
    const projects = (await server.app.inject({ method: 'GET', url: '/api/projects', headers: { host: 'localhost' } })).json();
    const card = projects.find((p: { projectId: string }) => p.projectId === projectId);
    expect(card.title).toBe('Console <b>test</b>');
    expect(card.pendingReviews).toHaveLength(1);
    const row = await blackboard.projects.getProject(projectId);
    expect(card.budget).toMatchObject({ limit: row!.budgetLimit, spent: row!.spent, reserved: row!.reserved });
    const inbox = (await server.app.inject({ method: 'GET', url: '/api/inbox', headers: { host: 'localhost' } })).json();
    expect(inbox[0]).toMatchObject({ projectId, checkpoint: 'SCENE_WRITTEN', content: { kind: 'script' } });
    for (const url of ['/api/projects/nope', '/api/tasks/nope']) {
      const res = await server.app.inject({ method: 'GET', url, headers: { host: 'localhost' } });
      expect(res.statusCode).toBe(404);
      expect(res.json().error.code).toMatch(/^ERR_(PROJECT|TASK)_NOT_FOUND$/);
    }
    const page = (await server.app.inject({ method: 'GET', url: `/api/projects/${projectId}`, headers: { host: 'localhost' } })).json();
    expect(page.graph.nodes.length).toBeGreaterThan(0);
    expect(page.checkpoints[0]).toMatchObject({ checkpoint: 'SCENE_WRITTEN', status: 'pending' });
  });

  it('refuses a POST without the CSRF token or from another origin; nothing changes', async () => {
    const server = await serve({});
    const csrf = await csrfOf(server);
    const post = (headers: Record<string, string>) =>
      server.app.inject({ method: 'POST', url: `/api/projects/${projectId}/control`, headers: { host: '127.0.0.1', 'content-type': 'application/json', ...headers }, payload: { action: 'pause' } });
    expect((await post({})).statusCode).toBe(403);
    expect((await post({ 'x-csrf-token': 'wrong' })).statusCode).toBe(403);
    expect((await post({ 'x-csrf-token': csrf, origin: 'http://attacker.example' })).statusCode).toBe(403);
    expect((await blackboard.projects.getProject(projectId))!.state).toBe('active');
  });

  it('streams committed changes, and acts through the control path with its typed errors', async () => {
    const server = await serve({});
    const csrf = await csrfOf(server);
    const controller = new AbortController();
    const stream = await fetch(`${server.url}/api/events`, { signal: controller.signal });
    expect(stream.headers.get('content-type')).toContain('text/event-stream');
    const reader = stream.body!.getReader();
    let text = '';
    const heard = (async () => {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) return;
        text += new TextDecoder().decode(value);
        if (/event: project\ndata: \{[^\n]*"state":"paused"/.test(text)) return;
      }
    })();
    const control = (body: unknown) =>
      server.app.inject({ method: 'POST', url: `/api/projects/${projectId}/control`, headers: { host: '127.0.0.1', 'content-type': 'application/json', 'x-csrf-token': csrf }, payload: body as object });
    const paused = await control({ action: 'pause', reason: 'look at it' });
    expect(paused.statusCode).toBe(200);
    expect(paused.json()).toMatchObject({ ok: true, result: { project: { state: 'paused' } } });
    await heard;
    controller.abort();
    expect((await blackboard.projects.getProject(projectId))!.state).toBe('paused');
    // The same errors as the control subject's: a schema violation, an illegal transition.
    const bad = await control({ action: 'explode' });
    expect(bad.statusCode).toBe(400);
    expect(bad.json().error.code).toBe('ERR_VALIDATION');
    expect((await control({ action: 'resume' })).statusCode).toBe(200);
    const again = await control({ action: 'resume' });
    expect(again.statusCode).toBe(409);
    expect(again.json().error.code).toBe('ERR_ILLEGAL_TRANSITION');
    expect((await blackboard.projects.getProject(projectId))!.state).toBe('active');
  });

  it('decides through the decision path: a lost race and a bad decision are typed, the first decision stands', async () => {
    const server = await serve({});
    const csrf = await csrfOf(server);
    const [review] = await reviewConsole.inbox();
    const decide = (body: unknown) =>
      server.app.inject({ method: 'POST', url: `/api/projects/${projectId}/decisions`, headers: { host: '127.0.0.1', 'content-type': 'application/json', 'x-csrf-token': csrf }, payload: body as object });
    const refused = await decide({ approvalId: review!.approvalId, decision: 'maybe', by: 'ann' });
    expect(refused.statusCode).toBe(400);
    expect(refused.json().error.code).toBe('ERR_VALIDATION');
    const unknown = await decide({ approvalId: 'nope', decision: 'approved', by: 'ann' });
    expect(unknown.statusCode).toBe(409);
    expect(unknown.json().error.code).toBe('ERR_APPROVAL');
    const first = await decide({ approvalId: review!.approvalId, decision: 'rejected', comment: 'darker', by: 'ann' });
    expect(first.statusCode).toBe(200);
    expect(first.json().result).toMatchObject({ status: 'rejected', by: 'ann', comment: 'darker' });
    const late = await decide({ approvalId: review!.approvalId, decision: 'approved', by: 'bob' });
    expect(late.statusCode).toBe(409);
    expect(late.json().error.code).toBe('ERR_APPROVAL');
    const stored = await blackboard.projects.getApproval(review!.approvalId);
    expect(stored).toMatchObject({ status: 'rejected', decidedBy: 'ann', comment: 'darker' });
  });

  it('serves ARTIFACTS_DIR read-only and sandboxed; paths out of it, dotfiles and listings are refused', async () => {
    const server = await serve({});
    const svg = await server.app.inject({ method: 'GET', url: '/artifacts/frames/shot%201.svg', headers: { host: 'localhost' } });
    expect(svg.statusCode).toBe(200);
    expect(svg.headers['content-type']).toContain('image/svg+xml');
    expect(String(svg.headers['content-security-policy'])).toMatch(/^sandbox;/);
    for (const url of ['/artifacts/../lap-outside-secret.txt', '/artifacts/%2e%2e/lap-outside-secret.txt', '/artifacts/frames/%2e%2e/%2e%2e/lap-outside-secret.txt', '/artifacts/.hidden', '/artifacts/', '/artifacts/frames/']) {
      const res = await server.app.inject({ method: 'GET', url, headers: { host: 'localhost' } });
      expect(res.statusCode, url).not.toBe(200);
      expect(res.body).not.toContain('TOP-SECRET');
    }
    expect((await server.app.inject({ method: 'POST', url: '/artifacts/frames/x.svg', headers: { host: 'localhost' } })).statusCode).not.toBe(200);
  });
});

describe('a console with CONSOLE_TOKEN', () => {
  it('asks for the token (login form or bearer), keeps a session cookie that is not the token', async () => {
    const server = await serve({ token: 'the-token-42' }, '0.0.0.0');
    expect((await server.app.inject({ method: 'GET', url: '/api/projects' })).statusCode).toBe(401);
    const page = await server.app.inject({ method: 'GET', url: '/inbox' });
    expect(page.statusCode).toBe(303);
    expect(page.headers.location).toBe('/login?next=%2Finbox');
    const wrong = await server.app.inject({ method: 'POST', url: '/login', headers: { 'content-type': 'application/x-www-form-urlencoded' }, payload: 'token=nope&next=%2Finbox' });
    expect(wrong.statusCode).toBe(401);
    const login = await server.app.inject({ method: 'POST', url: '/login', headers: { 'content-type': 'application/x-www-form-urlencoded' }, payload: 'token=the-token-42&next=%2Finbox' });
    expect(login.statusCode).toBe(303);
    expect(login.headers.location).toBe('/inbox');
    const setCookie = String(login.headers['set-cookie']);
    expect(setCookie).toMatch(/HttpOnly/);
    expect(setCookie).toMatch(/SameSite=Strict/);
    expect(setCookie).not.toContain('the-token-42');
    const cookie = setCookie.split(';')[0]!;
    expect((await server.app.inject({ method: 'GET', url: '/api/projects', headers: { cookie } })).statusCode).toBe(200);
    expect((await server.app.inject({ method: 'GET', url: '/api/projects', headers: { authorization: 'Bearer the-token-42' } })).statusCode).toBe(200);
    expect((await server.app.inject({ method: 'GET', url: '/api/projects', headers: { authorization: 'Bearer the-token-43' } })).statusCode).toBe(401);
    // Signed in, a POST still needs the page's CSRF token.
    const csrf = await csrfOf(server, { cookie });
    const post = (headers: Record<string, string>) =>
      server.app.inject({ method: 'POST', url: `/api/projects/${projectId}/control`, headers: { cookie, 'content-type': 'application/json', ...headers }, payload: { action: 'status' } });
    expect((await post({})).statusCode).toBe(403);
    expect((await post({ 'x-csrf-token': csrf })).statusCode).toBe(200);
    // An open redirect is not: `next` stays on this site.
    const away = await server.app.inject({ method: 'POST', url: '/login', headers: { 'content-type': 'application/x-www-form-urlencoded' }, payload: 'token=the-token-42&next=%2F%2Fevil.example' });
    expect(away.headers.location).toBe('/');
  });
});

describe('a console with CONSOLE_BASIC_AUTH', () => {
  it('challenges for basic auth, and a user decides as themselves', async () => {
    const server = await serve({ basicAuth: [{ user: 'director', password: 's3cret' }] }, '0.0.0.0');
    const challenge = await server.app.inject({ method: 'GET', url: '/' });
    expect(challenge.statusCode).toBe(401);
    expect(challenge.headers['www-authenticate']).toMatch(/^Basic realm=/);
    const bad = `Basic ${Buffer.from('director:wrong').toString('base64')}`;
    expect((await server.app.inject({ method: 'GET', url: '/', headers: { authorization: bad } })).statusCode).toBe(401);
    const authorization = `Basic ${Buffer.from('director:s3cret').toString('base64')}`;
    const page = await server.app.inject({ method: 'GET', url: '/', headers: { authorization } });
    expect(page.statusCode).toBe(200);
    expect(page.body).toContain('<meta name="console-reviewer" content="director">');
    const csrf = /<meta name="csrf-token" content="([^"]+)"/.exec(page.body)![1]!;
    // The revision of the rejected script brings a new request.
    await waitFor(async () => (await reviewConsole.inbox()).some((r) => r.projectId === projectId), { what: 'the revised script review' });
    const [review] = (await reviewConsole.inbox()).filter((r) => r.projectId === projectId);
    const res = await server.app.inject({
      method: 'POST',
      url: `/api/projects/${projectId}/decisions`,
      headers: { authorization, 'content-type': 'application/json', 'x-csrf-token': csrf },
      payload: { approvalId: review!.approvalId, decision: 'approved', by: 'someone-else' },
    });
    expect(res.statusCode).toBe(200);
    expect((await blackboard.projects.getApproval(review!.approvalId))!.decidedBy).toBe('director');
  });
});

describe('the feed', () => {
  it('is heard only while a browser listens, when the rejected messages come from elsewhere (NATS)', async () => {
    const events: string[] = [];
    let listener: ((m: { kind: 'project'; body: { projectId: string; state: 'paused'; reason: null } }) => void) | null = null;
    const feed = {
      subscribe: async (l: typeof listener) => {
        events.push('subscribe');
        listener = l;
        return async () => {
          events.push('unsubscribe');
          listener = null;
        };
      },
    };
    const lazy = await ReviewConsole.start({ orchestrator: harness.orchestrator, feed: feed as never, rejected: { latest: async () => [] } });
    expect(events).toEqual([]);
    const heard: unknown[] = [];
    const a = lazy.subscribe((e) => heard.push(e));
    const b = lazy.subscribe((e) => heard.push(e));
    await Promise.all([a.ready, b.ready]);
    expect(events).toEqual(['subscribe']);
    listener!({ kind: 'project', body: { projectId: 'p', state: 'paused', reason: null } });
    expect(heard).toHaveLength(2);
    a.close();
    b.close();
    await lazy.close();
    expect(events).toEqual(['subscribe', 'unsubscribe']);
  });
});

describe('an action that meets a retryable error', () => {
  it('is tried again with back-off, as the bus would; a permanent error is answered at once', async () => {
    const calls: string[] = [];
    const decided = { approvalId: 'a1', checkpoint: 'SCENE_WRITTEN', status: 'approved', requestedAt: new Date(), expiresAt: null, decidedAt: new Date(), decidedBy: 'ann', comment: null };
    let conflicts = 2;
    const orchestrator = {
      core: { logger: silentLogger() },
      decide: async (_projectId: string, d: { approvalId: string }) => {
        calls.push(d.approvalId);
        if (d.approvalId === 'a1' && conflicts-- > 0) throw new VersionConflictError('t1', 3, 4);
        if (d.approvalId === 'gone') throw new ApprovalError('approval gone was already approved by bob');
        return decided;
      },
    };
    const racing = await ReviewConsole.start({ orchestrator: orchestrator as never, feed: { subscribe: async () => async () => undefined }, rejected: { latest: async () => [] } });
    const won = await racing.decide('p1', { approvalId: 'a1', decision: 'approved', by: 'ann' });
    expect(won).toMatchObject({ ok: true, result: { approvalId: 'a1', status: 'approved' } });
    expect(calls.filter((c) => c === 'a1')).toHaveLength(3);
    const lost = await racing.decide('p1', { approvalId: 'gone', decision: 'approved', by: 'ann' });
    expect(lost).toEqual({ ok: false, error: { code: 'ERR_APPROVAL', message: 'approval gone was already approved by bob' } });
    expect(calls.filter((c) => c === 'gone')).toHaveLength(1);
    await racing.close();
  });
});
