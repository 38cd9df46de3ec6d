import type { NatsConnection } from '@nats-io/transport-node';
import type { OrchestratorConfig } from '../config/config.js';
import { ErrorCode, OrchestratorError, ServiceUnavailableError } from '../errors.js';
import type { QueryKind } from '../domain/messages.js';
import { natsSubjects } from '../adapters/nats/subjects.js';

/** An error the orchestrator answered with: its code (`ERR_PROJECT_NOT_FOUND`, …) and message. */
export class RemoteError extends OrchestratorError {
  readonly remoteCode: string;
  constructor(code: string, message: string) {
    super((Object.values(ErrorCode) as string[]).includes(code) ? (code as ErrorCode) : ErrorCode.Validation, message);
    this.remoteCode = code;
  }
}

const REQUEST_TIMEOUT_MS = 10_000;

/** One request-reply on `subject` in the `{ok, result | error}` envelope of the control and query subjects. */
export async function ask<T>(nc: NatsConnection, config: OrchestratorConfig, subject: string, body: unknown): Promise<T> {
  let text: string;
  try {
    text = (await nc.request(subject, JSON.stringify(body), { timeout: REQUEST_TIMEOUT_MS })).string();
  } catch (err) {
    throw new ServiceUnavailableError(
      'orchestrator',
      `no orchestrator answered on ${subject} (${(err as Error).message}); is \`orchestrator start\` running with NATS_SUBJECT_PREFIX=${config.nats.subjectPrefix}?`,
      { cause: err },
    );
  }
  let reply: { ok: true; result: T } | { ok: false; error: { code: string; message: string } };
  try {
    reply = JSON.parse(text) as typeof reply;
  } catch (err) {
    throw new RemoteError(ErrorCode.Validation, `the answer on ${subject} is not JSON: ${text.slice(0, 200)}`);
  }
  if (!reply.ok) throw new RemoteError(reply.error.code, reply.error.message);
  return reply.result;
}

/** A query (`<prefix>.query.<kind>`): one page. */
export function query<T>(nc: NatsConnection, config: OrchestratorConfig, kind: QueryKind, body: Record<string, unknown>): Promise<T> {
  return ask<T>(nc, config, natsSubjects(config.nats.subjectPrefix).query(kind), body);
}

/** A refusal being watched for: the reason, once the orchestrator has dead-lettered the message. */
export interface RefusalWatch {
  /** The dead letter's reason; null while none came. */
  readonly reason: string | null;
  close(): void;
}

/**
 * Watches the dead-letter subject for the refusal of one message the CLI sends (on
 * `subject`, recognised by its body with `isOurs`): the orchestrator dead-letters what it
 * refuses with the reason, and the command says why instead of only timing out.
 */
export function watchRefusal(nc: NatsConnection, dlqSubject: string, subject: string, isOurs: (body: Record<string, unknown>) => boolean): RefusalWatch {
  let reason: string | null = null;
  const sub = nc.subscribe(dlqSubject, {
    callback: (err, msg) => {
      if (err) return;
      try {
        const letter = msg.json<{ subject?: string; reason?: string; data?: string }>();
        if (letter.subject === subject && isOurs(JSON.parse(letter.data ?? '{}') as Record<string, unknown>)) reason = letter.reason ?? 'refused';
      } catch {
        // Not a dead letter of this message.
      }
    },
  });
  return {
    get reason() {
      return reason;
    },
    close: () => sub.unsubscribe(),
  };
}
