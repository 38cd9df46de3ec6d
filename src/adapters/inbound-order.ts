import { ValidationError } from '../errors.js';

/**
 * The order in which both event buses (NATS and in-process) hand inbound messages to the
 * orchestrator's handlers. Messages are taken in arrival (stream) order and:
 *
 * - results and heartbeats (and inbound messages that fail validation, which are only
 *   dead-lettered) run CONCURRENTLY, up to a window of `inboundConcurrency` messages that
 *   are taken and not yet settled;
 * - events and approval decisions are BARRIERS of their project: a project's run one at
 *   a time, in arrival order — one starts only once every barrier of its project taken
 *   before it has settled — so a project's events and decisions, which change which of
 *   its tasks exist, neither overtake nor are overtaken by each other. Different
 *   projects' barriers run side by side (nothing of one project's state depends on
 *   another's: a slow event of one project does not hold back the others). Results and
 *   heartbeats neither wait for barriers nor hold them back: they concern tasks that
 *   exist already, every write they make is checked against the task's row version and
 *   fencing token, and the events their completions raise are ingested alongside them
 *   anyway.
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
