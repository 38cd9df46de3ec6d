import { loadConfig, redactedConfig } from '../config/config.js';
import { ServiceRefusedError, ServiceUnavailableError } from '../errors.js';
import { createLogger } from '../logger.js';
import { connectStatelyInspector } from '../inspect/stately.js';
import { configuredCatalog } from '../config/task-types.js';
import { startService } from '../service.js';
import { healthRoutes, Readiness } from '../http/health.js';
import { metricsRoutes } from '../http/metrics.js';
import { startHttpServer, type HttpRoutes, type HttpServer } from '../http/server.js';
import { consoleRoutes } from '../http/console.js';
import { ReviewConsole } from '../console/review-console.js';
import { loadArtifactResolver } from '../console/resolver-module.js';
import type { ArtifactResolver } from '../console/artifacts.js';
import { natsOutboundFeed } from '../adapters/nats/outbound-feed.js';
import { rejectedMessages } from '../adapters/nats/rejected-messages.js';
import { PrometheusMetrics } from '../metrics/prometheus.js';
import { startTracing } from './tracing.js';
import type { CliIo, ParsedArgs } from './types.js';

const HINT = 'docker compose up -d postgres redis nats (in this repository) starts PostgreSQL, Redis and NATS on their default ports';

/**
 * `orchestrator start`: the service with the real adapters from the environment,
 * migrations applied, until SIGTERM or SIGINT, then a graceful stop and exit 0. HTTP on
 * HTTP_ADDR from the start (`/livez`; `/readyz` says 503 until the service has started,
 * and again once it stops), `/metrics` from the service's own registry.
 */
export async function runStartCommand(args: ParsedArgs, io: CliIo): Promise<number> {
  const config = loadConfig(io.env);
  const logger = createLogger({ level: config.logLevel });
  logger.info({ config: redactedConfig(config) }, 'starting');
  // A task-type override the catalogue does not have fails the start before anything is opened.
  configuredCatalog(config.taskTypes);
  // Before the service: its first spans (recovery, replays) are recorded too.
  const tracing = startTracing(config, logger);
  if (tracing) logger.info({ exporter: tracing.exporter }, 'traces on');
  const inspectUrl = typeof args.values.inspect === 'string' ? args.values.inspect : undefined;
  const inspection = inspectUrl ? await connectStatelyInspector({ url: inspectUrl, logger }) : null;
  const metrics = new PrometheusMetrics({ logger });
  // A resolver module that does not load fails the start before anything is opened.
  let resolveArtifact: ArtifactResolver | undefined;
  try {
    if (config.console.enabled && config.console.artifactResolver) resolveArtifact = await loadArtifactResolver(config.console.artifactResolver);
  } catch (err) {
    await inspection?.close();
    await tracing?.shutdown();
    io.err(`orchestrator start: ${(err as Error).message}`);
    return 1;
  }
  const readiness = new Readiness();
  let reviewConsole: ReviewConsole | null = null;
  const artifactsDir = config.console.artifactsDir ?? null;
  let http: HttpServer;
  try {
    const routes: HttpRoutes[] = [healthRoutes(readiness), metricsRoutes(metrics)];
    if (config.console.enabled) {
      const access = { ...(config.console.token ? { token: config.console.token } : {}), ...(config.console.basicAuth ? { basicAuth: config.console.basicAuth } : {}) };
      routes.push(consoleRoutes({ backend: () => reviewConsole, artifactsDir, access, logger, host: config.http.host }));
    }
    http = await startHttpServer({ ...config.http, logger, routes });
  } catch (err) {
    await inspection?.close();
    await tracing?.shutdown();
    io.err(`orchestrator start: ${(err as Error).message}`);
    return 1;
  }
  io.out(`orchestrator ${config.instanceId} serving HTTP on ${http.url} (/livez, /readyz, /metrics${config.console.enabled ? ', the review console at /' : ''})`);
  let service;
  try {
    service = await startService(config, logger, { metrics, ...(inspection ? { inspect: inspection.observer } : {}) });
  } catch (err) {
    await http.close().catch(() => undefined);
    await inspection?.close();
    await tracing?.shutdown();
    // A server that refused these settings is up: how to start one would mislead.
    if (err instanceof ServiceRefusedError) {
      io.err(`orchestrator start: ${err.message}`);
      return 1;
    }
    if (err instanceof ServiceUnavailableError) {
      io.err(`orchestrator start: ${err.message}\n  ${HINT}`);
      return 1;
    }
    throw err;
  }
  if (config.console.enabled) {
    const { connection } = service;
    const prefix = config.nats.subjectPrefix;
    reviewConsole = await ReviewConsole.start({
      orchestrator: service.orchestrator,
      feed: natsOutboundFeed(connection, prefix, logger),
      rejected: { latest: async (limit) => (await rejectedMessages(connection, prefix, limit)).items },
      artifactsDir,
      ...(resolveArtifact ? { resolveArtifact } : {}),
    });
  }
  readiness.started(service.checks);
  io.out(`orchestrator ${config.instanceId} running (NATS prefix ${config.nats.subjectPrefix}); stop with Ctrl-C or SIGTERM`);
  const signal = await new Promise<NodeJS.Signals>((resolve) => {
    process.once('SIGTERM', () => resolve('SIGTERM'));
    process.once('SIGINT', () => resolve('SIGINT'));
  });
  logger.info({ signal }, 'stopping');
  readiness.stopping();
  await reviewConsole?.close();
  await service.stop();
  await http.close().catch((err: unknown) => logger.warn({ err }, 'http server did not close cleanly'));
  await inspection?.close();
  // The last spans (the stop's) are exported before the process ends.
  await tracing?.shutdown();
  logger.info('stopped');
  return 0;
}
