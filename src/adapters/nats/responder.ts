import type { Msg, NatsConnection, Subscription } from '@nats-io/transport-node';
import type { Logger } from '../../logger.js';
import type { InboundHandlers } from '../../ports/event-bus.js';
import type { Metrics } from '../../ports/metrics.js';

/** A request-reply responder on a subject (control requests, queries). */
export interface Responder {
  /**
   * Whether the subscription is attached, or why not: the server refused it (a user
   * without permission on the subject: nats.js closes the subscription with the error).
   */
  readonly state: { attached: boolean; reason: string };
  /** Stops taking requests and waits for the ones being answered. */
  close(): Promise<void>;
}

/** What a responder of the contract's request-reply subjects (control, queries) is started with. */
export interface RequestSubjectOptions {
  connection: NatsConnection;
  subjectPrefix: string;
  /** The subject (a wildcard: `<prefix>.control.>`, `<prefix>.query.*`). */
  subject: string;
  /** Queue group: with several orchestrators, one of them answers each request. */
  queue: string;
  maxPayloadBytes: number;
  handlers: InboundHandlers;
  logger: Logger;
  /** Where each answered request is reported (handled, or refused when the reply is an error). */
  metrics?: Pick<Metrics, 'inbound'>;
}

export interface ResponderOptions {
  connection: NatsConnection;
  subject: string;
  queue: string;
  logger: Logger;
  /** What the requests are, for the log lines ("control request", "query"). */
  what: string;
  /** Answers one request (a failure is logged; the requester times out). */
  answer(msg: Msg): Promise<void>;
}

/**
 * Subscribes `answer` to the subject in the queue group. Requests are answered
 * concurrently (they are commands and reads, not part of the ordered inbound stream);
 * `close` drains the subscription, then waits for the answers under way.
 */
export function startResponder(options: ResponderOptions): Responder {
  const { connection, logger, subject, what } = options;
  const inFlight = new Set<Promise<void>>();
  let refused: string | null = null;
  const sub: Subscription = connection.subscribe(subject, {
    queue: options.queue,
    callback: (err, msg) => {
      if (err) {
        refused = `${subject}: ${err.message}`;
        logger.error({ err, subject }, `${what} subscription refused; ${what}s are not answered`);
        return;
      }
      const p = options
        .answer(msg)
        .catch((e: unknown) => logger.error({ err: e, subject: msg.subject }, `${what} failed`))
        .finally(() => inFlight.delete(p));
      inFlight.add(p);
    },
  });
  let closing: Promise<void> | null = null;
  return {
    get state() {
      if (refused !== null) return { attached: false, reason: refused };
      if (sub.isClosed()) return { attached: false, reason: `${subject}: subscription closed` };
      return { attached: true, reason: '' };
    },
    close() {
      closing ??= (async () => {
        if (!sub.isClosed()) {
          try {
            await sub.drain();
          } catch {
            sub.unsubscribe();
          }
        }
        await Promise.allSettled([...inFlight]);
      })();
      return closing;
    },
  };
}
