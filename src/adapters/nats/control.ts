import type { Msg, NatsConnection, Subscription } from '@nats-io/transport-node';
import type { ControlRequest, QueryRequest } from '../../domain/messages.js';
import type { Logger } from '../../logger.js';
import type { InboundHandlers } from '../../ports/event-bus.js';
import { answerControl, answerQuery, checkControl, checkQuery, invalidControl as invalid, type ControlReply } from '../inbound-order.js';
import { bytesToText, parseJson } from './inbound.js';
import { parseControlSubject, parseQuerySubject } from './subjects.js';

export type { ControlReply };

export interface ControlResponderOptions {
  connection: NatsConnection;
  subjectPrefix: string;
  /** `<prefix>.control.>` */
  subject: string;
  /** `<prefix>.query.*`: answered by `handlers.query` on the same queue group. */
  querySubject?: string;
  /** Queue group: with several orchestrators, one of them answers each request. */
  queue: string;
  maxPayloadBytes: number;
  handlers: InboundHandlers;
  logger: Logger;
}

export interface ControlResponder {
  /** Stops taking requests and waits for the ones being answered. */
  close(): Promise<void>;
}

/** Validates a control request; the reply to send when it is not acceptable. */
export function readControlRequest(
  prefix: string,
  subject: string,
  data: Uint8Array,
  maxPayloadBytes: number,
): { ok: true; projectId: string; request: ControlRequest } | { ok: false; reply: ControlReply } {
  const projectId = parseControlSubject(prefix, subject);
  if (projectId === null) return { ok: false, reply: invalid(`unexpected subject ${subject}`) };
  if (data.length > maxPayloadBytes) {
    return { ok: false, reply: invalid(`payload of ${data.length} bytes exceeds the limit of ${maxPayloadBytes} bytes`) };
  }
  const json = parseJson(bytesToText(data));
  if (!json.ok) return { ok: false, reply: invalid(json.reason) };
  const checked = checkControl(json.value);
  if (!checked.ok) return checked;
  return { ok: true, projectId, request: checked.request };
}

/** Validates a query (`<prefix>.query.<kind>`); the reply to send when it is not acceptable. */
export function readQueryRequest(
  prefix: string,
  subject: string,
  data: Uint8Array,
  maxPayloadBytes: number,
): { ok: true; request: QueryRequest } | { ok: false; reply: ControlReply } {
  const kind = parseQuerySubject(prefix, subject);
  if (kind === null) return { ok: false, reply: invalid(`unexpected subject ${subject}`) };
  if (data.length > maxPayloadBytes) {
    return { ok: false, reply: invalid(`payload of ${data.length} bytes exceeds the limit of ${maxPayloadBytes} bytes`) };
  }
  // An empty body is the query with its defaults.
  const json = data.length === 0 ? ({ ok: true, value: {} } as const) : parseJson(bytesToText(data));
  if (!json.ok) return { ok: false, reply: invalid(json.reason) };
  return checkQuery(kind, json.value);
}

/**
 * Answers `<prefix>.control.<projectId>` requests with `handlers.control`, and
 * `<prefix>.query.<kind>` ones (when `querySubject` is given) with `handlers.query`.
 * Requests are answered concurrently (they are commands and reads, not part of the
 * ordered inbound stream).
 */
export function startControlResponder(options: ControlResponderOptions): ControlResponder {
  const { connection, logger } = options;
  const inFlight = new Set<Promise<void>>();
  const listen = (subject: string, respond: (options: ControlResponderOptions, msg: Msg) => Promise<void>): Subscription =>
    connection.subscribe(subject, {
      queue: options.queue,
      callback: (err, msg) => {
        if (err) {
          logger.warn({ err, subject }, 'control subscription error');
          return;
        }
        const p = respond(options, msg)
          .catch((e: unknown) => logger.error({ err: e, subject: msg.subject }, 'control request failed'))
          .finally(() => inFlight.delete(p));
        inFlight.add(p);
      },
    });
  const subs = [listen(options.subject, answer), ...(options.querySubject ? [listen(options.querySubject, answerQueryMessage)] : [])];
  let closing: Promise<void> | null = null;
  return {
    close() {
      closing ??= (async () => {
        await Promise.all(
          subs.map(async (sub) => {
            if (sub.isClosed()) return;
            try {
              await sub.drain();
            } catch {
              sub.unsubscribe();
            }
          }),
        );
        await Promise.allSettled([...inFlight]);
      })();
      return closing;
    },
  };
}

/** Sends `reply`; one larger than the server takes is replaced by an error saying so. */
function respond(options: ControlResponderOptions, msg: Msg, reply: ControlReply): void {
  let text = JSON.stringify(reply);
  const max = options.connection.info?.max_payload;
  if (max !== undefined && Buffer.byteLength(text) > max) {
    text = JSON.stringify(invalid(`the answer takes ${Buffer.byteLength(text)} bytes, over the server's max_payload of ${max}: ask for a smaller limit`));
  }
  try {
    msg.respond(text);
  } catch (err) {
    options.logger.warn({ err, subject: msg.subject }, 'cannot send a control reply');
  }
}

async function answerQueryMessage(options: ControlResponderOptions, msg: Msg): Promise<void> {
  const { logger } = options;
  if (!msg.reply) {
    logger.warn({ subject: msg.subject }, 'query without a reply subject ignored');
    return;
  }
  const read = readQueryRequest(options.subjectPrefix, msg.subject, msg.data, options.maxPayloadBytes);
  const reply = read.ok
    ? await answerQuery(options.handlers, read.request, (err) => logger.error({ err, subject: msg.subject }, 'query handler failed'))
    : read.reply;
  respond(options, msg, reply);
}

async function answer(options: ControlResponderOptions, msg: Msg): Promise<void> {
  const { logger } = options;
  if (!msg.reply) {
    logger.warn({ subject: msg.subject }, 'control message without a reply subject ignored');
    return;
  }
  const read = readControlRequest(options.subjectPrefix, msg.subject, msg.data, options.maxPayloadBytes);
  const reply = read.ok
    ? await answerControl(options.handlers, read.projectId, read.request, (err) => logger.error({ err, subject: msg.subject }, 'control handler failed'))
    : read.reply;
  respond(options, msg, reply);
}
