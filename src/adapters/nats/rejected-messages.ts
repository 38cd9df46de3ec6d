import { DeliverPolicy, jetstream, jetstreamManager } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import { ServiceUnavailableError } from '../../errors.js';
import type { RejectedMessageView as RejectedMessage } from '../../ports/console.js';
import { defaultStreamPrefix, streamNames } from './streams.js';

/**
 * The latest rejected inbound messages (not JSON, a schema violation, an unknown project,
 * a stale fencing token…), read from the `<PREFIX>_DLQ` stream by an ordered consumer of
 * the reader's own (the CLI's `dlq --messages`, the console's dead letters): the stream is
 * the record, the orchestrator does not hold them. Newest first; `before` a sequence number, for the page before it.
 */
export async function rejectedMessages(nc: NatsConnection, subjectPrefix: string, limit: number, before?: number): Promise<{ items: RejectedMessage[]; next: number | null }> {
  const stream = streamNames(defaultStreamPrefix(subjectPrefix)).dlq;
  let first: number;
  let last: number;
  try {
    const info = await (await jetstreamManager(nc)).streams.info(stream);
    first = info.state.first_seq;
    last = info.state.last_seq;
  } catch (err) {
    throw new ServiceUnavailableError('nats', `cannot read the stream ${stream} (${(err as Error).message}); \`orchestrator start\` creates it`, { cause: err });
  }
  const end = Math.min(last, before === undefined ? last : before - 1);
  if (end < first || end === 0) return { items: [], next: null };
  const start = Math.max(first, end - limit + 1);
  const consumer = await jetstream(nc).consumers.get(stream, { deliver_policy: DeliverPolicy.StartSequence, opt_start_seq: start });
  const items: RejectedMessage[] = [];
  try {
    const batch = await consumer.fetch({ max_messages: end - start + 1, expires: 5_000 });
    for await (const m of batch) {
      if (m.seq > end) break;
      let body: { subject?: unknown; reason?: unknown; data?: unknown } = {};
      try {
        body = m.json();
      } catch {
        // Not a dead letter's body: shown as it is.
      }
      items.push({
        seq: m.seq,
        at: new Date(Math.floor(m.info.timestampNanos / 1_000_000)).toISOString(),
        subject: typeof body.subject === 'string' ? body.subject : m.subject,
        reason: typeof body.reason === 'string' ? body.reason : '—',
        data: typeof body.data === 'string' ? body.data : m.string(),
      });
      if (m.seq >= end) break;
    }
  } finally {
    await consumer.delete().catch(() => undefined);
  }
  items.reverse();
  return { items, next: start > first ? start : null };
}

