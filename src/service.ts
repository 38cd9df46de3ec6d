import type { NatsConnection } from '@nats-io/transport-node';
import type { InspectionEvent, Observer } from 'xstate';
import type { Logger } from 'pino';
import type { OrchestratorConfig } from './config/config.js';
import { createBlackboard } from './adapters/blackboards.js';
import { connectNats } from './adapters/nats/connection.js';
import { configuredCatalog } from './config/task-types.js';
import { NatsEventBus } from './adapters/nats/event-bus.js';
import type { HealthCheck } from './ports/health.js';
import type { PrometheusMetrics } from './metrics/prometheus.js';
import { OrchestratorFactory, type Blackboard } from './orchestrator/factory.js';
import type { Orchestrator } from './orchestrator/orchestrator.js';

export interface OrchestratorService {
  orchestrator: Orchestrator;
  blackboard: Blackboard;
  bus: NatsEventBus;
  connection: NatsConnection;
  /** What `/readyz` checks: PostgreSQL, the migrations, Redis, NATS, the inbound consumer, the control subscription. */
  checks: readonly HealthCheck[];
  /** Graceful: no new dispatches, in-flight handlers and writes finish, connections close. */
  stop(): Promise<void>;
}

/**
 * The orchestrator as a service: PostgreSQL (migrations applied) and Redis as the
 * blackboard, NATS as the event bus. A server that cannot be reached fails with a
 * ServiceUnavailableError naming it and where; what was opened is closed again.
 */
export async function startService(
  config: OrchestratorConfig,
  logger: Logger,
  options: {
    inspect?: Observer<InspectionEvent>;
    /** The operator's metrics: reported to as the service runs, their scrape-time gauges read from it once started. */
    metrics?: PrometheusMetrics;
  } = {},
): Promise<OrchestratorService> {
  const { metrics } = options;
  // A task-type override the catalogue does not have fails the start before any connection.
  configuredCatalog(config.taskTypes);
  const blackboard = await createBlackboard(config, logger);
  let connection: NatsConnection;
  try {
    connection = await connectNats({ ...config.nats, name: `orchestrator-${config.instanceId}` }, logger);
  } catch (err) {
    await blackboard.close();
    throw err;
  }
  const bus = new NatsEventBus({
    connection,
    subjectPrefix: config.nats.subjectPrefix,
    maxPayloadBytes: config.nats.maxPayloadBytes,
    ackWaitMs: Math.round(config.nats.ackWaitSeconds * 1000),
    dispatchBatch: config.nats.dispatchBatch,
    logger,
    ...(metrics ? { metrics } : {}),
  });
  let orchestrator: Orchestrator;
  try {
    await bus.ensureStreams();
    orchestrator = await OrchestratorFactory.createAndStart(blackboard, bus, config, {
      logger,
      ...(options.inspect ? { inspect: options.inspect } : {}),
      ...(metrics ? { metrics } : {}),
    });
  } catch (err) {
    await connection.close().catch(() => undefined);
    await blackboard.close();
    throw err;
  }
  const started = orchestrator;
  metrics?.attach({
    ...(blackboard.stats ? { stats: blackboard.stats } : {}),
    queue: blackboard.queue,
    runtime: () => started.operatorFigures(),
  });
  const checks: HealthCheck[] = [
    ...(blackboard.checks ?? []),
    ...bus.healthChecks(),
    {
      name: 'orchestrator',
      check: async () => {
        if (!started.isRunning) throw new Error('stopped');
      },
    },
  ];
  return {
    orchestrator,
    blackboard,
    bus,
    connection,
    checks,
    async stop() {
      await orchestrator.stop();
      await connection.drain().catch(() => undefined);
      await blackboard.close();
    },
  };
}
