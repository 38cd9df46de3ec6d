import type { ConsumerMessages, JetStreamClient, JsMsg } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import { isOrchestratorError } from '../../errors.js';
import type { Logger } from '../../logger.js';
import type { InboundHandlers } from '../../ports/event-bus.js';
import type { DeadLetterPublisher } from './dead-letter.js';
import { bytesToText, decodeInbound, dispatchInbound } from './inbound.js';

export interface InboundConsumerOptions {
  connection: NatsConnection;
  js: JetStreamClient;
  stream: string;
  consumerName: string;
  /** Re-creates the streams and the durable consumer (after it was deleted under us). */
  recreate: () => Promise<void>;
  subjectPrefix: string;
  maxPayloadBytes: number;
  /** Deliveries of a message whose handler keeps failing with a retryable error before it is dead-lettered. */
  maxDeliveries: number;
  ackWaitMs: number;
  retryDelay: { baseMs: number; maxMs: number };
  /** Messages pulled ahead of the one being handled. */
  prefetch: number;
  handlers: InboundHandlers;
  deadLetters: DeadLetterPublisher;
  logger: Logger;
}

const RESTART_PAUSE_MS = 1_000;
const ACK_TIMEOUT_MS = 5_000;

function describeError(err: unknown): string {
  if (isOrchestratorError(err)) return `${err.code}: ${err.message}`;
  return err instanceof Error ? err.message : String(err);
}

/** Delay before the n-th redelivery (n = deliveries so far, 1-based): exponential, capped. */
export function retryDelay(deliveries: number, baseMs: number, maxMs: number): number {
  return Math.min(baseMs * 2 ** Math.min(Math.max(deliveries - 1, 0), 30), maxMs);
}

/**
 * The orchestrator's side of the inbound stream: one durable pull consumer whose
 * messages are handled ONE AT A TIME in stream order (so the messages of a project are
 * handled in the order they were stored; a retried message is the exception, see
 * `handle`). A message is acknowledged only after its handler resolved.
 *
 * The loop survives reconnects (the client re-issues its pull requests) and a deleted
 * consumer (re-created through `recreate`).
 */
export class InboundConsumer {
  private stopping = false;
  private messages: ConsumerMessages | null = null;
  private readonly loop: Promise<void>;
  private wake: (() => void) | null = null;
  private closing: Promise<void> | null = null;

  constructor(private readonly options: InboundConsumerOptions) {
    this.loop = this.run();
  }

  /** Stops pulling, lets the message being handled finish (and be acknowledged), hands the prefetched ones back. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      this.stopping = true;
      this.wake?.();
      const messages = this.messages;
      if (messages) void messages.close().catch(() => undefined);
      await this.loop;
    })();
    return this.closing;
  }

  private async run(): Promise<void> {
    const { js, stream, consumerName, logger } = this.options;
    let restarts = 0;
    while (!this.stopping) {
      if (this.options.connection.isClosed()) {
        logger.warn({ stream, consumer: consumerName }, 'NATS connection closed; inbound consumer stopped');
        return;
      }
      try {
        if (restarts > 0) await this.options.recreate();
        const consumer = await js.consumers.get(stream, consumerName);
        const messages = await consumer.consume({ max_messages: this.options.prefetch });
        this.messages = messages;
        if (this.stopping) void messages.close();
        void this.watch(messages);
        for await (const m of messages) {
          if (this.stopping) {
            m.nak(); // prefetched but not started: back to the stream for the next consumer
            continue;
          }
          await this.handle(m);
        }
      } catch (err) {
        if (!this.stopping) logger.warn({ err, stream, consumer: consumerName }, 'inbound consumer stopped; restarting');
      } finally {
        this.messages = null;
      }
      restarts += 1;
      if (!this.stopping) await this.pause(RESTART_PAUSE_MS);
    }
  }

  /** Ends the current `consume()` when the consumer or stream is gone, so the loop re-creates it. */
  private async watch(messages: ConsumerMessages): Promise<void> {
    try {
      for await (const s of messages.status()) {
        if (s.type === 'consumer_deleted' || s.type === 'consumer_not_found' || s.type === 'stream_not_found') {
          this.options.logger.warn({ notification: s.type }, 'inbound consumer lost; re-creating it');
          await messages.close();
          return;
        }
      }
    } catch {
      // the status stream ends with the messages
    }
  }

  private pause(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(done, ms);
      function done(): void {
        clearTimeout(timer);
        resolve();
      }
      this.wake = done;
    });
  }

  /**
   * - invalid (size, subject, JSON, schema, subject/body mismatch): dead-lettered, `term()`.
   * - handler resolved: acknowledged (after, never before).
   * - handler rejected, non-retryable OrchestratorError: dead-lettered with `code: message`.
   * - handler rejected otherwise (retryable, or an unexpected error such as a dropped
   *   database connection): `nak(delay)` with an exponential delay, and dead-lettered on
   *   the last allowed delivery. Later messages are handled meanwhile, so a retried
   *   message can be handled after a younger message of the same project; the handlers
   *   are idempotent (event ids, fencing tokens) and guarded by the state machines.
   */
  private async handle(m: JsMsg): Promise<void> {
    const o = this.options;
    const decoded = decodeInbound(o.subjectPrefix, m.subject, m.data, o.maxPayloadBytes);
    if (!decoded.ok) return this.reject(m, decoded.reason);
    const keepAlive = setInterval(() => {
      try {
        m.working(); // the handler is still on it: restart the server's ack timer
      } catch {
        // connection closed: the message will be redelivered
      }
    }, Math.max(1_000, Math.floor(o.ackWaitMs / 3)));
    let failure: { err: unknown } | null = null;
    try {
      await dispatchInbound(o.handlers, decoded.message);
    } catch (err) {
      failure = { err };
    } finally {
      clearInterval(keepAlive);
    }
    if (!failure) return this.ack(m);
    const { err } = failure;
    if (isOrchestratorError(err) && !err.retryable) return this.reject(m, describeError(err));
    const deliveries = m.info.deliveryCount;
    if (deliveries >= o.maxDeliveries) {
      return this.reject(m, `gave up after ${deliveries} deliveries: ${describeError(err)}`);
    }
    const delay = retryDelay(deliveries, o.retryDelay.baseMs, o.retryDelay.maxMs);
    o.logger.warn({ subject: m.subject, deliveries, delayMs: delay, error: describeError(err) }, 'inbound handler failed; will retry');
    m.nak(delay);
  }

  private async ack(m: JsMsg): Promise<void> {
    try {
      await m.ackAck({ timeout: ACK_TIMEOUT_MS });
    } catch (err) {
      // The effect is durable; a redelivery is recognised by the handlers (ids, tokens).
      this.options.logger.warn({ err, subject: m.subject }, 'acknowledgement not confirmed; the message may be redelivered');
    }
  }

  private async reject(m: JsMsg, reason: string): Promise<void> {
    const o = this.options;
    try {
      await o.deadLetters.send({ subject: m.subject, reason, data: bytesToText(m.data) });
      m.term();
    } catch {
      const deliveries = m.info.deliveryCount;
      if (deliveries >= o.maxDeliveries) {
        o.logger.error({ subject: m.subject, reason }, 'cannot dead-letter a message on its last delivery; it stays unhandled in the stream');
      }
      m.nak(retryDelay(deliveries, o.retryDelay.baseMs, o.retryDelay.maxMs));
    }
  }
}
