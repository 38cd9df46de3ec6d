import { jetstream, jetstreamManager, type JetStreamClient, type JetStreamManager } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import type { TaskDispatch } from '../../domain/messages.js';
import { AgentName } from '../../domain/task.js';
import { ClosedError, ServiceUnavailableError, ValidationError } from '../../errors.js';
import { silentLogger, type Logger } from '../../logger.js';
import type { DispatchItem, EventBus, InboundHandlers, InboundSubscription, Outbound } from '../../ports/event-bus.js';
import type { HealthCheck } from '../../ports/health.js';
import { noMetrics, type Metrics } from '../../ports/metrics.js';
import { startControlResponder, type ControlResponder } from './control.js';
import { followConnection } from './connection.js';
import { startQueryResponder, type QueryResponder } from './query.js';
import { DEFAULT_DLQ_DATA_LIMIT, DeadLetterPublisher } from './dead-letter.js';
import { windowSize } from '../inbound-order.js';
import { InboundConsumer } from './inbound-consumer.js';
import { JetStreamPublisher } from './jetstream-publisher.js';
import {
  INBOUND_CONSUMER,
  defaultStreamPrefix,
  durableConfig,
  ensureConsumer,
  ensureStream,
  jetstreamFailure,
  streamConfig,
  streamNames,
  type StreamNames,
  type StreamSettings,
} from './streams.js';
import { natsSubjects, subjectTemplates, type NatsSubjects, type SubjectTemplates } from './subjects.js';
import { sendTraced } from './trace-headers.js';
import { contextOfTraceParent, inTraceOf, linksTo, tracingOn } from '../../tracing/tracing.js';
import { dispatchMessages } from './dispatch-messages.js';

export interface NatsEventBusOptions extends StreamSettings {
  /** An open connection (see `connectNats`); the bus never closes it. */
  connection: NatsConnection;
  /** First token(s) of every subject; default `lap`. */
  subjectPrefix?: string;
  /** Prefix of the stream names (`<P>_INBOUND`, `<P>_TASKS`, `<P>_DLQ`); default: the subject prefix upper-cased. */
  streamPrefix?: string;
  /** Inbound messages (and control requests) larger than this are rejected unparsed; default 1 MiB. */
  maxPayloadBytes?: number;
  logger?: Logger;
  /** Deliveries of an inbound message whose handler keeps failing retryably, then it is dead-lettered; default 5. */
  maxDeliveries?: number;
  /** Time the server waits for an acknowledgement before redelivering; kept alive while a handler runs; default 10 s (`DEFAULT_ACK_WAIT_MS`). */
  ackWaitMs?: number;
  /**
   * Pause before another delivery after a retryable handler failure: base * 2^(deliveries-1),
   * capped; default 1 s .. 30 s. (The `nak` delay of a result, heartbeat or results batch;
   * an event or decision is retried in place, in its project's turn.)
   */
  retryDelay?: { baseMs?: number; maxMs?: number };
  /**
   * Inbound messages held at a time (taken from the stream, not yet acknowledged): results
   * and heartbeats are handled concurrently within this window, events and decisions are
   * barriers (see inbound-order.ts); default 256. The server's own limit on unacknowledged
   * messages of the consumer is raised to it when it is larger than 1 000.
   */
  inboundConcurrency?: number;
  /**
   * Inbound payload bytes held at a time (taken from the stream, not yet acknowledged): a
   * backlog of big messages is taken only as far as this allows (each held message costs
   * its payload and its decoded copies); one message is always taken, whatever its size;
   * default 16 MiB (`DEFAULT_INBOUND_MAX_BYTES`).
   */
  inboundMaxBytes?: number;
  /** @deprecated Ignored: the inbound consumer pulls as many messages as `inboundConcurrency` has room for. */
  prefetch?: number;
  /** Name of the durable inbound consumer; default `orchestrator`. */
  consumerName?: string;
  /** Queue group of the control responder; default `orchestrator-control`. */
  controlQueue?: string;
  /** Dead letters carry at most this many characters of the rejected message; default 64 Ki. */
  dlqDataLimit?: number;
  /** Where settled inbound messages and dead letters are reported (see src/metrics/); default: nowhere. */
  metrics?: Pick<Metrics, 'inbound' | 'deadLetter'>;
  /**
   * DISPATCH_BATCH: agents that take several dispatches per message (`{"dispatches":[…]}`),
   * with the most one message carries; an agent not named gets one message per dispatch.
   */
  dispatchBatch?: Readonly<Record<string, number>>;
}

/** The server's default limit on unacknowledged messages of a consumer. */
const SERVER_MAX_ACK_PENDING = 1_000;

/** Default `inboundMaxBytes`: sixteen messages at the default payload limit (1 MiB), thousands of ordinary results. */
export const DEFAULT_INBOUND_MAX_BYTES = 16 * 1024 * 1024;

/** Timeout of one JetStream publish (dispatches, dead letters). */
const PUBLISH_TIMEOUT_MS = 10_000;

/**
 * How long the server waits for an inbound message's acknowledgement before it offers the
 * message again: a crashed orchestrator's unacknowledged messages come back after this.
 * A handler that runs longer keeps its message with `working()` every third of it.
 */
export const DEFAULT_ACK_WAIT_MS = 10_000;

/**
 * The EventBus over NATS JetStream (see streams.ts for the layout):
 * - inbound events, results, heartbeats and decisions are read from the `<P>_INBOUND`
 *   work-queue stream by one durable consumer, in stream order: results and heartbeats
 *   handled concurrently (up to `inboundConcurrency` at a time), events and decisions as
 *   barriers (one at a time per project, in stream order; see inbound-order.ts); each message
 *   acknowledged only after its handler resolved, dead-lettered when bad, retried when its
 *   handler failed retryably (InboundConsumer; the rules are those of inbound-order.ts,
 *   shared with the in-process bus and checked on both by the EventBus contract suite);
 * - dispatches go through JetStream into `<P>_TASKS` with `Nats-Msg-Id` =
 *   `<taskId>:<fencingToken>` (a repeated dispatch of the same attempt is dropped);
 * - outbound notifications are core publishes (at most once, like the memory bus);
 *   dead letters are stored in `<P>_DLQ`;
 * - control requests are answered on `<prefix>.control.<projectId>`, queries on
 *   `<prefix>.query.<kind>` (one queue group).
 */
export class NatsEventBus implements EventBus {
  readonly subjects: NatsSubjects;
  private readonly templates: SubjectTemplates;
  readonly streams: StreamNames;
  private readonly nc: NatsConnection;
  private readonly js: JetStreamClient;
  /** Dispatches: acknowledgements collected on one subscription (see jetstream-publisher.ts). */
  private readonly dispatches: JetStreamPublisher;
  private readonly logger: Logger;
  private readonly deadLetters: DeadLetterPublisher;
  private readonly maxPayloadBytes: number;
  private readonly settings: StreamSettings;
  private readonly inboundConcurrency: number;
  private readonly inboundMaxBytes: number;
  private setupPromise: Promise<JetStreamManager> | null = null;
  private active: InboundSubscription | null = null;
  /** Agent names already checked. */
  private readonly agentNames = new Set<string>();
  /** False while the connection is down: a notification is refused then (nats.js would drop it without a word). */
  private connected = true;
  private readonly metrics: Pick<Metrics, 'inbound' | 'deadLetter'>;
  /** The consumption running (for readiness). */
  private running: { consumer: InboundConsumer; control: ControlResponder; queries: QueryResponder } | null = null;

  constructor(private readonly options: NatsEventBusOptions) {
    const prefix = options.subjectPrefix ?? 'lap';
    this.nc = options.connection;
    this.subjects = natsSubjects(prefix);
    this.templates = subjectTemplates(prefix);
    this.streams = streamNames(options.streamPrefix ?? defaultStreamPrefix(prefix));
    this.logger = options.logger ?? silentLogger();
    this.js = jetstream(this.nc, { timeout: PUBLISH_TIMEOUT_MS });
    this.dispatches = new JetStreamPublisher(this.nc, PUBLISH_TIMEOUT_MS);
    this.maxPayloadBytes = options.maxPayloadBytes ?? 1_048_576;
    this.inboundConcurrency = windowSize(options.inboundConcurrency);
    this.metrics = options.metrics ?? noMetrics;
    this.deadLetters = new DeadLetterPublisher(this.js, this.subjects.dlq, this.logger, options.dlqDataLimit ?? DEFAULT_DLQ_DATA_LIMIT, this.metrics);
    this.inboundMaxBytes = windowSize(options.inboundMaxBytes ?? DEFAULT_INBOUND_MAX_BYTES, 'inboundMaxBytes');
    const { duplicateWindowMs, maxAgeMs, dlqMaxAgeMs, replicas } = options;
    this.settings = { duplicateWindowMs, maxAgeMs, dlqMaxAgeMs, replicas };
    const stop = followConnection(this.nc, { disconnect: () => (this.connected = false), reconnect: () => (this.connected = true) });
    void this.nc.closed().then(stop);
  }

  /** Creates or updates the three streams; idempotent. Called by the other methods; callable at start-up to fail early. */
  async ensureStreams(): Promise<void> {
    await this.setup();
  }

  dispatchBatchSize(agent: string): number {
    return this.options.dispatchBatch?.[agent] ?? 1;
  }

  async dispatchTask(agent: string, task: TaskDispatch): Promise<void> {
    await this.dispatchable(agent, task.taskId);
    const subject = this.subjects.task(agent);
    const id = `${task.taskId}:${task.fencingToken}`;
    try {
      // Traced: a PRODUCER span, a child of the active one (the task's ingest, see the dispatch outbox), in the headers.
      if (tracingOn()) await sendTraced(this.templates.task, subject, id, (ctx) => this.dispatches.publish(subject, JSON.stringify(task), id, ctx));
      else await this.dispatches.publish(subject, JSON.stringify(task), id);
    } catch (err) {
      throw jetstreamFailure(`dispatch of task ${task.taskId} to ${agent}`, err);
    }
  }

  /**
   * Several dispatches per message (`dispatchMessages`): a message of many has the
   * `Nats-Msg-Id` `dispatches:<hash of its attempts>`, so a retry of the same message is
   * dropped as a duplicate; traced, its PRODUCER span is a child of its first task's ingest,
   * linked to the others'.
   */
  async dispatchTasks(agent: string, items: readonly DispatchItem[]): Promise<(Error | null)[]> {
    const outcomes: (Error | null)[] = items.map(() => null);
    try {
      await this.dispatchable(agent, items[0]?.task.taskId ?? '');
    } catch (err) {
      return outcomes.map(() => err as Error);
    }
    const subject = this.subjects.task(agent);
    await Promise.all(
      dispatchMessages(items, this.dispatchBatchSize(agent)).map(async (message) => {
        try {
          if (message.indexes.length === 1) {
            const { task, traceParent } = items[message.indexes[0]!]!;
            return await inTraceOf(traceParent, () => this.dispatchTask(agent, task));
          }
          const { body, id } = message;
          if (!tracingOn()) return await this.dispatches.publish(subject, body, id);
          const contexts = message.indexes.map((i) => items[i]!.traceParent).map((tp) => (tp ? contextOfTraceParent(tp) : undefined));
          await sendTraced(this.templates.task, subject, id, (ctx) => this.dispatches.publish(subject, body, id, ctx), {
            ...(contexts[0] ? { parent: contexts[0] } : {}),
            links: linksTo(contexts.slice(1)),
            count: message.indexes.length,
          });
        } catch (err) {
          const failure = jetstreamFailure(`dispatch of ${message.indexes.length} tasks to ${agent}`, err);
          for (const i of message.indexes) outcomes[i] = failure;
        }
      }),
    );
    return outcomes;
  }

  /** A valid agent name, a bus not closed, the streams in place. */
  private async dispatchable(agent: string, taskId: string): Promise<void> {
    if (!this.agentNames.has(agent) && !AgentName.safeParse(agent).success) {
      throw new ValidationError(`cannot dispatch ${taskId}: invalid agent name`, [`agent=${JSON.stringify(agent)}`]);
    }
    this.agentNames.add(agent);
    this.checkOpen();
    await this.setup();
  }

  async publish(message: Outbound): Promise<void> {
    this.checkOpen();
    if (message.kind === 'dlq') {
      await this.setup();
      await this.deadLetters.send(message.body);
      return;
    }
    const subject = this.outboundSubject(message);
    // Refused, not lost: the caller keeps it and tries again (see NoticeTracker).
    if (!this.connected) throw new ServiceUnavailableError('nats', `not connected to NATS: ${subject} not published`);
    try {
      this.nc.publish(subject, JSON.stringify(message.body));
    } catch (err) {
      throw new ServiceUnavailableError('nats', `publish on ${subject} failed: ${(err as Error).message}`, { cause: err });
    }
    // A budget status is checked against the project's row once published (NoticeTracker):
    // it resolves once the server has it, ahead of whatever any connection publishes next.
    if (message.kind === 'budget') await this.serverHas(subject);
  }

  /** The server answered a flush sent after the last publish (within the publish timeout). */
  private async serverHas(subject: string): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    try {
      await Promise.race([
        this.nc.flush(),
        new Promise<never>((_, reject) => {
          timer = setTimeout(() => reject(new Error(`no answer to a flush within ${PUBLISH_TIMEOUT_MS} ms`)), PUBLISH_TIMEOUT_MS);
        }),
      ]);
    } catch (err) {
      throw new ServiceUnavailableError('nats', `publish on ${subject} not confirmed: ${(err as Error).message}`, { cause: err });
    } finally {
      clearTimeout(timer);
    }
  }

  /**
   * Starts the inbound consumer and the control responder. One consumption per bus at a
   * time; `close()` of the returned subscription stops taking messages and waits for the
   * handlers running, after which another `consume()` may start.
   */
  async consume(handlers: InboundHandlers): Promise<InboundSubscription> {
    if (this.active) throw new ValidationError('this NatsEventBus is already consuming; close the subscription first');
    this.checkOpen();
    const placeholder: InboundSubscription = { close: async () => undefined };
    this.active = placeholder;
    try {
      await this.setup();
      await this.ensureInboundConsumer();
    } catch (err) {
      this.active = null;
      throw err;
    }
    const o = this.options;
    const consumer = new InboundConsumer({
      connection: this.nc,
      js: this.js,
      stream: this.streams.inbound,
      consumerName: this.consumerName,
      recreate: async () => {
        this.setupPromise = null;
        await this.setup();
        await this.ensureInboundConsumer();
      },
      subjectPrefix: this.subjects.prefix,
      templates: this.templates,
      maxPayloadBytes: this.maxPayloadBytes,
      maxDeliveries: this.maxDeliveries,
      ackWaitMs: this.ackWaitMs,
      retryDelay: { baseMs: o.retryDelay?.baseMs ?? 1_000, maxMs: o.retryDelay?.maxMs ?? 30_000 },
      concurrency: this.inboundConcurrency,
      maxHeldBytes: this.inboundMaxBytes,
      handlers,
      deadLetters: this.deadLetters,
      logger: this.logger,
      metrics: this.metrics,
    });
    const control = startControlResponder({
      connection: this.nc,
      subjectPrefix: this.subjects.prefix,
      subject: this.subjects.controlWildcard,
      queue: o.controlQueue ?? 'orchestrator-control',
      maxPayloadBytes: this.maxPayloadBytes,
      handlers,
      logger: this.logger,
      metrics: this.metrics,
    });
    const queries = startQueryResponder({
      connection: this.nc,
      subjectPrefix: this.subjects.prefix,
      subject: this.subjects.queryWildcard,
      queue: o.controlQueue ?? 'orchestrator-control',
      maxPayloadBytes: this.maxPayloadBytes,
      handlers,
      logger: this.logger,
      metrics: this.metrics,
    });
    this.running = { consumer, control, queries };
    // The control subscription is registered at the server once this returns.
    await this.nc.flush().catch(() => undefined);
    let closing: Promise<void> | null = null;
    const subscription: InboundSubscription = {
      close: () => {
        closing ??= (async () => {
          await Promise.all([consumer.close(), control.close(), queries.close()]);
          if (this.active === subscription) {
            this.active = null;
            this.running = null;
          }
        })();
        return closing;
      },
    };
    this.active = subscription;
    this.logger.info({ stream: this.streams.inbound, consumer: this.consumerName }, 'consuming inbound messages');
    return subscription;
  }

  /**
   * Readiness of the bus: `nats` (connected, and the server answers a flush),
   * `inbound_consumer` (the durable consumer is found and pulled from) and
   * `control_subscription` (the server took the subscription to `<prefix>.control.>`: a
   * user without permission on it is refused, and this says so) and `query_subscription`
   * (the same for `<prefix>.query.*`).
   */
  healthChecks(options: { timeoutMs?: number } = {}): HealthCheck[] {
    const timeoutMs = options.timeoutMs ?? 2_000;
    const consuming = (): { consumer: InboundConsumer; control: ControlResponder; queries: QueryResponder } => {
      if (!this.running) throw new Error('not consuming');
      return this.running;
    };
    return [
      {
        name: 'nats',
        check: async () => {
          if (this.nc.isClosed()) throw new Error('connection closed');
          if (!this.connected) throw new Error('disconnected (reconnecting)');
          let timer: NodeJS.Timeout | undefined;
          try {
            await Promise.race([
              this.nc.flush(),
              new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`no answer to a flush within ${timeoutMs} ms`)), timeoutMs))),
            ]);
          } finally {
            clearTimeout(timer);
          }
        },
      },
      {
        name: 'inbound_consumer',
        check: async () => {
          const { attached, reason } = consuming().consumer.state;
          if (!attached) throw new Error(reason);
        },
      },
      {
        name: 'control_subscription',
        check: async () => {
          const { attached, reason } = consuming().control.state;
          if (!attached) throw new Error(reason);
        },
      },
      {
        name: 'query_subscription',
        check: async () => {
          const { attached, reason } = consuming().queries.state;
          if (!attached) throw new Error(reason);
        },
      },
    ];
  }

  private get consumerName(): string {
    return this.options.consumerName ?? INBOUND_CONSUMER;
  }
  private get maxDeliveries(): number {
    return this.options.maxDeliveries ?? 5;
  }
  private get ackWaitMs(): number {
    return this.options.ackWaitMs ?? DEFAULT_ACK_WAIT_MS;
  }

  private async ensureInboundConsumer(): Promise<void> {
    const jsm = await this.setup();
    const window = this.inboundConcurrency;
    const config = durableConfig(this.consumerName, {
      ackWaitMs: this.ackWaitMs,
      maxDeliver: this.maxDeliveries,
      // The server default (1 000) would cap a larger window; a smaller one needs no change.
      ...(window > SERVER_MAX_ACK_PENDING ? { maxAckPending: window } : {}),
    });
    await ensureConsumer(jsm, this.streams.inbound, config);
  }

  private setup(): Promise<JetStreamManager> {
    this.setupPromise ??= (async () => {
      let jsm: JetStreamManager;
      try {
        jsm = await jetstreamManager(this.nc, { timeout: PUBLISH_TIMEOUT_MS });
      } catch (err) {
        throw jetstreamFailure('JetStream access (is JetStream enabled on the server?)', err);
      }
      for (const role of ['inbound', 'tasks', 'dlq'] as const) {
        await ensureStream(jsm, streamConfig(role, this.streams, this.subjects, this.settings), 'update');
      }
      return jsm;
    })();
    const attempt = this.setupPromise;
    attempt.catch(() => {
      if (this.setupPromise === attempt) this.setupPromise = null;
    });
    return attempt;
  }

  private checkOpen(): void {
    if (this.nc.isClosed()) throw new ClosedError('NATS connection');
  }

  private outboundSubject(message: Exclude<Outbound, { kind: 'dlq' }>): string {
    const s = this.subjects;
    switch (message.kind) {
      case 'status':
        return s.status(message.body.projectId, message.body.taskId);
      case 'budget':
        return s.budget(message.body.projectId);
      case 'project':
        return s.project(message.body.projectId);
      case 'approval_requested':
        return s.approvalRequested(message.body.projectId);
      case 'approval_expired':
        return s.approvalExpired(message.body.projectId);
    }
  }
}
