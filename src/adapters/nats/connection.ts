import { readFile } from 'node:fs/promises';
import {
  connect,
  credsAuthenticator,
  nkeyAuthenticator,
  type Authenticator,
  type NatsConnection,
  type NodeConnectionOptions,
  type Status,
} from '@nats-io/transport-node';
import { redactUrl, type OrchestratorConfig } from '../../config/config.js';
import { ConfigError, ServiceUnavailableError } from '../../errors.js';
import type { Logger } from '../../logger.js';
import { unusableServer } from '../unusable-server.js';
import { diagnoseTls } from './tls-diagnosis.js';

/** The parsed `nats` configuration, plus connection tuning (all optional). */
export type NatsConnectionOptions = Omit<OrchestratorConfig['nats'], 'subjectPrefix' | 'maxPayloadBytes' | 'ackWaitSeconds' | 'dispatchBatch'> & {
  /** Client name, visible in the server's connection list (`connz`); default "orchestrator". */
  name?: string;
  /** Wait between reconnection attempts to the same server; default 2 000 ms. */
  reconnectTimeWaitMs?: number;
  /** Limit on establishing the first connection; default 5 000 ms. */
  connectTimeoutMs?: number;
};

export const DEFAULT_RECONNECT_TIME_WAIT_MS = 2_000;
export const DEFAULT_CONNECT_TIMEOUT_MS = 5_000;

/**
 * The prefix of the connection's reply subjects (`inboxPrefix`, default `_INBOX`): what
 * makes its own inboxes, beside nats.js's requests, must use it too, or a user allowed to
 * subscribe only to `<inboxPrefix>.>` is refused them.
 */
export function inboxPrefixOf(nc: NatsConnection): string | undefined {
  return (nc as { options?: { inboxPrefix?: string } }).options?.inboxPrefix || undefined;
}

/** The servers, safe to log (credentials embedded in URLs are masked). */
export function describeNatsServers(servers: readonly string[]): string {
  return servers.map((s) => redactUrl(s)).join(',');
}

/**
 * Builds the NATS.js v3 connection options. Secrets read from files (credentials, NKEY
 * seed) go into authenticators; user/password and token are passed as given.
 */
export async function buildConnectOptions(options: NatsConnectionOptions): Promise<NodeConnectionOptions> {
  const opts: NodeConnectionOptions = {
    servers: options.servers,
    name: options.name ?? 'orchestrator',
    // Reconnect for ever: the orchestrator keeps running through a NATS outage and the
    // JetStream consumers resume where they were once the connection is back.
    reconnect: true,
    maxReconnectAttempts: -1,
    reconnectTimeWait: options.reconnectTimeWaitMs ?? DEFAULT_RECONNECT_TIME_WAIT_MS,
    // The first connection must succeed: a wrong URL is reported at start-up, not hidden.
    waitOnFirstConnect: false,
    timeout: options.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS,
    // No Error (and stack capture) made up front for every request and JetStream publish —
    // one per dispatch on the hot path; failures still carry their own message and cause.
    noAsyncTraces: true,
  };
  if (options.inboxPrefix !== undefined) opts.inboxPrefix = options.inboxPrefix;
  if (options.user !== undefined) opts.user = options.user;
  if (options.password !== undefined) opts.pass = options.password;
  if (options.token !== undefined) opts.token = options.token;
  const authenticators: Authenticator[] = [];
  if (options.credsFile !== undefined) {
    authenticators.push(credsAuthenticator(await readSecretFile('nats.credsFile', options.credsFile)));
  }
  if (options.nkeySeedFile !== undefined) {
    const seed = new TextDecoder().decode(await readSecretFile('nats.nkeySeedFile', options.nkeySeedFile)).trim();
    authenticators.push(nkeyAuthenticator(new TextEncoder().encode(seed)));
  }
  if (authenticators.length === 1) opts.authenticator = authenticators[0]!;
  else if (authenticators.length > 1) opts.authenticator = authenticators;
  const tls = options.tls;
  if (tls && (tls.caFile !== undefined || tls.certFile !== undefined || tls.keyFile !== undefined)) {
    opts.tls = {};
    if (tls.caFile !== undefined) opts.tls.caFile = tls.caFile;
    if (tls.certFile !== undefined) opts.tls.certFile = tls.certFile;
    if (tls.keyFile !== undefined) opts.tls.keyFile = tls.keyFile;
  }
  return opts;
}

/**
 * Connects to NATS and logs the connection's life (disconnect, reconnect, errors) without
 * secrets. The returned connection reconnects by itself for ever; the caller closes it
 * (`drain()` or `close()`). A failed first connection is a ServiceUnavailableError.
 */
export async function connectNats(options: NatsConnectionOptions, logger: Logger): Promise<NatsConnection> {
  const target = describeNatsServers(options.servers);
  const connectOptions = await buildConnectOptions(options);
  let nc: NatsConnection;
  try {
    nc = await connect(connectOptions);
  } catch (err) {
    let detail = redactUrl(err instanceof Error ? err.message : String(err));
    // A refused client certificate ends nats.js's connect with `timeout` alone: ask the server why.
    if (isTimeout(err)) {
      const why = await diagnoseTls(options.servers, options.tls, Math.min(connectOptions.timeout ?? DEFAULT_CONNECT_TIMEOUT_MS, 3_000)).catch(() => null);
      if (why !== null) detail = `${why} (nats.js said: ${detail})`;
    }
    throw unusableServer('nats', 'NATS', target, detail, 'NATS_URL, NATS_USER, NATS_PASSWORD, NATS_TOKEN, NATS_CREDS_FILE, NATS_NKEY_SEED_FILE, NATS_TLS_CA_FILE, NATS_TLS_CERT_FILE, NATS_TLS_KEY_FILE', err);
  }
  logger.info({ servers: target, server: nc.getServer() }, 'connected to NATS');
  void logStatus(nc, logger);
  return nc;
}

function isTimeout(err: unknown): boolean {
  return err instanceof Error && (err.name === 'TimeoutError' || err.message === 'timeout');
}

async function logStatus(nc: NatsConnection, logger: Logger): Promise<void> {
  try {
    for await (const status of nc.status()) logOne(status, logger);
  } catch (err) {
    logger.debug({ err }, 'NATS status stream ended');
  }
}

/** The error as the log shows it (name, message, code, stack), with any credentials in a URL of its text redacted. */
function redactedError(err: Error): Error {
  const code = (err as { code?: unknown }).code;
  const safe = Object.assign(new Error(redactUrl(err.message)), { name: err.name }, code === undefined ? {} : { code });
  safe.stack = err.stack === undefined ? undefined : redactUrl(err.stack);
  return safe;
}

function logOne(status: Status, logger: Logger): void {
  switch (status.type) {
    case 'disconnect':
      logger.warn({ server: redactUrl(status.server) }, 'NATS disconnected; reconnecting');
      break;
    case 'reconnect':
      logger.info({ server: redactUrl(status.server) }, 'NATS reconnected');
      break;
    case 'reconnecting':
      logger.debug('NATS reconnecting');
      break;
    case 'error':
      logger.error({ err: redactedError(status.error) }, 'NATS connection error');
      break;
    case 'ldm':
      logger.warn({ server: redactUrl(status.server) }, 'NATS server entered lame duck mode');
      break;
    case 'staleConnection':
      logger.warn('NATS connection is stale');
      break;
    case 'slowConsumer':
      logger.warn({ subject: status.sub.getSubject(), pending: status.pending }, 'NATS slow consumer');
      break;
    case 'close':
      logger.info('NATS connection closed');
      break;
    default:
      break;
  }
}

async function readSecretFile(key: string, path: string): Promise<Uint8Array> {
  try {
    return await readFile(path);
  } catch (err) {
    const reason = (err as NodeJS.ErrnoException).code ?? 'unreadable';
    throw new ConfigError([{ key, value: path, reason: `cannot read the file (${reason})` }]);
  }
}

/**
 * Follows the connection's status: `disconnect` when it is lost, `reconnect` when it is
 * back; returns what stops following it. nats.js discards what was written while the
 * connection was down (each dial resets its outbound buffer), so a publish made then is
 * lost without an error, and a pull request (`consumer.fetch`) the server held is lost
 * with the connection while the client waits for its `expires` before it ends. Measured
 * by the chaos battery: after a 10 s NATS outage, dispatches resumed 11.6 s after NATS was
 * back, instead of a fraction of a second.
 */
export function followConnection(nc: NatsConnection, on: { disconnect?: () => void; reconnect?: () => void }): () => void {
  const events = nc.status()[Symbol.asyncIterator]();
  void (async () => {
    try {
      for (;;) {
        const next = await events.next();
        if (next.done) return;
        if (next.value.type === 'disconnect') on.disconnect?.();
        else if (next.value.type === 'reconnect') on.reconnect?.();
      }
    } catch {
      // the status stream ends with the connection
    }
  })();
  return () => void events.return?.();
}

/** Calls `fn` after every reconnect of `nc` (see followConnection: a puller pulls again at once); returns what stops it. */
export function onReconnect(nc: NatsConnection, fn: () => void): () => void {
  return followConnection(nc, { reconnect: fn });
}
