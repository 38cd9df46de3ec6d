import type { NatsConnection, Subscription } from '@nats-io/transport-node';

/** One message seen on a watched subject (JSON-decoded when it is JSON). */
export interface Seen<T = unknown> {
  subject: string;
  body: T;
  /** Order of arrival over every subject of the watch. */
  seq: number;
  /** When it arrived (Date.now()). */
  at: number;
}

/**
 * Core subscriptions on several subjects, recording every message in arrival order (a
 * message of several dispatches, `{"dispatches":[…]}`, as one message per dispatch). The
 * orchestrator publishes notifications from one connection, so their order here is the
 * order they were published in.
 */
export class NatsWatch {
  readonly messages: Seen[] = [];
  /** Messages of several dispatches seen (each recorded as one message per dispatch). */
  dispatchBatches = 0;
  private readonly subs: Subscription[] = [];

  private constructor() {}

  static async start(nc: NatsConnection, subjects: readonly string[]): Promise<NatsWatch> {
    const watch = new NatsWatch();
    for (const subject of subjects) {
      watch.subs.push(
        nc.subscribe(subject, {
          callback: (err, msg) => {
            if (err) return;
            let body: unknown;
            try {
              body = msg.json();
            } catch {
              body = msg.string();
            }
            // A message of several dispatches (DISPATCH_BATCH) is recorded as one per dispatch.
            const bodies = isDispatchBatch(body) ? body.dispatches : [body];
            if (isDispatchBatch(body)) watch.dispatchBatches++;
            for (const b of bodies) watch.messages.push({ subject: msg.subject, body: b, seq: watch.messages.length, at: Date.now() });
          },
        }),
      );
    }
    await nc.flush(); // the subscriptions are registered at the server
    return watch;
  }

  /** The messages whose subject starts with `subjectPrefix` (and match `where`). */
  on<T>(subjectPrefix: string, where: (body: T) => boolean = () => true): Seen<T>[] {
    return (this.messages as Seen<T>[]).filter((m) => m.subject.startsWith(subjectPrefix) && where(m.body));
  }

  /** Polls until a message of `subjectPrefix` matches `where`; returns it. */
  async waitFor<T>(subjectPrefix: string, where: (body: T) => boolean, what: string, timeoutMs = 60_000): Promise<Seen<T>> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const found = this.on<T>(subjectPrefix, where)[0];
      if (found) return found;
      if (Date.now() > deadline) throw new Error(`gave up waiting for ${what} after ${timeoutMs} ms`);
      await new Promise((r) => setTimeout(r, 25));
    }
  }

  close(): void {
    for (const s of this.subs) s.unsubscribe();
  }
}

function isDispatchBatch(body: unknown): body is { dispatches: unknown[] } {
  return typeof body === 'object' && body !== null && Array.isArray((body as { dispatches?: unknown }).dispatches);
}

/** Polls `check` until it holds; the limit only bounds a hang (not a timing assertion). */
export async function until(check: () => boolean | Promise<boolean>, what: string, timeoutMs = 60_000, intervalMs = 50): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`gave up waiting for ${what} after ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}
