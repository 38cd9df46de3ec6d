import { jetstream, jetstreamManager, type ConsumerMessages } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import { afterAll, beforeAll } from 'vitest';
import { NatsEventBus } from '../../src/adapters/nats/event-bus.js';
import { agentConsumerName, durableConfig, ensureConsumer } from '../../src/adapters/nats/streams.js';
import type { DeadLetterMessage, TaskDispatch } from '../../src/domain/messages.js';
import type { Outbound } from '../../src/ports/event-bus.js';
import { connectTestNats, deleteStreams, randomNatsScope } from '../helpers/nats.js';
import { eventBusContract, type InboundKind } from './event-bus.contract.js';

// The shared NATS server; every test has its own subject prefix and streams (deleted after it).
let nc: NatsConnection; // the orchestrator's connection
let agentNc: NatsConnection; // agents' and other services' connection

beforeAll(async () => {
  nc = await connectTestNats('contract-bus');
  agentNc = await connectTestNats('contract-agent');
});
afterAll(async () => {
  await nc?.close();
  await agentNc?.close();
});

/** Outbound subjects (after the prefix) and their kinds. */
const OUTBOUND: [RegExp, Outbound['kind']][] = [
  [/^status\./, 'status'],
  [/^budget\./, 'budget'],
  [/^projects\./, 'project'],
  [/^approvals\.requested\./, 'approval_requested'],
  [/^approvals\.expired\./, 'approval_expired'],
];

eventBusContract(
  'NatsEventBus',
  async () => {
    const scope = randomNatsScope();
    const P = scope.subjectPrefix;
    const bus = new NatsEventBus({
      connection: nc,
      subjectPrefix: P,
      streamPrefix: scope.streamPrefix,
      maxDeliveries: 3,
      retryDelay: { baseMs: 20, maxMs: 100 },
    });
    await bus.ensureStreams();
    const js = jetstream(agentNc);
    const jsm = await jetstreamManager(agentNc);
    const dlq: DeadLetterMessage[] = [];
    const outbound: Outbound[] = [];
    const watch = agentNc.subscribe(`${P}.>`, {
      callback: (err, msg) => {
        if (err) return;
        const rest = msg.subject.slice(P.length + 1);
        if (rest === 'dlq') return void dlq.push(msg.json<DeadLetterMessage>());
        const kind = OUTBOUND.find(([pattern]) => pattern.test(rest))?.[1];
        if (kind) outbound.push({ kind, body: msg.json() } as Outbound);
      },
    });
    await agentNc.flush();
    const subjectOf = (kind: InboundKind, projectId: string, eventType = 'SCRIPT_READY'): string => {
      switch (kind) {
        case 'event':
          return `${P}.events.${projectId}.${eventType}`;
        case 'result':
          return `${P}.results.${projectId}`;
        case 'heartbeat':
          return `${P}.heartbeats.${projectId}`;
        case 'decision':
          return `${P}.approvals.decided.${projectId}`;
      }
    };
    const publish = async (subject: string, data: string): Promise<void> => {
      await js.publish(subject, data);
    };
    const body = (kind: InboundKind, projectId: string, raw: unknown): Promise<void> => {
      const type = kind === 'event' ? (raw as { type?: unknown }).type : undefined;
      return publish(subjectOf(kind, projectId, typeof type === 'string' ? type : undefined), JSON.stringify(raw));
    };
    const agents: ConsumerMessages[] = [];
    return {
      bus,
      send: {
        event: (event) => body('event', String(event.projectId), event),
        result: (projectId, result) => body('result', projectId, result),
        results: (projectId, results) => body('result', projectId, { results }),
        heartbeat: (projectId, heartbeat) => body('heartbeat', projectId, heartbeat),
        decision: (projectId, decision) => body('decision', projectId, decision),
        body,
        text: (kind, projectId, text) => publish(subjectOf(kind, projectId), text),
      },
      control: async (projectId, request) => (await agentNc.request(`${P}.control.${projectId}`, JSON.stringify(request), { timeout: 10_000 })).json(),
      query: async (kind, body) => (await agentNc.request(`${P}.query.${kind}`, JSON.stringify(body), { timeout: 10_000 })).json(),
      unsettled: async () => {
        const info = await jsm.consumers.info(bus.streams.inbound, 'orchestrator');
        return info.num_ack_pending + info.num_pending;
      },
      dlq,
      subject: (rest) => `${P}.${rest}`,
      outbound,
      agent: async (agent, onTask) => {
        // A durable pull consumer on the agent's subject of the tasks stream, as the agent SDK makes.
        const durable = agentConsumerName(agent);
        await ensureConsumer(jsm, bus.streams.tasks, durableConfig(durable, { ackWaitMs: 30_000, maxDeliver: 5, filterSubject: bus.subjects.task(agent) }));
        const consumer = await js.consumers.get(bus.streams.tasks, durable);
        const messages = await consumer.consume({ max_messages: 10 });
        agents.push(messages);
        void (async () => {
          for await (const m of messages) {
            onTask(m.json<TaskDispatch>());
            m.ack();
          }
        })();
        return async () => void (await messages.close().catch(() => undefined));
      },
      close: async () => {
        for (const messages of agents) await messages.close().catch(() => undefined);
        watch.unsubscribe();
        await deleteStreams(nc, scope.streamPrefix);
      },
    };
  },
  { maxDeliveries: 3, parsesBytes: true },
);
