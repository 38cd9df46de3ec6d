import { loadConfig, redactedConfig } from '../config/config.js';
import { ServiceRefusedError, ServiceUnavailableError } from '../errors.js';
import { createLogger } from '../logger.js';
import { connectStatelyInspector } from '../inspect/stately.js';
import { startService } from '../service.js';
import { startTracing } from './tracing.js';
import type { CliIo, ParsedArgs } from './types.js';

const HINT = 'docker compose up -d (in this repository) starts PostgreSQL, Redis and NATS on their default ports';

/**
 * `orchestrator start`: the service with the real adapters from the environment,
 * migrations applied, until SIGTERM or SIGINT, then a graceful stop and exit 0.
 */
export async function runStartCommand(args: ParsedArgs, io: CliIo): Promise<number> {
  const config = loadConfig(io.env);
  const logger = createLogger({ level: config.logLevel });
  logger.info({ config: redactedConfig(config) }, 'starting');
  // Before the service: its first spans (recovery, replays) are recorded too.
  const tracing = startTracing(config, logger);
  if (tracing) logger.info({ exporter: tracing.exporter }, 'traces on');
  const inspectUrl = typeof args.values.inspect === 'string' ? args.values.inspect : undefined;
  const inspection = inspectUrl ? await connectStatelyInspector({ url: inspectUrl, logger }) : null;
  let service;
  try {
    service = await startService(config, logger, inspection ? { inspect: inspection.observer } : {});
  } catch (err) {
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
  io.out(`orchestrator ${config.instanceId} running (NATS prefix ${config.nats.subjectPrefix}); stop with Ctrl-C or SIGTERM`);
  const signal = await new Promise<NodeJS.Signals>((resolve) => {
    process.once('SIGTERM', () => resolve('SIGTERM'));
    process.once('SIGINT', () => resolve('SIGINT'));
  });
  logger.info({ signal }, 'stopping');
  await service.stop();
  await inspection?.close();
  // The last spans (the stop's) are exported before the process ends.
  await tracing?.shutdown();
  logger.info('stopped');
  return 0;
}
