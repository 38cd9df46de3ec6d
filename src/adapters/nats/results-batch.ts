import type { JsMsg } from '@nats-io/jetstream';
import type { TaskResult } from '../../domain/messages.js';
import type { Logger } from '../../logger.js';
import type { InboundHandlers } from '../../ports/event-bus.js';
import { noMetrics, type Metrics } from '../../ports/metrics.js';
import { batchPlan, retryDelay, runBatch, type RetryPolicy } from '../inbound-order.js';
import type { DeadLetterPublisher } from './dead-letter.js';

/** Batches handed back with entries settled that are remembered, at most (the oldest forgotten first). */
const PROGRESS_LIMIT = 10_000;

export interface ResultsBatchOptions {
  handlers: InboundHandlers;
  deadLetters: DeadLetterPublisher;
  logger: Logger;
  maxDeliveries: number;
  retryDelay: { baseMs: number; maxMs: number };
}

/**
 * The results batches of the inbound stream (`{"results":[…]}`), with the rules of
 * inbound-order.ts (`runBatch`, `batchPlan`): each entry goes to the result handler as if
 * it had come alone, all at once, and is settled on its own:
 * - a refused entry is dead-lettered on its own (its JSON, its reason) at once, also when
 *   other entries are to be retried, and is not handed over again;
 * - an entry failed retryably (and deliveries are left): the message is handed back
 *   (`nak(delay)`); the entries already settled (durable or dead-lettered) are remembered,
 *   by stream sequence, and not handled again when it comes back to this process (in
 *   another, they are found already applied and acknowledged with the rest); on the last
 *   delivery it is dead-lettered instead;
 * - every entry durable or dead-lettered: the message is acknowledged.
 */
export class ResultsBatches {
  private readonly progress = new Map<number, Set<number>>();
  private readonly policy: RetryPolicy;

  constructor(
    private readonly options: ResultsBatchOptions,
    private readonly ack: (m: JsMsg) => Promise<void>,
    private readonly metrics: Pick<Metrics, 'inbound'> = noMetrics,
  ) {
    this.policy = { maxDeliveries: options.maxDeliveries, ...options.retryDelay };
  }

  /** Handles the entries; resolves, once they have settled, with what settles the message. */
  async run(m: JsMsg, projectId: string, results: readonly TaskResult[]): Promise<() => Promise<void>> {
    const seq = m.info.streamSequence;
    const settled = this.progress.get(seq) ?? new Set<number>();
    this.progress.delete(seq);
    const failures = await runBatch(results, settled, (r) => this.options.handlers.result(projectId, r));
    for (let i = 0; i < results.length; i++) settled.add(i);
    for (const f of failures) settled.delete(f.i);
    return () => this.settle(m, results, failures, settled);
  }

  private async settle(m: JsMsg, results: readonly TaskResult[], failures: { i: number; err: unknown }[], settled: Set<number>): Promise<void> {
    const o = this.options;
    const deliveries = m.info.deliveryCount;
    const handBack = (delay: number): void => {
      this.progress.set(m.info.streamSequence, settled);
      if (this.progress.size > PROGRESS_LIMIT) this.progress.delete(this.progress.keys().next().value!);
      m.nak(delay);
      this.metrics.inbound('results', 'retried');
    };
    const plan = batchPlan(failures, deliveries, this.policy);
    try {
      for (const { i, reason } of plan.deadLetter) {
        await o.deadLetters.send({ subject: m.subject, reason, data: JSON.stringify(results[i]) });
        settled.add(i);
      }
    } catch {
      if (deliveries >= o.maxDeliveries) {
        o.logger.error({ subject: m.subject }, 'cannot dead-letter entries of a results batch on its last delivery; it stays unhandled in the stream');
      }
      return handBack(retryDelay(deliveries, o.retryDelay.baseMs, o.retryDelay.maxMs));
    }
    if (plan.retryDelayMs !== null) {
      const retried = failures.find((f) => !settled.has(f.i));
      o.logger.warn(
        { err: retried?.err, subject: m.subject, deliveries, delayMs: plan.retryDelayMs, failed: failures.length },
        'results batch: a handler failed; will retry',
      );
      return handBack(plan.retryDelayMs);
    }
    await this.ack(m);
  }
}
