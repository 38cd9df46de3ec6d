import type { Msg } from '@nats-io/transport-node';
import type { ControlRequest } from '../../domain/messages.js';
import { noMetrics } from '../../ports/metrics.js';
import { answerControl, checkControl, invalidControl as invalid, type ControlReply } from '../inbound-order.js';
import { bytesToText, parseJson } from './inbound.js';
import { startResponder, type RequestSubjectOptions, type Responder } from './responder.js';
import { parseControlSubject } from './subjects.js';

export type { ControlReply };

/** `subject`: `<prefix>.control.>`; answers are reported as kind `control`. */
export type ControlResponderOptions = RequestSubjectOptions;

export type ControlResponder = Responder;

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

/**
 * Answers `<prefix>.control.<projectId>` requests with `handlers.control`. Requests are
 * answered concurrently (they are commands, not part of the ordered inbound stream).
 */
export function startControlResponder(options: ControlResponderOptions): ControlResponder {
  return startResponder({ connection: options.connection, subject: options.subject, queue: options.queue, logger: options.logger, what: 'control request', answer: (msg) => answer(options, msg) });
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
  (options.metrics ?? noMetrics).inbound('control', reply.ok ? 'handled' : 'refused');
  try {
    msg.respond(JSON.stringify(reply));
  } catch (err) {
    logger.warn({ err, subject: msg.subject }, 'cannot send a control reply');
  }
}
