import { jetstream } from '@nats-io/jetstream';
import type { Logger } from 'pino';
import type { OrchestratorConfig } from '../config/config.js';
import { createBlackboard } from '../adapters/blackboards.js';
import { connectNats } from '../adapters/nats/connection.js';
import { NatsEventBus } from '../adapters/nats/event-bus.js';
import { natsSubjects } from '../adapters/nats/subjects.js';
import { createAgentWorker } from '../agent/worker.js';
import { natsOutboundFeed } from '../adapters/nats/outbound-feed.js';
import type { DemoEnvironment } from './demo.js';

/**
 * The demo on the real servers: PostgreSQL and Redis as the blackboard, NATS as the bus,
 * the agents as NATS workers (the agent SDK), decisions published on the approvals subject
 * and the progress read from the status, budget, approval and project subjects.
 */
export async function servicesEnvironment(config: OrchestratorConfig, logger: Logger): Promise<DemoEnvironment> {
  const blackboard = await createBlackboard(config, logger);
  const connection = await connectNats({ ...config.nats, name: `orchestrator-demo-${config.instanceId}` }, logger).catch(async (err: unknown) => {
    await blackboard.close();
    throw err;
  });
  const prefix = config.nats.subjectPrefix;
  const subjects = natsSubjects(prefix);
  const bus = new NatsEventBus({ connection, subjectPrefix: prefix, maxPayloadBytes: config.nats.maxPayloadBytes, logger });
  await bus.ensureStreams();
  const js = jetstream(connection);
  const feed = natsOutboundFeed(connection, prefix, logger);
  return {
    blackboard,
    bus,
    async startAgent(agent, handle) {
      const worker = await createAgentWorker({
        connection,
        agent,
        subjectPrefix: prefix,
        concurrency: 4,
        logger,
        handle: async (task) => {
          const result = await handle(task);
          if (result.status === 'failed') throw new Error(result.error ?? 'failed');
          return { ...(result.output ? { output: result.output } : {}), ...(result.actualCost === undefined ? {} : { actualCost: result.actualCost }) };
        },
      });
      return () => worker.stop();
    },
    observe: (listener) => feed.subscribe(listener),
    async decide(projectId, decision) {
      await js.publish(subjects.approvalDecided(projectId), JSON.stringify(decision), { msgID: `${decision.approvalId}:${decision.decision}` });
    },
    async close() {
      await connection.drain().catch(() => undefined);
      await blackboard.close();
    },
  };
}
