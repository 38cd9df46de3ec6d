import { ProjectId } from '../../domain/task.js';
import { checkBody, dispatchInbound, formatIssues, type Checked, type CheckedBody } from '../inbound-order.js';
import { parseInboundSubject } from './subjects.js';

export { dispatchInbound, formatIssues };

/** A validated inbound message, ready for its handler (`results`: the batch form, each entry handled as a result of its own). */
export type InboundMessage = CheckedBody;

export type Decoded = Checked;

const decoder = new TextDecoder();

/** The bytes as text (invalid UTF-8 sequences replaced), for logs and dead letters. */
export function bytesToText(data: Uint8Array): string {
  return decoder.decode(data);
}

/** Parses JSON text; the error message on failure. */
export function parseJson(text: string): { ok: true; value: unknown } | { ok: false; reason: string } {
  try {
    return { ok: true, value: JSON.parse(text) as unknown };
  } catch (err) {
    return { ok: false, reason: `not JSON: ${(err as Error).message}` };
  }
}

/**
 * Checks one inbound message in the order the contract gives: size (before parsing),
 * subject form, JSON, schema, then that the subject and the body name the same project
 * (and, for events, the same type). Never throws.
 */
export function decodeInbound(prefix: string, subject: string, data: Uint8Array, maxPayloadBytes: number): Decoded {
  if (data.length > maxPayloadBytes) {
    return { ok: false, reason: `payload of ${data.length} bytes exceeds the limit of ${maxPayloadBytes} bytes` };
  }
  const target = parseInboundSubject(prefix, subject);
  if (!target) return { ok: false, reason: `unexpected subject ${subject}` };
  if (!ProjectId.safeParse(target.projectId).success) {
    return { ok: false, reason: `subject ${subject} does not name a valid project id` };
  }
  const json = parseJson(bytesToText(data));
  if (!json.ok) return json;
  // The checks every bus makes of a body (inbound-order.ts).
  return checkBody(target.kind, target.projectId, json.value, target.kind === 'event' ? target.eventType : undefined);
}
