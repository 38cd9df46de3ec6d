import type { z } from 'zod';
import { ApprovalDecided, ControlRequest, Heartbeat, QueryRequest, QUERY_KINDS, TaskResult, TaskResultBatch } from '../domain/messages.js';
import { PipelineEvent } from '../domain/pipeline.js';
import { ProjectId } from '../domain/task.js';
import { ErrorCode, ValidationError, isOrchestratorError } from '../errors.js';
import type { InboundHandlers } from '../ports/event-bus.js';

/**
 * The rules both event buses (NATS and in-process) follow when they hand inbound messages
 * to the orchestrator's handlers: the order, what a failure becomes, which bodies are
 * refused before any handler sees them, and how a results batch settles. The EventBus
 * contract suite (test/contract/event-bus.contract.ts) checks both against them.
 *
 * Order. Messages are taken in arrival (stream) order and:
 *
 * - results and heartbeats (and inbound messages that fail validation, which are only
 *   dead-lettered) run CONCURRENTLY, up to a window of `inboundConcurrency` messages that
 *   are taken and not yet settled;
 * - events and approval decisions are BARRIERS of their project: a project's run one at
 *   a time, in arrival order — one starts only once every barrier of its project taken
 *   before it has settled (handled, or dead-lettered: a barrier being retried keeps its
 *   turn) — so a project's events and decisions, which change which of its tasks exist,
 *   neither overtake nor are overtaken by each other. Different projects' barriers run
 *   side by side (nothing of one project's state depends on another's: a slow event of
 *   one project does not hold back the others). Results and heartbeats neither wait for
 *   barriers nor hold them back: they concern tasks that exist already, every write they
 *   make is checked against the task's row version and fencing token, and the events
 *   their completions raise are ingested alongside them anyway.
 *
 * A handler that never settles keeps its slot of the window: the others go on in the
 * remaining slots; a barrier that never settles holds back its project's next barriers
 * (and a close). There is no handler timeout; a handler is expected to settle (the store
 * and lock calls it makes time out).
 */
export type InboundKind = 'event' | 'result' | 'heartbeat' | 'decision';

/** Messages taken and not yet settled, by default. */
export const DEFAULT_INBOUND_CONCURRENCY = 256;

/** Events and decisions are barriers (of their project); results and heartbeats run concurrently. */
export function isBarrier(kind: InboundKind): boolean {
  return kind === 'event' || kind === 'decision';
}

/** Checks an `inboundConcurrency` option (a positive integer); returns the default when unset. */
export function windowSize(value: number | undefined, option = 'inboundConcurrency'): number {
  const size = value ?? DEFAULT_INBOUND_CONCURRENCY;
  if (!Number.isInteger(size) || size < 1) throw new ValidationError(`${option} must be a positive integer`, [`${option}=${String(value)}`]);
  return size;
}

/**
 * The turns of each project's barriers: `take` reserves the project's next turn, which
 * comes once the barriers taken before it have called their `done` (`now`: at once, no
 * earlier barrier of the project is still pending).
 */
export class ProjectTurns {
  private readonly last = new Map<string, Promise<void>>();

  take(projectId: string): { now: boolean; turn: Promise<void>; done: () => void } {
    const before = this.last.get(projectId);
    const turn = before ?? Promise.resolve();
    let done!: () => void;
    const mine = new Promise<void>((resolve) => (done = resolve));
    this.last.set(projectId, mine);
    void mine.then(() => {
      if (this.last.get(projectId) === mine) this.last.delete(projectId);
    });
    return { now: before === undefined, turn, done };
  }
}

// ---------------------------------------------------------------------------------------
// Failures. A handler that rejects with a non-retryable OrchestratorError refused the
// message: it is dead-lettered with `code: message` and not handed over again. Any other
// failure (a retryable OrchestratorError, or an unexpected error such as a dropped database
// connection) is retried after an exponential pause, up to `maxDeliveries` deliveries in
// all, then dead-lettered with `gave up after N deliveries: …`.

/** How a handler's failure is told in logs and dead letters: `code: message` for the orchestrator's errors. */
export function describeError(err: unknown): string {
  if (isOrchestratorError(err)) return `${err.code}: ${err.message}`;
  return err instanceof Error ? err.message : String(err);
}

/** Whether a handler's failure may pass on a later delivery (anything but a non-retryable OrchestratorError). */
export function retryable(err: unknown): boolean {
  return !(isOrchestratorError(err) && !err.retryable);
}

/** Delay before the n-th redelivery (n = deliveries so far, 1-based): exponential, capped. */
export function retryDelay(deliveries: number, baseMs: number, maxMs: number): number {
  return Math.min(baseMs * 2 ** Math.min(Math.max(deliveries - 1, 0), 30), maxMs);
}

export interface RetryPolicy {
  /** Deliveries of a message whose handler keeps failing retryably, then it is dead-lettered. */
  maxDeliveries: number;
  baseMs: number;
  maxMs: number;
}

/** What becomes of a message whose handler failed with `err` on its `deliveries`-th delivery. */
export type FailureAction = { retry: true; delayMs: number } | { retry: false; reason: string };

export function onFailure(err: unknown, deliveries: number, policy: RetryPolicy): FailureAction {
  if (!retryable(err)) return { retry: false, reason: describeError(err) };
  if (deliveries >= policy.maxDeliveries) return { retry: false, reason: `gave up after ${deliveries} deliveries: ${describeError(err)}` };
  return { retry: true, delayMs: retryDelay(deliveries, policy.baseMs, policy.maxMs) };
}

/** Runs `fn`, turning a synchronous throw into a rejection: resolves with the failure, or null. */
export function outcome(fn: () => Promise<void>): Promise<{ err: unknown } | null> {
  try {
    return fn().then(
      () => null,
      (err: unknown) => ({ err }),
    );
  } catch (err) {
    return Promise.resolve({ err });
  }
}

// ---------------------------------------------------------------------------------------
// Bodies. A body that is not an object, names another project than the one it was sent
// for, or breaks its schema is dead-lettered (`schema violation: …`, `subject/body
// mismatch: …`) before any handler sees it; handlers get the parsed body.

/** `path: message; ...` for a zod error. */
export function formatIssues(error: z.ZodError): string {
  return error.issues.map((i) => `${i.path.length ? i.path.join('.') : '(root)'}: ${i.message}`).join('; ');
}

/** A checked inbound body, by kind (`results`: the batch form of a results message). */
export type CheckedBody =
  | { kind: 'event'; projectId: string; body: PipelineEvent }
  | { kind: 'result'; projectId: string; body: TaskResult }
  | { kind: 'results'; projectId: string; body: TaskResult[] }
  | { kind: 'heartbeat'; projectId: string; body: Heartbeat }
  | { kind: 'decision'; projectId: string; body: ApprovalDecided };

export type Checked = { ok: true; message: CheckedBody } | { ok: false; reason: string };

/**
 * Checks the body of an inbound message sent for `projectId` (for an event: with
 * `eventType` in its subject, when it has one). A results body with a `results` array and
 * no `taskId` is the batch form. Never throws.
 */
export function checkBody(kind: InboundKind, projectId: string, raw: unknown, eventType?: string): Checked {
  if (!ProjectId.safeParse(projectId).success) return { ok: false, reason: `${JSON.stringify(projectId)} is not a valid project id` };
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
    return { ok: false, reason: 'schema violation: (root): expected a JSON object' };
  }
  const bodyProject = (raw as { projectId?: unknown }).projectId;
  if (bodyProject !== undefined && bodyProject !== projectId) {
    return { ok: false, reason: `subject/body mismatch: subject names project ${projectId}, body names ${JSON.stringify(bodyProject)}` };
  }
  switch (kind) {
    case 'event': {
      const parsed = PipelineEvent.safeParse(raw);
      if (!parsed.success) return { ok: false, reason: `schema violation: ${formatIssues(parsed.error)}` };
      if (eventType !== undefined && parsed.data.type !== eventType) {
        return { ok: false, reason: `subject/body mismatch: subject names event type ${eventType}, body names ${parsed.data.type}` };
      }
      return { ok: true, message: { kind: 'event', projectId, body: parsed.data } };
    }
    case 'result':
      if (Array.isArray((raw as { results?: unknown }).results) && !('taskId' in raw)) {
        return checked(TaskResultBatch.safeParse(raw), (body) => ({ kind: 'results', projectId, body: body.results }));
      }
      return checked(TaskResult.safeParse(raw), (body) => ({ kind: 'result', projectId, body }));
    case 'heartbeat':
      return checked(Heartbeat.safeParse(raw), (body) => ({ kind: 'heartbeat', projectId, body }));
    case 'decision':
      return checked(ApprovalDecided.safeParse(raw), (body) => ({ kind: 'decision', projectId, body }));
  }
}

/** Hands a checked single message to its handler (a batch goes entry by entry: see runBatch). */
export function dispatchInbound(handlers: InboundHandlers, message: Exclude<CheckedBody, { kind: 'results' }>): Promise<void> {
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

function checked<T>(parsed: z.ZodSafeParseResult<T>, build: (body: T) => CheckedBody): Checked {
  if (!parsed.success) return { ok: false, reason: `schema violation: ${formatIssues(parsed.error)}` };
  return { ok: true, message: build(parsed.data) };
}

// ---------------------------------------------------------------------------------------
// Results batches (`{"results":[…]}`). Each entry goes to the result handler as if it had
// come alone — all at once, so they share the orchestrator's next write — and is settled on
// its own: a refused entry is dead-lettered alone (and never handed over again), an entry
// that failed retryably is handed over again, alone with the other entries not yet durable,
// on the next delivery of the batch (dead-lettered when it was the last). The batch is
// acknowledged once every entry is durable or dead-lettered.

/** One delivery of a batch: runs the entries not `settled` yet, all at once; resolves with their failures. */
export async function runBatch(
  results: readonly TaskResult[],
  settled: ReadonlySet<number>,
  handle: (result: TaskResult) => Promise<void>,
): Promise<{ i: number; err: unknown }[]> {
  const failures = await Promise.all(results.map((r, i) => (settled.has(i) ? null : outcome(() => handle(r)))));
  return failures.flatMap((f, i) => (f ? [{ i, err: f.err }] : []));
}

/**
 * What the failures of one delivery of a batch become: the entries to dead-letter now,
 * with their reasons, and whether the batch is to be delivered again (the delay), for the
 * entries that failed retryably.
 */
export function batchPlan(
  failures: readonly { i: number; err: unknown }[],
  deliveries: number,
  policy: RetryPolicy,
): { deadLetter: { i: number; reason: string }[]; retryDelayMs: number | null } {
  const deadLetter: { i: number; reason: string }[] = [];
  let retryDelayMs: number | null = null;
  for (const { i, err } of failures) {
    const action = onFailure(err, deliveries, policy);
    if (action.retry) retryDelayMs = action.delayMs;
    else deadLetter.push({ i, reason: action.reason });
  }
  return { deadLetter, retryDelayMs };
}

// ---------------------------------------------------------------------------------------
// Control requests (request-reply). A request that breaks the schema is answered
// `ERR_VALIDATION` without reaching the handler; otherwise the reply is the handler's
// result (`null` for none) or its error's code (`ERR_INTERNAL` for an unexpected one) and
// message. Control requests are commands, not part of the ordered inbound stream: they
// wait for nothing.

export type ControlReply = { ok: true; result: unknown } | { ok: false; error: { code: string; message: string } };

/** Checks a control request body; the reply to send when it is not acceptable. */
export function checkControl(raw: unknown): { ok: true; request: ControlRequest } | { ok: false; reply: ControlReply } {
  const parsed = ControlRequest.safeParse(raw);
  if (!parsed.success) return { ok: false, reply: invalidControl(`schema violation: ${formatIssues(parsed.error)}`) };
  return { ok: true, request: parsed.data };
}

export function invalidControl(message: string): ControlReply {
  return { ok: false, error: { code: ErrorCode.Validation, message } };
}

/** Runs the control handler; resolves with the reply (never rejects). `unexpected` hears of errors that are no OrchestratorError. */
export async function answerControl(
  handlers: InboundHandlers,
  projectId: string,
  request: ControlRequest,
  unexpected: (err: unknown) => void = () => undefined,
): Promise<ControlReply> {
  try {
    const result = await handlers.control(projectId, request);
    return { ok: true, result: result ?? null };
  } catch (err) {
    if (!isOrchestratorError(err)) unexpected(err);
    return { ok: false, error: { code: isOrchestratorError(err) ? err.code : 'ERR_INTERNAL', message: err instanceof Error ? err.message : String(err) } };
  }
}

// Queries (request-reply, `<prefix>.query.<kind>`): the read side, answered like control
// requests — a body that breaks the kind's schema is answered `ERR_VALIDATION` without
// reaching the handler; otherwise the handler's page or its error.

/** Checks a query body of `kind` (the subject's last token); the reply to send when it is not acceptable. */
export function checkQuery(kind: string, raw: unknown): { ok: true; request: QueryRequest } | { ok: false; reply: ControlReply } {
  if (!(QUERY_KINDS as readonly string[]).includes(kind)) {
    return { ok: false, reply: invalidControl(`unknown query ${JSON.stringify(kind)} (one of ${QUERY_KINDS.join(', ')})`) };
  }
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) return { ok: false, reply: invalidControl('schema violation: a query body is a JSON object') };
  const parsed = QueryRequest.safeParse({ ...(raw as Record<string, unknown>), query: kind });
  if (!parsed.success) return { ok: false, reply: invalidControl(`schema violation: ${formatIssues(parsed.error)}`) };
  return { ok: true, request: parsed.data };
}

/** Runs the query handler; resolves with the reply (never rejects). */
export async function answerQuery(handlers: InboundHandlers, request: QueryRequest, unexpected: (err: unknown) => void = () => undefined): Promise<ControlReply> {
  const query = handlers.query?.bind(handlers);
  if (!query) return invalidControl('this orchestrator answers no queries');
  try {
    return { ok: true, result: (await query(request)) ?? null };
  } catch (err) {
    if (!isOrchestratorError(err)) unexpected(err);
    return { ok: false, error: { code: isOrchestratorError(err) ? err.code : 'ERR_INTERNAL', message: err instanceof Error ? err.message : String(err) } };
  }
}
