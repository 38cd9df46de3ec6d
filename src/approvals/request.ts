import type { ApprovalRequested, PendingApproval } from '../domain/messages.js';
import type { PipelineEvent } from '../domain/pipeline.js';
import type { ApprovalRecord } from '../ports/project-store.js';

/** The checkpoint event an approval request was made for, as the revision is planned from it. */
export function checkpointEvent(approval: ApprovalRecord): PipelineEvent {
  return { id: approval.eventId, type: approval.checkpoint, projectId: approval.projectId, payload: approval.summary, occurredAt: approval.requestedAt };
}

/**
 * The body of an approval request (and of its reminders) on the approvals.requested
 * subject: small whatever the checkpoint's size — the checkpoint event's payload as a
 * bounded summary, the counts (the tasks waiting, the shots a rejection may name), and
 * where to look for the rest; never every task id. (A shot plan of 100 000 shots listed in
 * full is ~8 MB, over NATS max_payload: such a request would never be published.)
 */

/** The most a request's summary takes, as JSON (the request itself stays within a few KiB more). */
export const SUMMARY_MAX_CHARS = 16_384;

interface Limits {
  /** Levels of objects and arrays kept (deeper: `{ count }` or `{ keys }`). */
  depth: number;
  /** Characters kept of a string (longer: cut, with `…` and the full length). */
  text: number;
  /** Elements shown of an array (always with its `count`). */
  items: number;
  /** Keys kept of an object (more: `…` says how many were left out). */
  keys: number;
}

/** Tried in order until the summary fits SUMMARY_MAX_CHARS; the last always does (at most 20 keys of ~130 characters). */
const LEVELS: readonly Limits[] = [
  { depth: 4, text: 2_000, items: 10, keys: 50 },
  { depth: 2, text: 500, items: 3, keys: 20 },
  { depth: 1, text: 100, items: 0, keys: 20 },
];

function cut(text: string, max: number): string {
  if (text.length <= max) return text;
  const kept = text.slice(0, max);
  // Not cutting a surrogate pair in two.
  return `${/[\uD800-\uDBFF]$/.test(kept) ? kept.slice(0, -1) : kept}… (${text.length} characters)`;
}

function compact(value: unknown, limits: Limits, depth: number): unknown {
  if (typeof value === 'string') return cut(value, limits.text);
  if (value === null || typeof value !== 'object') return value;
  if (Array.isArray(value)) {
    if (depth >= limits.depth || limits.items === 0) return { count: value.length };
    return { count: value.length, first: value.slice(0, limits.items).map((v) => compact(v, limits, depth + 1)) };
  }
  const entries = Object.entries(value as Record<string, unknown>);
  if (depth >= limits.depth) return { keys: entries.length };
  const out: Record<string, unknown> = {};
  for (const [k, v] of entries.slice(0, limits.keys)) out[cut(k, 100)] = compact(v, limits, depth + 1);
  if (entries.length > limits.keys) out['…'] = `${entries.length - limits.keys} more keys`;
  return out;
}

/**
 * The checkpoint event's payload, bounded: strings cut, arrays as `{ count, first }` (their
 * length and their first elements), deep or wide objects shortened, within SUMMARY_MAX_CHARS.
 */
export function summarize(payload: Record<string, unknown>): Record<string, unknown> {
  let summary: Record<string, unknown> = {};
  for (const limits of LEVELS) {
    summary = compact(payload, limits, 0) as Record<string, unknown>;
    if (JSON.stringify(summary).length <= SUMMARY_MAX_CHARS) break;
  }
  return summary;
}

/**
 * The body of a request. `shots`: how many shots a rejection may name (indexes 0 to
 * shots - 1; EventMapper.shotCount), null where it names none.
 */
export function requestBody(
  approval: Pick<ApprovalRecord, 'approvalId' | 'projectId' | 'checkpoint' | 'summary' | 'taskIds' | 'expiresAt'>,
  shots: number | null,
  reminder = false,
): ApprovalRequested {
  return {
    approvalId: approval.approvalId,
    projectId: approval.projectId,
    checkpoint: approval.checkpoint,
    summary: summarize(approval.summary),
    counts: { tasks: approval.taskIds.length, ...(shots === null ? {} : { shots }) },
    details: `the project's status: \`orchestrator status ${approval.projectId}\`, or {"action":"status"} on its control subject`,
    expiresAt: approval.expiresAt ? approval.expiresAt.toISOString() : null,
    ...(reminder ? { reminder: true } : {}),
  };
}

/** A pending request as the project's status shows it: the request's body and when it was made. */
export function pendingView(approval: ApprovalRecord, shots: number | null): PendingApproval {
  const { details: _details, ...body } = requestBody(approval, shots);
  return { ...body, requestedAt: approval.requestedAt.toISOString() };
}
