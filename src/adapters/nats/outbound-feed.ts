import type { NatsConnection } from '@nats-io/transport-node';
import type { Logger } from '../../logger.js';
import type { Outbound, OutboundFeed } from '../../ports/event-bus.js';
import { natsSubjects } from './subjects.js';

/**
 * The outbound subjects, heard with core subscriptions (the statuses, budget notices,
 * project states, approval requests and expiries, dead letters every instance publishes
 * once the change behind them is durable). A body that is not JSON is logged and skipped.
 */
export function natsOutboundFeed(connection: NatsConnection, subjectPrefix: string, logger: Logger): OutboundFeed {
  const subjects = natsSubjects(subjectPrefix);
  const kinds: [string, Outbound['kind']][] = [
    [`${subjectPrefix}.status.>`, 'status'],
    [`${subjectPrefix}.budget.>`, 'budget'],
    [`${subjectPrefix}.projects.>`, 'project'],
    [`${subjectPrefix}.approvals.requested.>`, 'approval_requested'],
    [`${subjectPrefix}.approvals.expired.>`, 'approval_expired'],
    [subjects.dlq, 'dlq'],
  ];
  return {
    async subscribe(listener) {
      const subs = kinds.map(([subject, kind]) =>
        connection.subscribe(subject, {
          callback: (err, msg) => {
            if (err) {
              logger.warn({ err, subject }, 'outbound feed subscription failed');
              return;
            }
            let body: unknown;
            try {
              body = msg.json();
            } catch (e) {
              logger.warn({ err: e, subject: msg.subject }, 'outbound message is not JSON; skipped');
              return;
            }
            listener({ kind, body } as Outbound);
          },
        }),
      );
      // The subscriptions are registered with the server before anything is expected of them.
      await connection.flush();
      return async () => {
        for (const s of subs) s.unsubscribe();
      };
    },
  };
}
