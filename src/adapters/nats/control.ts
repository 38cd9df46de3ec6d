import type { Msg, NatsConnection, Subscription } from '@nats-io/transport-node';
import { ControlRequest } from '../../domain/messages.js';
import { ErrorCode, isOrchestratorError } from '../../errors.js';
import type { Logger } from '../../logger.js';
import type { InboundHandlers } from '../../ports/event-bus.js';
import { bytesToText, formatIssues, parseJson } from './inbound.js';
import { parseControlSubject } from './subjects.js';

export type ControlReply = { ok: true; result: unknown } | { ok: false; error: { code: string; message: string } };

export interface ControlResponderOptions {
  connection: NatsConnection;
  subjectPrefix: string;
  /** `<prefix>.control.>` */
  subject: string;
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

function invalid(message: string): ControlReply {
  return { ok: false, error: { code: ErrorCode.Validation, message } };
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
  const parsed = ControlRequest.safeParse(json.value);
  if (!parsed.success) return { ok: false, reply: invalid(`schema violation: ${formatIssues(parsed.error)}`) };
  return { ok: true, projectId, request: parsed.data };
}

/**
 * Answers `<prefix>.control.<projectId>` requests with `handlers.control`. Requests are
 * answered concurrently (they are commands, not part of the ordered inbound stream).
 */
export function startControlResponder(options: ControlResponderOptions): ControlResponder {
  const { connection, logger } = options;
  const inFlight = new Set<Promise<void>>();
  const sub: Subscription = connection.subscribe(options.subject, {
    queue: options.queue,
    callback: (err, msg) => {
      if (err) {
        logger.warn({ err }, 'control subscription error');
        return;
      }
      const p = answer(options, msg)
        .catch((e: unknown) => logger.error({ err: e, subject: msg.subject }, 'control request failed'))
        .finally(() => inFlight.delete(p));
      inFlight.add(p);
    },
  });
  let closing: Promise<void> | null = null;
  return {
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

async function answer(options: ControlResponderOptions, msg: Msg): Promise<void> {
  const { logger } = options;
  if (!msg.reply) {
    logger.warn({ subject: msg.subject }, 'control message without a reply subject ignored');
    return;
  }
  const read = readControlRequest(options.subjectPrefix, msg.subject, msg.data, options.maxPayloadBytes);
  let reply: ControlReply;
  if (!read.ok) {
    reply = read.reply;
  } else {
    try {
      const result = await options.handlers.control(read.projectId, read.request);
      reply = { ok: true, result: result ?? null };
    } catch (err) {
      const code = isOrchestratorError(err) ? err.code : 'ERR_INTERNAL';
      reply = { ok: false, error: { code, message: err instanceof Error ? err.message : String(err) } };
      if (!isOrchestratorError(err)) logger.error({ err, subject: msg.subject }, 'control handler failed');
    }
  }
  try {
    msg.respond(JSON.stringify(reply));
  } catch (err) {
    logger.warn({ err, subject: msg.subject }, 'cannot send a control reply');
  }
}
