import type { JsMsg } from '@nats-io/jetstream';
import type { TaskResult } from '../../domain/messages.js';
import type { Logger } from '../../logger.js';
import type { InboundHandlers } from '../../ports/event-bus.js';
import type { DeadLetterPublisher } from './dead-letter.js';
import { describeError, outcome, retryable, retryDelay } from './inbound-retry.js';

/** Batches handed back with entries done that are remembered, at most (the oldest forgotten first). */
const PROGRESS_LIMIT = 10_000;

export interface ResultsBatchOptions {
  handlers: InboundHandlers;
  deadLetters: DeadLetterPublisher;
  logger: Logger;
  maxDeliveries: number;
  retryDelay: { baseMs: number; maxMs: number };
}

/**
 * The results batches of the inbound stream (`{"results":[…]}`): each entry goes to the
 * result handler as if it had come alone — all at once, so they share the orchestrator's
 * next write — and is settled on its own, with the rules of a single message:
 * - every entry durable: the message is acknowledged;
 * - an entry failed retryably (and deliveries are left): the message is handed back
 *   (`nak(delay)`); the entries already settled are remembered, by stream sequence, and
 *   not handled again when it comes back to this process (in another, they are found
 *   already applied and acknowledged with the rest);
 * - otherwise each failed entry is dead-lettered on its own (its JSON, its reason; on the
 *   last delivery the retryable ones too) and the message acknowledged.
 */
export class ResultsBatches {
  private readonly progress = new Map<number, Set<number>>();

  constructor(
    private readonly options: ResultsBatchOptions,
    private readonly ack: (m: JsMsg) => Promise<void>,
  ) {}

  /** Handles the entries; resolves, once they have settled, with what settles the message. */
  async run(m: JsMsg, projectId: string, results: readonly TaskResult[]): Promise<() => Promise<void>> {
    const seq = m.info.streamSequence;
    const done = this.progress.get(seq) ?? new Set<number>();
    this.progress.delete(seq);
    const failures = await Promise.all(
      results.map((r, i) => (done.has(i) ? null : outcome(() => this.options.handlers.result(projectId, r)))),
    );
    failures.forEach((f, i) => {
      if (!f) done.add(i);
    });
    return () => this.settle(m, results, failures, done);
  }

  private async settle(m: JsMsg, results: readonly TaskResult[], failures: ({ err: unknown } | null)[], done: Set<number>): Promise<void> {
    const o = this.options;
    const deliveries = m.info.deliveryCount;
    const failed = failures.flatMap((f, i) => (f ? [{ i, err: f.err, retry: retryable(f.err) }] : []));
    const handBack = (delay: number): void => {
      this.progress.set(m.info.streamSequence, done);
      if (this.progress.size > PROGRESS_LIMIT) this.progress.delete(this.progress.keys().next().value!);
      m.nak(delay);
    };
    const delay = retryDelay(deliveries, o.retryDelay.baseMs, o.retryDelay.maxMs);
    const retried = failed.find((f) => f.retry);
    if (retried && deliveries < o.maxDeliveries) {
      o.logger.warn(
        { subject: m.subject, deliveries, delayMs: delay, failed: failed.length, error: describeError(retried.err) },
        'results batch: a handler failed; will retry',
      );
      return handBack(delay);
    }
    try {
      for (const { i, err, retry } of failed) {
        const reason = retry ? `gave up after ${deliveries} deliveries: ${describeError(err)}` : describeError(err);
        await o.deadLetters.send({ subject: m.subject, reason, data: JSON.stringify(results[i]) });
        done.add(i);
      }
    } catch {
      if (deliveries >= o.maxDeliveries) {
        o.logger.error({ subject: m.subject }, 'cannot dead-letter entries of a results batch on its last delivery; it stays unhandled in the stream');
      }
      return handBack(delay);
    }
    await this.ack(m);
  }
}
