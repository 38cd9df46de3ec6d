import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { ServerResponse } from 'node:http';
import fastifyStatic from '@fastify/static';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { ConfigError, ErrorCode, ServiceUnavailableError, isOrchestratorError } from '../errors.js';
import type { Logger } from '../logger.js';
import type { ActionReply, ConsoleBackend, ConsoleEvent } from '../ports/console.js';
import type { HttpRoutes } from './server.js';

/** Who may use the console: a token, basic-auth users, or (on a loopback address only) anyone who reaches it. */
export interface ConsoleAccess {
  token?: string;
  basicAuth?: readonly { user: string; password: string }[];
}

export interface ConsoleRoutesOptions {
  /** The console's backend; null while the service is starting (its API answers 503 then). */
  backend: () => ConsoleBackend | null;
  /** ARTIFACTS_DIR: served read-only under `/artifacts/`. */
  artifactsDir: string | null;
  access: ConsoleAccess;
  logger: Logger;
  /** The host the server binds (HTTP_ADDR's): without access control, requests must name it or a loopback name (no DNS rebinding). */
  host: string;
}

const UI_DIR = fileURLToPath(new URL('./console-ui/', import.meta.url));
const PAGES = ['/', '/inbox', '/dead-letters', '/projects/:projectId', '/tasks/:taskId'] as const;
const SESSION_COOKIE = 'lap_console';
/** A browser that reads slower than this many bytes behind is dropped (it reconnects and reads the state again). */
const SSE_MAX_BUFFERED = 1 << 20;
/** A comment line this often keeps proxies from closing an idle stream. */
const SSE_KEEPALIVE_MS = 15_000;

const LOOPBACK = /^(127\.\d+\.\d+\.\d+|::1|localhost)$/i;

/** Whether `host` (HTTP_ADDR's) is a loopback address, reachable from this machine only. */
export function isLoopback(host: string): boolean {
  return LOOPBACK.test(host.replace(/^\[|\]$/g, ''));
}

/**
 * Refuses to serve the console on an address other machines reach without access control:
 * a ConfigError naming what to set.
 */
export function checkConsoleExposure(host: string, access: ConsoleAccess): void {
  if (isLoopback(host) || access.token || (access.basicAuth && access.basicAuth.length > 0)) return;
  throw new ConfigError([
    {
      key: 'HTTP_ADDR',
      value: host,
      reason: 'other machines reach this address: the review console needs CONSOLE_TOKEN or CONSOLE_BASIC_AUTH there (or CONSOLE_ENABLED=false, or a loopback HTTP_ADDR)',
    },
  ]);
}

const HTTP_STATUS: Partial<Record<string, number>> = {
  [ErrorCode.Validation]: 400,
  [ErrorCode.ProjectNotFound]: 404,
  [ErrorCode.TaskNotFound]: 404,
  [ErrorCode.Approval]: 409,
  [ErrorCode.IllegalTransition]: 409,
  [ErrorCode.VersionConflict]: 409,
  [ErrorCode.BudgetExceeded]: 409,
  [ErrorCode.ServiceUnavailable]: 503,
  [ErrorCode.Closed]: 503,
};

const statusOf = (reply: ActionReply): number => (reply.ok ? 200 : (HTTP_STATUS[reply.error.code] ?? 500));

function sameSecret(given: string, expected: string): boolean {
  const a = createHash('sha256').update(given).digest();
  const b = createHash('sha256').update(expected).digest();
  return timingSafeEqual(a, b);
}

function cookie(request: FastifyRequest, name: string): string | undefined {
  for (const part of (request.headers.cookie ?? '').split(';')) {
    const at = part.indexOf('=');
    if (at > 0 && part.slice(0, at).trim() === name) return decodeURIComponent(part.slice(at + 1).trim());
  }
  return undefined;
}

/** A browser's `Origin` (sent on every POST) names this host; a request without one (not from a browser) passes. */
function sameOrigin(request: FastifyRequest): boolean {
  const origin = request.headers.origin;
  if (origin === undefined) return true;
  try {
    return new URL(origin).host === request.headers.host;
  } catch {
    return false;
  }
}

const escapeAttr = (text: string): string => text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

/** The browser modules the console loads from node_modules (no CDN: the machine may have no internet). */
function vendorFiles(): Record<string, string> {
  const require = createRequire(import.meta.url);
  return {
    'preact.mjs': require.resolve('preact'),
    'hooks.mjs': require.resolve('preact/hooks'),
    'htm.mjs': join(dirname(require.resolve('htm')), 'htm.mjs'),
  };
}

/**
 * The review console: its pages (one HTML shell, the Preact front end in console-ui/), its
 * JSON API over the ConsoleBackend port, Server-Sent Events of what the orchestrators
 * publish, and ARTIFACTS_DIR read-only under `/artifacts/`.
 *
 * Access: with CONSOLE_TOKEN, a login form (or `Authorization: Bearer`) and an HttpOnly,
 * SameSite=Strict session cookie; with CONSOLE_BASIC_AUTH, HTTP basic auth (the user's name
 * is the `by` of their decisions); with neither, loopback only (checkConsoleExposure) and
 * requests must name a loopback host or the bound one. Every POST needs the page's CSRF
 * token in `x-csrf-token` and a same-origin `Origin` when the browser sends one.
 */
export function consoleRoutes(options: ConsoleRoutesOptions): HttpRoutes {
  const { access, logger, artifactsDir } = options;
  const backend = (): ConsoleBackend => {
    const b = options.backend();
    if (!b) throw new ServiceUnavailableError('console', 'the orchestrator is starting; try again in a moment');
    return b;
  };
  checkConsoleExposure(options.host, access);
  const csrf = randomBytes(24).toString('base64url');
  // The session cookie's value: derived from the token, so the cookie is not the token itself.
  const session = access.token ? createHash('sha256').update(`lap-console-session:${access.token}`).digest('base64url') : null;
  const users = access.basicAuth ?? [];
  const open = !access.token && users.length === 0;
  const shellTemplate = readFileSync(join(UI_DIR, 'index.html'), 'utf8');
  // The import map is the one inline script: allowed by its hash, nothing else inline.
  const inline = [...shellTemplate.matchAll(/<script type="importmap">([\s\S]*?)<\/script>/g)].map((m) => `'sha256-${createHash('sha256').update(m[1]!).digest('base64')}'`);
  const csp = [
    "default-src 'self'",
    `script-src 'self' ${inline.join(' ')}`.trim(),
    "style-src 'self'",
    'img-src \'self\' data: https: http:',
    'media-src \'self\' data: https: http:',
    "connect-src 'self'",
    "frame-ancestors 'none'",
    "base-uri 'none'",
    "form-action 'self'",
  ].join('; ');
  const vendor = vendorFiles();
  const vendorCache = new Map<string, string>();

  /** The user a request authenticates as: a basic-auth name, `''` for a token or an open console, null for none. */
  function who(request: FastifyRequest): string | null {
    const header = request.headers.authorization ?? '';
    if (users.length > 0 && header.startsWith('Basic ')) {
      const decoded = Buffer.from(header.slice(6), 'base64').toString('utf8');
      const at = decoded.indexOf(':');
      const user = decoded.slice(0, at);
      const password = decoded.slice(at + 1);
      // Every user compared (no early exit: the time does not tell which names exist).
      let found: string | null = null;
      for (const u of users) if (sameSecret(user, u.user) && sameSecret(password, u.password)) found = u.user;
      if (found !== null) return found;
    }
    if (access.token) {
      if (header.startsWith('Bearer ') && sameSecret(header.slice(7), access.token)) return '';
      const c = cookie(request, SESSION_COOKIE);
      if (c !== undefined && sameSecret(c, session!)) return '';
    }
    return open ? '' : null;
  }

  function hostAllowed(request: FastifyRequest): boolean {
    if (!open) return true;
    const host = (request.headers.host ?? '').replace(/:\d+$/, '').replace(/^\[|\]$/g, '');
    return isLoopback(host) || host === options.host.replace(/^\[|\]$/g, '');
  }

  function refuse(reply: FastifyReply, status: number, message: string): FastifyReply {
    return reply.code(status).header('cache-control', 'no-store').send({ ok: false, error: { code: status === 403 ? 'ERR_FORBIDDEN' : 'ERR_UNAUTHORIZED', message } });
  }

  return async (app: FastifyInstance) => {
    const streams = new Set<ServerResponse>();

    app.addContentTypeParser('application/x-www-form-urlencoded', { parseAs: 'string', bodyLimit: 4096 }, (_req, body, done) => {
      done(null, Object.fromEntries(new URLSearchParams(body as string)));
    });

    app.addHook('onRequest', async (request, reply) => {
      void reply.header('x-content-type-options', 'nosniff').header('referrer-policy', 'no-referrer');
      if (!hostAllowed(request)) return refuse(reply, 403, `host ${request.headers.host ?? ''} is not this console's (a loopback console answers loopback names only)`);
      const path = request.url.split('?')[0]!;
      if (path === '/login') return;
      const user = who(request);
      if (user === null) {
        if (users.length > 0 && !access.token) {
          return reply.code(401).header('www-authenticate', 'Basic realm="LivingAgent console", charset="UTF-8"').send({ ok: false, error: { code: 'ERR_UNAUTHORIZED', message: 'sign in' } });
        }
        if (request.method === 'GET' && !path.startsWith('/api/') && !path.startsWith('/artifacts/') && !path.startsWith('/assets/')) {
          return reply.redirect(`/login?next=${encodeURIComponent(request.url)}`, 303);
        }
        return refuse(reply, 401, 'sign in: CONSOLE_TOKEN as a bearer token, or the login form');
      }
      (request as FastifyRequest & { reviewer?: string }).reviewer = user;
      if (request.method !== 'GET' && request.method !== 'HEAD') {
        if (!sameOrigin(request)) return refuse(reply, 403, `cross-origin request from ${request.headers.origin} refused`);
        const given = request.headers['x-csrf-token'];
        if (typeof given !== 'string' || !sameSecret(given, csrf)) return refuse(reply, 403, 'missing or wrong x-csrf-token (reload the page)');
      }
    });

    // Signing in with the token (a form, so it never sits in a URL or the history).
    app.get('/login', async (request, reply) => {
      if (!access.token) return reply.redirect('/', 303);
      const next = (request.query as { next?: string }).next ?? '/';
      return reply.type('text/html; charset=utf-8').header('content-security-policy', csp).send(loginPage(next, false));
    });
    app.post('/login', async (request, reply) => {
      if (!access.token) return reply.redirect('/', 303);
      if (!sameOrigin(request)) return refuse(reply, 403, `cross-origin request from ${request.headers.origin} refused`);
      const body = (request.body ?? {}) as { token?: string; next?: string };
      const next = typeof body.next === 'string' && body.next.startsWith('/') && !body.next.startsWith('//') ? body.next : '/';
      if (typeof body.token !== 'string' || !sameSecret(body.token, access.token)) {
        return reply.code(401).type('text/html; charset=utf-8').header('content-security-policy', csp).send(loginPage(next, true));
      }
      void reply.header('set-cookie', `${SESSION_COOKIE}=${session}; HttpOnly; SameSite=Strict; Path=/`);
      return reply.redirect(next, 303);
    });

    const shell = async (request: FastifyRequest, reply: FastifyReply) => {
      const reviewer = (request as FastifyRequest & { reviewer?: string }).reviewer ?? '';
      const html = shellTemplate.replace('__CSRF__', escapeAttr(csrf)).replace('__REVIEWER__', escapeAttr(reviewer));
      return reply.type('text/html; charset=utf-8').header('cache-control', 'no-store').header('content-security-policy', csp).header('x-frame-options', 'DENY').send(html);
    };
    for (const page of PAGES) app.get(page, shell);
    // Asked for by browsers whatever the page says.
    app.get('/favicon.ico', async (_request, reply) => reply.redirect('/assets/favicon.svg', 301));

    await app.register(fastifyStatic, { root: UI_DIR, prefix: '/assets/', decorateReply: false, index: false, list: false, dotfiles: 'deny', cacheControl: false });
    app.get('/assets/vendor/:file', async (request, reply) => {
      const file = (request.params as { file: string }).file;
      const path = vendor[file];
      if (!path) return reply.code(404).send({ ok: false, error: { code: ErrorCode.Validation, message: `no vendor file ${file}` } });
      let text = vendorCache.get(file);
      if (text === undefined) vendorCache.set(file, (text = readFileSync(path, 'utf8')));
      return reply.type('text/javascript; charset=utf-8').header('cache-control', 'public, max-age=3600').send(text);
    });

    if (artifactsDir) {
      // Read-only, no listing, no dotfiles; @fastify/send refuses paths out of the folder.
      // An artifact is untrusted: sandboxed, so an SVG or HTML file opened alone runs nothing.
      await app.register(async (scope) => {
        scope.addHook('onSend', async (_request, reply) => {
          void reply.header('content-security-policy', "sandbox; default-src 'none'; img-src 'self' data:; media-src 'self'; style-src 'unsafe-inline'");
        });
        await scope.register(fastifyStatic, { root: artifactsDir, prefix: '/artifacts/', decorateReply: false, index: false, list: false, dotfiles: 'deny', allowedPath: (path) => !path.split('/').includes('..') });
      });
    }

    const read = (load: (request: FastifyRequest) => Promise<unknown>) => async (request: FastifyRequest, reply: FastifyReply) => {
      void reply.header('cache-control', 'no-store');
      try {
        return reply.send(await load(request));
      } catch (err) {
        if (!isOrchestratorError(err)) throw err;
        const answer: ActionReply = { ok: false, error: { code: err.code, message: err.message } };
        return reply.code(statusOf(answer)).send(answer);
      }
    };
    const act = async (run: () => Promise<ActionReply>): Promise<ActionReply> => {
      try {
        return await run();
      } catch (err) {
        if (!isOrchestratorError(err)) throw err;
        return { ok: false, error: { code: err.code, message: err.message } };
      }
    };
    const param = (request: FastifyRequest, name: string): string => (request.params as Record<string, string>)[name]!;
    app.get('/api/projects', read(() => backend().projects()));
    app.get('/api/projects/:projectId', read((r) => backend().project(param(r, 'projectId'))));
    app.get('/api/inbox', read(() => backend().inbox()));
    app.get('/api/reviews/:approvalId', read((r) => backend().review(param(r, 'approvalId'))));
    app.get('/api/tasks/:taskId', read((r) => backend().task(param(r, 'taskId'))));
    app.get('/api/dead-letters', read(() => backend().deadLetters()));

    app.post('/api/projects/:projectId/control', { bodyLimit: 16_384 }, async (request, reply) => {
      const answer = await act(() => backend().control(param(request, 'projectId'), request.body));
      return reply.code(statusOf(answer)).header('cache-control', 'no-store').send(answer);
    });
    app.post('/api/projects/:projectId/decisions', { bodyLimit: 64_000 }, async (request, reply) => {
      const body = request.body;
      const reviewer = (request as FastifyRequest & { reviewer?: string }).reviewer ?? '';
      // A basic-auth user decides as themselves, whatever the form says.
      const decision = reviewer && typeof body === 'object' && body !== null && !Array.isArray(body) ? { ...body, by: reviewer } : body;
      const answer = await act(() => backend().decide(param(request, 'projectId'), decision));
      return reply.code(statusOf(answer)).header('cache-control', 'no-store').send(answer);
    });

    // What the orchestrators publish once durable, as it happens. A page fetches its state,
    // then reads this stream (opened first, so nothing falls in between).
    app.get('/api/events', async (request, reply) => {
      const current = options.backend();
      // Events heard before the stream is answered wait here, then go first.
      let res: ServerResponse | null = null;
      const early: ConsoleEvent[] = [];
      const send = (event: ConsoleEvent): void => {
        if (!res) {
          if (early.length < 1_000) early.push(event);
          return;
        }
        if (res.writableLength > SSE_MAX_BUFFERED) {
          logger.warn({ buffered: res.writableLength }, 'console event stream too far behind; closed (the browser reconnects)');
          res.end();
          return;
        }
        res.write(`event: ${event.kind}\ndata: ${JSON.stringify(event.body)}\n\n`);
      };
      const subscription = current?.subscribe(send);
      // Answered once the events reach this stream: what the page reads next is covered.
      await subscription?.ready;
      reply.hijack();
      const stream = reply.raw;
      stream.writeHead(200, {
        'content-type': 'text/event-stream; charset=utf-8',
        'cache-control': 'no-store',
        connection: 'keep-alive',
        'x-accel-buffering': 'no',
        'x-content-type-options': 'nosniff',
      });
      stream.write('retry: 2000\n: connected\n\n');
      // Starting: the browser comes back in 2 s (a stream that ends is reconnected to).
      if (!subscription) {
        stream.end();
        return;
      }
      res = stream;
      for (const event of early.splice(0)) send(event);
      streams.add(stream);
      const keepalive = setInterval(() => stream.write(': keepalive\n\n'), SSE_KEEPALIVE_MS);
      keepalive.unref();
      const done = () => {
        clearInterval(keepalive);
        subscription.close();
        streams.delete(stream);
      };
      if (request.raw.destroyed || stream.destroyed) done();
      request.raw.on('close', done);
      stream.on('close', done);
    });

    // Open streams would hold the server's close: they end first.
    app.addHook('preClose', async () => {
      for (const res of streams) res.end();
      streams.clear();
    });
  };
}

function loginPage(next: string, failed: boolean): string {
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>Sign in · LivingAgent console</title><link rel="icon" href="/assets/favicon.svg" type="image/svg+xml"><link rel="stylesheet" href="/assets/console.css"></head>
<body class="login"><main class="login-card"><h1>LivingAgent</h1><p>The review console asks for its token (CONSOLE_TOKEN).</p>
${failed ? '<p class="error" data-error>That token is not the console\'s.</p>' : ''}
<form method="post" action="/login"><input type="hidden" name="next" value="${escapeAttr(next)}">
<label>Token <input type="password" name="token" autocomplete="current-password" required autofocus></label>
<button type="submit">Sign in</button></form></main></body></html>`;
}
