import { InProcessEventBus } from '../../src/adapters/memory/event-bus.js';
import type { DeadLetterMessage } from '../../src/domain/messages.js';
import type { PipelineEventInput } from '../../src/domain/pipeline.js';
import type { Outbound } from '../../src/ports/event-bus.js';
import { eventBusContract } from './event-bus.contract.js';

// One bus per test. A message is settled when the promise of its send… resolves (the
// moment NATS would acknowledge it); the harness sends without waiting for that.
eventBusContract(
  'InProcessEventBus',
  async () => {
    const bus = new InProcessEventBus({ maxDeliveries: 3, retryDelay: { baseMs: 1, maxMs: 5 } });
    const dlq: DeadLetterMessage[] = [];
    const outbound: Outbound[] = [];
    bus.subscribe((m) => (m.kind === 'dlq' ? dlq.push(m.body) : outbound.push(m)));
    let unsettled = 0;
    const sent = (settled: Promise<void>): Promise<void> => {
      unsettled += 1;
      void settled.finally(() => (unsettled -= 1));
      return Promise.resolve();
    };
    const body = (kind: string, projectId: string, raw: unknown): Promise<void> => {
      const any = raw as never;
      switch (kind) {
        case 'event':
          return sent(bus.sendEvent(raw as PipelineEventInput));
        case 'result':
          return sent(bus.sendResult(projectId, any));
        case 'heartbeat':
          return sent(bus.sendHeartbeat(projectId, any));
        default:
          return sent(bus.sendDecision(projectId, any));
      }
    };
    return {
      bus,
      send: {
        event: (event) => sent(bus.sendEvent(event)),
        result: (projectId, result) => sent(bus.sendResult(projectId, result)),
        results: (projectId, results) => sent(bus.sendResults(projectId, results)),
        heartbeat: (projectId, heartbeat) => sent(bus.sendHeartbeat(projectId, heartbeat)),
        decision: (projectId, decision) => sent(bus.sendDecision(projectId, decision)),
        body,
      },
      control: (projectId, request) => bus.sendControl(projectId, request),
      query: (kind, body) => bus.sendQuery(kind, body),
      unsettled: async () => unsettled,
      dlq,
      subject: (rest) => rest,
      outbound,
      agent: async (agent, onTask) => {
        const off = bus.registerAgent(agent, onTask);
        return async () => void off();
      },
      close: async () => undefined,
    };
  },
  { maxDeliveries: 3, parsesBytes: false },
);
