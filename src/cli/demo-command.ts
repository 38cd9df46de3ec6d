import { loadConfig } from '../config/config.js';
import { ValidationError } from '../errors.js';
import { createLogger } from '../logger.js';
import { runDemo } from '../demo/demo.js';
import { embeddedEnvironment } from '../demo/embedded-environment.js';
import { servicesEnvironment } from '../demo/services-environment.js';
import { connectStatelyInspector } from '../inspect/stately.js';
import { ServiceUnavailableError } from '../errors.js';
import { ReviewConsole } from '../console/review-console.js';
import { consoleRoutes } from '../http/console.js';
import { startHttpServer, type HttpServer } from '../http/server.js';
import type { CliIo, ParsedArgs } from './types.js';

function positive(value: unknown, name: string, fallback: number, integer: boolean): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!Number.isFinite(n) || n <= 0 || (integer && !Number.isInteger(n))) {
    throw new ValidationError(`--${name} expects a positive ${integer ? 'integer' : 'number'}, got ${String(value)}`);
  }
  return n;
}

export async function runDemoCommand(args: ParsedArgs, io: CliIo): Promise<number> {
  const shots = positive(args.values.shots, 'shots', 3, true);
  const budget = positive(args.values.budget, 'budget', 25, false);
  // The demo's own defaults: fast ticks and retries; the environment may still override.
  const config = loadConfig(io.env, {
    scheduler: { intervalSeconds: 0.05, retryBackoffSeconds: 0.2, maxConcurrentTasks: 6 },
    instanceId: 'demo',
  });
  const logger = createLogger({ level: io.env.LOG_LEVEL ?? 'warn', destination: process.stderr });
  const services = Boolean(args.values.services);
  let environment;
  try {
    environment = services ? await servicesEnvironment(config, logger) : await embeddedEnvironment();
  } catch (err) {
    if (err instanceof ServiceUnavailableError) {
      io.err(`orchestrator demo --services: ${err.message}\n  docker compose up -d postgres redis nats starts PostgreSQL, Redis and NATS (or run the demo without --services)`);
      return 1;
    }
    throw err;
  }
  const inspectUrl = typeof args.values.inspect === 'string' ? args.values.inspect : undefined;
  const inspection = inspectUrl ? await connectStatelyInspector({ url: inspectUrl, logger }) : null;
  const ui = Boolean(args.values.ui);
  // Set from callbacks (the console once the orchestrator runs): declared as they may be.
  let reviewConsole = null as ReviewConsole | null;
  let http = null as HttpServer | null;
  let stopped: Promise<unknown> | undefined;
  try {
    if (ui) {
      const access = { ...(config.console.token ? { token: config.console.token } : {}), ...(config.console.basicAuth ? { basicAuth: config.console.basicAuth } : {}) };
      try {
        http = await startHttpServer({
          ...config.http,
          logger,
          routes: [consoleRoutes({ backend: () => reviewConsole, artifactsDir: config.console.artifactsDir ?? null, access, logger, host: config.http.host })],
        });
      } catch (err) {
        io.err(`orchestrator demo --ui: ${(err as Error).message}`);
        return 1;
      }
      stopped = new Promise<void>((resolve) => {
        process.once('SIGINT', () => resolve());
        process.once('SIGTERM', () => resolve());
      });
    }
    const env = environment;
    const result = await runDemo({
      environment,
      config,
      logger,
      write: io.write ?? ((text) => io.out(text.replace(/\n$/, ''))),
      tty: io.tty ?? false,
      rejectFirst: Boolean(args.values['reject-first']),
      shots,
      budget,
      ...(inspection ? { inspect: inspection.observer } : {}),
      ...(ui
        ? {
            reviewer: 'human' as const,
            keepRunning: stopped!,
            started: async (orchestrator) => {
              reviewConsole = await ReviewConsole.start({ orchestrator, feed: { subscribe: (listener) => env.observe(listener) }, artifactsDir: config.console.artifactsDir ?? null });
              io.out(`review console: ${http!.url}/ (you decide each checkpoint there; Ctrl-C stops the demo)`);
            },
          }
        : {}),
    });
    // Stopped by Ctrl-C before the end is what a person running the console asked for.
    return result.state === 'completed' || result.state === 'interrupted' ? 0 : 1;
  } finally {
    await reviewConsole?.close();
    await http?.close().catch(() => undefined);
    await inspection?.close();
    await environment.close();
  }
}
