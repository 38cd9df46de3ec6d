import type { TaskStatus } from '../domain/task.js';

/**
 * What became of an inbound message once settled: handled (acknowledged), retried (handed
 * back or tried again), dead_lettered; a control request: handled, or refused (answered
 * with an error).
 */
export type InboundOutcome = 'handled' | 'retried' | 'dead_lettered' | 'refused';

/**
 * What the core and the adapters report as it happens, for the operator's metrics. Designed
 * from the call sites, each cheap (a counter or a histogram bucket, no I/O, no allocation):
 * every method is called after the fact it reports is durable (a committed transition, a
 * settled message, a recorded dead letter). Labels are bounded: task types, states,
 * message kinds, outcomes, reason codes — never a task or project id (`taskId` is passed
 * only so that an implementation can pair a task's READY with its RUNNING).
 * `noMetrics` is the default: everything ignored.
 */
export interface Metrics {
  /**
   * A committed task transition (`from` null: the task's creation). `at`: when it was
   * decided (epoch ms); `startedAt`: the running attempt's start, for a step out of RUNNING.
   */
  taskStep(taskId: string, taskType: string, from: TaskStatus | null, to: TaskStatus, at: number, startedAt: number | null): void;
  /** An inbound message settled (`kind`: event, result, results, heartbeat, decision, control, invalid). */
  inbound(kind: string, outcome: InboundOutcome): void;
  /** A dead letter: of a task or raised event (`task`), or of an inbound message (`message`); `code` a stable reason code. */
  deadLetter(source: 'task' | 'message', code: string): void;
  /** An approval request decided (`decision`: approved, rejected, expired), `waitMs` after it was requested. */
  approvalDecided(decision: string, waitMs: number): void;
  /** A reaction (a project's follow-up of a commit) ended: `failed` when it threw (the sweep finishes it). */
  reaction(what: string, failed: boolean): void;
}

export const noMetrics: Metrics = {
  taskStep: () => undefined,
  inbound: () => undefined,
  deadLetter: () => undefined,
  approvalDecided: () => undefined,
  reaction: () => undefined,
};

/**
 * A stable code for a dead letter's reason text: the error code it starts with
 * (`ERR_STALE_FENCING_TOKEN: …`), or the class of an inbound message refused before any
 * handler (size, subject, JSON, schema), so that the label stays bounded.
 */
export function reasonCode(reason: string): string {
  const code = /^(ERR_[A-Z0-9_]+)/.exec(reason);
  if (code) return code[1]!;
  if (reason.startsWith('gave up after ')) {
    const inner = /deliveries: (ERR_[A-Z0-9_]+)/.exec(reason);
    return inner ? inner[1]! : 'ERR_RETRIES_EXHAUSTED';
  }
  if (reason.startsWith('payload of ')) return 'ERR_PAYLOAD_TOO_LARGE';
  if (reason.startsWith('not JSON')) return 'ERR_NOT_JSON';
  if (reason.startsWith('schema violation')) return 'ERR_SCHEMA_VIOLATION';
  if (reason.startsWith('subject/body mismatch')) return 'ERR_SUBJECT_MISMATCH';
  if (reason.startsWith('unexpected subject') || reason.startsWith('subject ') || reason.includes('is not a valid project id')) return 'ERR_BAD_SUBJECT';
  return 'ERR_OTHER';
}
