import type { Msg } from '@nats-io/transport-node';
import type { QueryRequest } from '../../domain/messages.js';
import { noMetrics } from '../../ports/metrics.js';
import { answerQuery, checkQuery, invalidControl as invalid, type ControlReply } from '../inbound-order.js';
import { bytesToText, parseJson } from './inbound.js';
import { startResponder, type RequestSubjectOptions, type Responder } from './responder.js';
import { parseQuerySubject } from './subjects.js';

/** `subject`: `<prefix>.query.*`, in the control responder's queue group; answers are reported as kind `query`. */
export type QueryResponderOptions = RequestSubjectOptions;

export type QueryResponder = Responder;

/** Validates a query (`<prefix>.query.<kind>`); the reply to send when it is not acceptable. An empty body is the query with its defaults. */
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
  const json = data.length === 0 ? ({ ok: true, value: {} } as const) : parseJson(bytesToText(data));
  if (!json.ok) return { ok: false, reply: invalid(json.reason) };
  return checkQuery(kind, json.value);
}

/**
 * Answers `<prefix>.query.<kind>` requests with `handlers.query` (the read side: a page of
 * projects, of a project's tasks, of dead letters), concurrently, in the envelope of the
 * control subject. An answer larger than the server's max_payload is replaced by an error
 * asking for a smaller limit (nats.js would refuse to send it, and the asker would time out).
 */
export function startQueryResponder(options: QueryResponderOptions): QueryResponder {
  return startResponder({ connection: options.connection, subject: options.subject, queue: options.queue, logger: options.logger, what: 'query', answer: (msg) => answer(options, msg) });
}

async function answer(options: QueryResponderOptions, msg: Msg): Promise<void> {
  const { logger } = options;
  if (!msg.reply) {
    logger.warn({ subject: msg.subject }, 'query without a reply subject ignored');
    return;
  }
  const read = readQueryRequest(options.subjectPrefix, msg.subject, msg.data, options.maxPayloadBytes);
  const reply = read.ok ? await answerQuery(options.handlers, read.request, (err) => logger.error({ err, subject: msg.subject }, 'query handler failed')) : read.reply;
  (options.metrics ?? noMetrics).inbound('query', reply.ok ? 'handled' : 'refused');
  let text = JSON.stringify(reply);
  const max = options.connection.info?.max_payload;
  if (max !== undefined && Buffer.byteLength(text) > max) {
    text = JSON.stringify(invalid(`the answer takes ${Buffer.byteLength(text)} bytes, over the server's max_payload of ${max}: ask for a smaller limit`));
  }
  try {
    msg.respond(text);
  } catch (err) {
    logger.warn({ err, subject: msg.subject }, 'cannot send a query reply');
  }
}
