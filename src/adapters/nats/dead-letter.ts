import type { JetStreamClient } from '@nats-io/jetstream';
import type { DeadLetterMessage } from '../../domain/messages.js';
import type { Logger } from '../../logger.js';
import { noMetrics, reasonCode, type Metrics } from '../../ports/metrics.js';
import { jetstreamFailure } from './streams.js';

/** Dead letters carry at most this much of the rejected message (the rest is cut). */
export const DEFAULT_DLQ_DATA_LIMIT = 64 * 1024;

/**
 * Publishes dead letters on `<prefix>.dlq` through JetStream (the DLQ stream keeps them;
 * core subscribers of the subject see them as well). Resolves once stored; rejects with
 * a retryable ServiceUnavailableError otherwise, so the caller can keep the original
 * message for another attempt instead of losing it.
 */
export class DeadLetterPublisher {
  constructor(
    private readonly js: JetStreamClient,
    private readonly subject: string,
    private readonly logger: Logger,
    private readonly dataLimit = DEFAULT_DLQ_DATA_LIMIT,
    private readonly metrics: Pick<Metrics, 'deadLetter'> = noMetrics,
  ) {}

  async send(letter: DeadLetterMessage): Promise<void> {
    const body = this.fit(letter);
    try {
      await this.js.publish(this.subject, JSON.stringify(body));
    } catch (err) {
      this.logger.error({ subject: letter.subject, reason: letter.reason, err }, 'cannot store a dead letter');
      throw jetstreamFailure('dead-letter publish', err);
    }
    this.metrics.deadLetter('message', reasonCode(letter.reason));
    this.logger.warn({ subject: letter.subject, reason: letter.reason }, 'inbound message dead-lettered');
  }

  private fit(letter: DeadLetterMessage): DeadLetterMessage {
    if (letter.data.length <= this.dataLimit) return letter;
    return {
      subject: letter.subject,
      reason: `${letter.reason} (data cut to the first ${this.dataLimit} of ${letter.data.length} characters)`,
      data: letter.data.slice(0, this.dataLimit),
    };
  }
}
