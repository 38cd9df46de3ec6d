import { loadConfig } from '../config/config.js';
import { ValidationError } from '../errors.js';
import { createLogger } from '../logger.js';
import { runDemo } from '../demo/demo.js';
import { embeddedEnvironment } from '../demo/embedded-environment.js';
import { servicesEnvironment } from '../demo/services-environment.js';
import { connectStatelyInspector } from '../inspect/stately.js';
import { ServiceUnavailableError } from '../errors.js';
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
  try {
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
    });
    return result.state === 'completed' ? 0 : 1;
  } finally {
    await inspection?.close();
    await environment.close();
  }
}
