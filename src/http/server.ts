import Fastify, { type FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import { ServiceUnavailableError } from '../errors.js';

/**
 * A set of routes on the operator's HTTP server (health, metrics; the review console
 * later): registered on the Fastify instance before it listens. A Fastify plugin with
 * its own encapsulation context, so each set keeps its hooks and decorations to itself.
 */
export type HttpRoutes = (app: FastifyInstance) => Promise<void>;

export interface HttpServerOptions {
  host: string;
  /** 0: a free port (see `HttpServer.port`). */
  port: number;
  logger: Logger;
  routes: readonly HttpRoutes[];
}

export interface HttpServer {
  readonly app: FastifyInstance;
  /** The port it listens on (the one the system chose, with port 0). */
  readonly port: number;
  /** `http://host:port`. */
  readonly url: string;
  /** Stops listening; requests in progress finish. */
  close(): Promise<void>;
}

/**
 * The operator's HTTP server (Fastify): the route sets given, then listening on
 * `host:port` (HTTP_ADDR). A port that cannot be bound (in use, not allowed) fails with a
 * ServiceUnavailableError naming the address and HTTP_ADDR.
 */
export async function startHttpServer(options: HttpServerOptions): Promise<HttpServer> {
  const { host, logger } = options;
  // Fastify's own logger off (no line per request: a scrape or a probe every few seconds is
  // not news); failed requests are logged below, with the service's logger.
  const app = Fastify({ logger: false, return503OnClosing: true, forceCloseConnections: 'idle' });
  app.setErrorHandler((err, request, reply) => {
    logger.error({ err, url: request.url }, 'http request failed');
    void reply.code(500).type('text/plain; charset=utf-8').send('internal error\n');
  });
  for (const routes of options.routes) await app.register(routes);
  const shown = host.includes(':') ? `[${host}]` : host;
  try {
    await app.listen({ host, port: options.port });
  } catch (err) {
    await app.close().catch(() => undefined);
    throw new ServiceUnavailableError('http', `cannot serve HTTP on ${shown}:${options.port}: ${(err as Error).message} (check HTTP_ADDR)`, { cause: err });
  }
  const address = app.server.address();
  const port = typeof address === 'object' && address ? address.port : options.port;
  const url = `http://${shown}:${port}`;
  logger.info({ url }, 'serving HTTP');
  return {
    app,
    port,
    url,
    close: () => app.close(),
  };
}
