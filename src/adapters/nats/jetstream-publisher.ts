import { createInbox, headers, type Msg, type NatsConnection, type Subscription } from '@nats-io/transport-node';
import { ServiceUnavailableError } from '../../errors.js';
import type { Context } from '../../tracing/tracing.js';
import { followConnection, inboxPrefixOf } from './connection.js';
import { injectTrace } from './trace-headers.js';

/** What the stream answers to a stored message. */
export interface PubAck {
  stream: string;
  seq: number;
  duplicate: boolean;
}

interface Pending {
  resolve(ack: PubAck): void;
  reject(err: Error): void;
  sentAt: number;
}

/**
 * JetStream publishes with their acknowledgements collected on one subscription.
 *
 * `JetStreamClient.publish` makes a request per message: a reply inbox registration, a
 * timer and (in nats.js 3) a `RequestError` with its stack trace, even when it succeeds —
 * on the dispatch hot path that was a tenth of the orchestrator's CPU. Here every message
 * carries its own reply subject under one wildcard subscription (`<inbox>.<token>`), the
 * stream's acknowledgement resolves it there, and one sweep a second fails those that got
 * none in time. Same guarantees: a publish resolves only once the stream stored the
 * message (or found it a duplicate by `Nats-Msg-Id`), and rejects with the stream's
 * error, a "no stream" answer (503), or a timeout.
 *
 * The subscription is made on the first publish and lives as long as the connection.
 * While the connection is down a publish fails at once, and the publishes waiting for
 * their acknowledgement fail when it is lost: nats.js would drop their bytes without a
 * word (see followConnection), and their callers would wait for the timeout before
 * trying again. Tried again, a message the stream did store is found a duplicate by its
 * `Nats-Msg-Id`.
 */
export class JetStreamPublisher {
  private readonly pending = new Map<string, Pending>();
  private prefix: string | null = null;
  private sub: Subscription | null = null;
  private sweeper: ReturnType<typeof setInterval> | null = null;
  private seq = 0;
  private connected = true;

  constructor(
    private readonly nc: NatsConnection,
    private readonly timeoutMs: number,
  ) {
    const stop = followConnection(nc, {
      disconnect: () => {
        this.connected = false;
        const lost = new ServiceUnavailableError('nats', 'the NATS connection was lost before the stream acknowledged');
        for (const p of this.pending.values()) p.reject(lost);
        this.pending.clear();
      },
      reconnect: () => (this.connected = true),
    });
    void nc.closed().then(stop);
  }

  /**
   * Publishes `data` to `subject` with the `Nats-Msg-Id` header (and, given `trace`, the
   * trace context of its `send` span); resolves on the stream's acknowledgement.
   */
  publish(subject: string, data: string, msgId: string, trace?: Context): Promise<PubAck> {
    if (!this.connected) return Promise.reject(new ServiceUnavailableError('nats', `not connected to NATS: ${subject} not published`));
    const prefix = this.start();
    const token = (++this.seq).toString(36);
    const h = headers();
    h.set('Nats-Msg-Id', msgId);
    if (trace) injectTrace(trace, h);
    return new Promise<PubAck>((resolve, reject) => {
      this.pending.set(token, { resolve, reject, sentAt: Date.now() });
      try {
        this.nc.publish(subject, data, { reply: `${prefix}.${token}`, headers: h });
      } catch (err) {
        this.pending.delete(token);
        reject(err as Error);
      }
    });
  }

  /** Number of publishes waiting for their acknowledgement. */
  get inFlight(): number {
    return this.pending.size;
  }

  private start(): string {
    if (this.prefix !== null) return this.prefix;
    const prefix = createInbox(inboxPrefixOf(this.nc));
    this.prefix = prefix;
    this.sub = this.nc.subscribe(`${prefix}.*`, { callback: (err, msg) => this.onReply(err, msg) });
    this.sweeper = setInterval(() => this.sweep(), 1_000);
    this.sweeper.unref();
    void this.nc.closed().then(() => this.stop(new ServiceUnavailableError('nats', 'NATS connection closed before the stream acknowledged')));
    return prefix;
  }

  private onReply(err: Error | null, msg: Msg): void {
    if (err) return this.stop(err);
    const token = msg.subject.slice(this.prefix!.length + 1);
    const p = this.pending.get(token);
    if (!p) return; // timed out already
    this.pending.delete(token);
    if (msg.headers?.code === 503) return p.reject(new ServiceUnavailableError('nats', `no stream takes ${msg.subject} (503 no responders)`));
    try {
      const ack = msg.json<{ stream?: string; seq?: number; duplicate?: boolean; error?: { code?: number; description?: string } }>();
      if (ack.error || !ack.stream) {
        p.reject(new ServiceUnavailableError('nats', `the stream refused the message: ${ack.error?.description ?? 'invalid acknowledgement'}`));
      } else {
        p.resolve({ stream: ack.stream, seq: ack.seq ?? 0, duplicate: ack.duplicate === true });
      }
    } catch (e) {
      p.reject(new ServiceUnavailableError('nats', 'unreadable acknowledgement from the stream', { cause: e }));
    }
  }

  private sweep(): void {
    const limit = Date.now() - this.timeoutMs;
    for (const [token, p] of this.pending) {
      if (p.sentAt > limit) continue;
      this.pending.delete(token);
      p.reject(new ServiceUnavailableError('nats', `no acknowledgement from the stream within ${this.timeoutMs} ms`));
    }
  }

  private stop(err: Error): void {
    if (this.sweeper) clearInterval(this.sweeper);
    this.sweeper = null;
    this.sub?.unsubscribe();
    this.sub = null;
    this.prefix = null;
    for (const p of this.pending.values()) p.reject(err);
    this.pending.clear();
  }
}
