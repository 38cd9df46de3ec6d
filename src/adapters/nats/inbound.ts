import type { z } from 'zod';
import { ApprovalDecided, Heartbeat, TaskResult, TaskResultBatch } from '../../domain/messages.js';
import { PipelineEvent } from '../../domain/pipeline.js';
import { ProjectId } from '../../domain/task.js';
import type { InboundHandlers } from '../../ports/event-bus.js';
import { parseInboundSubject } from './subjects.js';

/** A validated inbound message, ready for its handler. */
export type InboundMessage =
  | { kind: 'event'; projectId: string; body: PipelineEvent }
  | { kind: 'result'; projectId: string; body: TaskResult }
  /** The batch form of a results message: each entry is handled as a result of its own. */
  | { kind: 'results'; projectId: string; body: TaskResult[] }
  | { kind: 'heartbeat'; projectId: string; body: Heartbeat }
  | { kind: 'decision'; projectId: string; body: ApprovalDecided };

export type Decoded = { ok: true; message: InboundMessage } | { ok: false; reason: string };

const decoder = new TextDecoder();

/** The bytes as text (invalid UTF-8 sequences replaced), for logs and dead letters. */
export function bytesToText(data: Uint8Array): string {
  return decoder.decode(data);
}

/** `path: message; ...` for a zod error. */
export function formatIssues(error: z.ZodError): string {
  return error.issues.map((i) => `${i.path.length ? i.path.join('.') : '(root)'}: ${i.message}`).join('; ');
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
  const raw = json.value;
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
    return { ok: false, reason: 'schema violation: (root): expected a JSON object' };
  }
  const bodyProject = (raw as { projectId?: unknown }).projectId;
  if (bodyProject !== undefined && bodyProject !== target.projectId) {
    return {
      ok: false,
      reason: `subject/body mismatch: subject names project ${target.projectId}, body names ${JSON.stringify(bodyProject)}`,
    };
  }
  switch (target.kind) {
    case 'event': {
      const parsed = PipelineEvent.safeParse(raw);
      if (!parsed.success) return { ok: false, reason: `schema violation: ${formatIssues(parsed.error)}` };
      if (parsed.data.type !== target.eventType) {
        return {
          ok: false,
          reason: `subject/body mismatch: subject names event type ${target.eventType}, body names ${parsed.data.type}`,
        };
      }
      return { ok: true, message: { kind: 'event', projectId: target.projectId, body: parsed.data } };
    }
    case 'result':
      // The batch form: a `results` array and no `taskId` (a single result may carry extra fields).
      if (Array.isArray((raw as { results?: unknown }).results) && !('taskId' in raw)) {
        return checked(TaskResultBatch.safeParse(raw), (body) => ({ kind: 'results', projectId: target.projectId, body: body.results }));
      }
      return checked(TaskResult.safeParse(raw), (body) => ({ kind: 'result', projectId: target.projectId, body }));
    case 'heartbeat':
      return checked(Heartbeat.safeParse(raw), (body) => ({ kind: 'heartbeat', projectId: target.projectId, body }));
    case 'decision':
      return checked(ApprovalDecided.safeParse(raw), (body) => ({ kind: 'decision', projectId: target.projectId, body }));
  }
}

function checked<T>(parsed: z.ZodSafeParseResult<T>, build: (body: T) => InboundMessage): Decoded {
  if (!parsed.success) return { ok: false, reason: `schema violation: ${formatIssues(parsed.error)}` };
  return { ok: true, message: build(parsed.data) };
}

/** Hands a validated single message to its handler (a batch goes entry by entry: see the consumer). */
export function dispatchInbound(handlers: InboundHandlers, message: Exclude<InboundMessage, { kind: 'results' }>): Promise<void> {
  switch (message.kind) {
    case 'event':
      return handlers.event(message.body);
    case 'result':
      return handlers.result(message.projectId, message.body);
    case 'heartbeat':
      return handlers.heartbeat(message.projectId, message.body);
    case 'decision':
      return handlers.decision(message.projectId, message.body);
  }
}
