import { randomBytes } from 'node:crypto';
import { jetstreamManager } from '@nats-io/jetstream';
import { connect, type NatsConnection, type NodeConnectionOptions, type Subscription } from '@nats-io/transport-node';

/**
 * The shared test NATS (JetStream enabled). Tests never touch what is not theirs: each
 * file works under its own random subject prefix and stream-name prefix, and deletes its
 * streams (only those) at the end.
 */
export const TEST_NATS_URL = process.env.NATS_URL ?? 'nats://127.0.0.1:4222';

export interface TestNatsScope {
  /** Subject prefix, e.g. `t1a2b3c4d`. */
  subjectPrefix: string;
  /** Stream-name prefix, e.g. `T1A2B3C4D`. */
  streamPrefix: string;
}

export function randomNatsScope(): TestNatsScope {
  const id = randomBytes(5).toString('hex');
  return { subjectPrefix: `t${id}`, streamPrefix: `T${id.toUpperCase()}` };
}

/** A test's connection; `extra` adds credentials or TLS (a private server's `clientOptions`). */
export function connectTestNats(name: string, servers: string = TEST_NATS_URL, extra: Partial<NodeConnectionOptions> = {}): Promise<NatsConnection> {
  return connect({ servers, name: `test-${name}`, maxReconnectAttempts: -1, reconnectTimeWait: 250, ...extra });
}

/** Deletes the streams whose names start with `<streamPrefix>_`; returns their names. */
export async function deleteStreams(nc: NatsConnection, streamPrefix: string): Promise<string[]> {
  const jsm = await jetstreamManager(nc);
  const mine: string[] = [];
  for await (const name of jsm.streams.names()) if (name.startsWith(`${streamPrefix}_`)) mine.push(name);
  for (const name of mine) await jsm.streams.delete(name);
  return mine;
}

/** Polls `check` until it returns true; fails after `limitMs` (a liveness bound, not a timing assertion). */
export async function waitFor(check: () => boolean | Promise<boolean>, what: string, limitMs = 20_000, intervalMs = 20): Promise<void> {
  const deadline = Date.now() + limitMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`gave up waiting for ${what} after ${limitMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
  }
}

export interface Collected<T = unknown> {
  subject: string;
  body: T;
}

/** A core subscription recording every message (JSON-decoded) into `messages`. */
export function collect<T = unknown>(nc: NatsConnection, subject: string): { messages: Collected<T>[]; sub: Subscription } {
  const messages: Collected<T>[] = [];
  const sub = nc.subscribe(subject, {
    callback: (err, msg) => {
      if (err) return;
      try {
        messages.push({ subject: msg.subject, body: msg.json<T>() });
      } catch {
        messages.push({ subject: msg.subject, body: msg.string() as T });
      }
    },
  });
  return { messages, sub };
}

/** Waits for `promise` at most `limitMs`; teardown uses it so a stuck close cannot keep a test file's streams alive. */
export async function atMost(promise: Promise<unknown> | undefined, limitMs: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  try {
    await Promise.race([promise, new Promise((resolve) => (timer = setTimeout(resolve, limitMs)))]);
  } finally {
    clearTimeout(timer);
  }
}

/** A promise with its resolve function, for handlers a test releases. */
export function gate<T = void>(): { promise: Promise<T>; open: (value: T) => void } {
  let open!: (value: T) => void;
  const promise = new Promise<T>((resolve) => {
    open = resolve;
  });
  return { promise, open };
}
