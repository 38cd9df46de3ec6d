import { readFileSync } from 'node:fs';
import { Redis, type RedisOptions } from 'ioredis';
import { ConfigError, ServiceUnavailableError, type ConfigProblem } from '../../errors.js';

/**
 * Where and how to connect. Give either `url` (redis:// or rediss://) or host/port/db;
 * explicit fields override what the URL says.
 */
export interface RedisConnectionOptions {
  url?: string;
  host?: string;
  port?: number;
  db?: number;
  username?: string;
  password?: string;
  /** TLS on (rediss:// sets it too). */
  tls?: boolean;
  /** CA certificate file (PEM) the server's certificate must chain to, instead of the system's; turns TLS on. */
  tlsCaFile?: string;
  /** CLIENT SETNAME, visible in CLIENT LIST; default "orchestrator". */
  connectionName?: string;
  /** Do not connect until the first command or `connect()`; default false. */
  lazyConnect?: boolean;
  /** See DEFAULT_MAX_RETRIES_PER_REQUEST; null waits for ever (not advised). */
  maxRetriesPerRequest?: number | null;
  /** Reconnect backoff: base * 2^(attempt-1), capped at maxDelayMs. */
  reconnect?: { baseDelayMs?: number; maxDelayMs?: number };
  /** Limit on establishing one connection attempt; default 5 000 ms. */
  connectTimeoutMs?: number;
  /** Called with connection errors (the client reconnects by itself). Without it ioredis prints them. */
  onError?: (err: Error) => void;
}

/**
 * How many reconnection attempts a command survives before it is rejected. With the
 * default backoff (100 ms doubling, capped at 2 s) that is about 3 s of outage plus the
 * connection attempts themselves. Bounded on purpose: with null a command issued during
 * a long outage would hang for ever and the scheduler could never tell a slow Redis from
 * a dead one. The caller receives a ServiceUnavailableError (retryable) and the
 * scheduler retries it on its next tick; the queue content is rebuildable from the store.
 */
export const DEFAULT_MAX_RETRIES_PER_REQUEST = 5;
export const DEFAULT_RECONNECT_BASE_MS = 100;
export const DEFAULT_RECONNECT_MAX_MS = 2_000;

/** Reconnect delay for the given attempt (1-based): exponential, capped. */
export function reconnectDelay(attempt: number, baseMs: number, maxMs: number): number {
  const exp = Math.min(Math.max(attempt - 1, 0), 30);
  return Math.min(baseMs * 2 ** exp, maxMs);
}

/**
 * Builds an ioredis client set up for the queue and the lock manager:
 * - enableOfflineQueue: commands issued while disconnected wait in memory and are sent
 *   once the connection is back (never dropped silently); bounded by maxRetriesPerRequest.
 * - autoResendUnfulfilledCommands (ioredis default, kept): a command sent but unanswered
 *   when the connection dropped is sent again after reconnecting. The scripts are written
 *   for that: put is ZADD NX, extend/release compare-and-set, acquire recognises its own
 *   token. A resent ZPOPMIN may pop twice; the first pop's ids are then missing from the
 *   queue (never from the store) until the next rebuild. ioredis' other choice (false)
 *   leaves those promises pending for ever, which is worse.
 * - retryStrategy: capped exponential backoff, never gives up (the process keeps trying).
 * - reconnectOnError: reconnects and resends on READONLY (a replica after failover).
 * - enableReadyCheck off: the check sends INFO, which a least-privilege ACL user
 *   (deploy/redis/users.acl: no @dangerous) is refused on every connection; the first
 *   command waits for the connection anyway, and the start's PING checks it answers.
 */
export function createRedisClient(options: RedisConnectionOptions = {}): Redis {
  const base = options.url === undefined ? {} : parseRedisUrl(options.url);
  const baseDelay = options.reconnect?.baseDelayMs ?? DEFAULT_RECONNECT_BASE_MS;
  const maxDelay = options.reconnect?.maxDelayMs ?? DEFAULT_RECONNECT_MAX_MS;
  const problems = checkOptions(options, baseDelay, maxDelay);
  if (problems.length > 0) throw new ConfigError(problems);

  const tls = options.tls ?? (base.tls || options.tlsCaFile !== undefined);
  const ca = options.tlsCaFile === undefined ? undefined : readCaFile(options.tlsCaFile);
  const redisOptions: RedisOptions = {
    host: options.host ?? base.host ?? '127.0.0.1',
    port: options.port ?? base.port ?? 6379,
    db: options.db ?? base.db ?? 0,
    connectionName: options.connectionName ?? 'orchestrator',
    lazyConnect: options.lazyConnect ?? false,
    enableOfflineQueue: true,
    autoResendUnfulfilledCommands: true,
    enableReadyCheck: false,
    maxRetriesPerRequest:
      options.maxRetriesPerRequest === undefined
        ? DEFAULT_MAX_RETRIES_PER_REQUEST
        : options.maxRetriesPerRequest,
    connectTimeout: options.connectTimeoutMs ?? 5_000,
    keepAlive: 10_000,
    retryStrategy: (attempt) => reconnectDelay(attempt, baseDelay, maxDelay),
    reconnectOnError: (err) => (err.message.startsWith('READONLY') ? 2 : false),
  };
  const username = options.username ?? base.username;
  const password = options.password ?? base.password;
  if (username !== undefined) redisOptions.username = username;
  if (password !== undefined) redisOptions.password = password;
  if (tls) redisOptions.tls = ca === undefined ? {} : { ca };

  const client = new Redis(redisOptions);
  if (options.onError) client.on('error', options.onError);
  return client;
}

/** A log-safe description of the target: never contains the username or password. */
export function describeRedisTarget(options: RedisConnectionOptions): string {
  let base: ParsedUrl = {};
  try {
    if (options.url !== undefined) base = parseRedisUrl(options.url);
  } catch {
    return 'redis://<invalid url>';
  }
  const tls = options.tls ?? (base.tls || options.tlsCaFile !== undefined);
  const host = options.host ?? base.host ?? '127.0.0.1';
  const port = options.port ?? base.port ?? 6379;
  const db = options.db ?? base.db ?? 0;
  return `${tls ? 'rediss' : 'redis'}://${host}:${port}/${db}`;
}

/**
 * Turns whatever a Redis call rejected with into a retryable ServiceUnavailableError
 * (connection lost, retries exhausted, script error). Typed errors pass through.
 */
export function redisFailure(operation: string, err: unknown): Error {
  if (err instanceof ServiceUnavailableError) return err;
  const detail = err instanceof Error ? err.message : String(err);
  return new ServiceUnavailableError('redis', `redis ${operation} failed: ${detail}`, { cause: err });
}

function readCaFile(path: string): Buffer {
  try {
    return readFileSync(path);
  } catch (err) {
    const reason = (err as NodeJS.ErrnoException).code ?? 'unreadable';
    throw new ConfigError([{ key: 'redis.tls.caFile', value: path, reason: `cannot read the file (${reason})` }]);
  }
}

interface ParsedUrl {
  host?: string;
  port?: number;
  db?: number;
  username?: string;
  password?: string;
  tls?: boolean;
}

function parseRedisUrl(raw: string): ParsedUrl {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new ConfigError([{ key: 'redis.url', value: '<redacted>', reason: 'not a valid URL' }]);
  }
  const shown = redactUrl(url);
  if (url.protocol !== 'redis:' && url.protocol !== 'rediss:') {
    throw new ConfigError([{ key: 'redis.url', value: shown, reason: 'scheme must be redis: or rediss:' }]);
  }
  const parsed: ParsedUrl = { tls: url.protocol === 'rediss:' };
  if (url.hostname) parsed.host = url.hostname.replace(/^\[(.*)\]$/, '$1');
  if (url.port) parsed.port = Number(url.port);
  const dbPath = url.pathname.replace(/^\//, '');
  if (dbPath !== '') {
    if (!/^\d+$/.test(dbPath)) {
      throw new ConfigError([{ key: 'redis.url', value: shown, reason: 'path must be a database number' }]);
    }
    parsed.db = Number(dbPath);
  }
  if (url.username) parsed.username = decodeURIComponent(url.username);
  if (url.password) parsed.password = decodeURIComponent(url.password);
  return parsed;
}

function redactUrl(url: URL): string {
  const copy = new URL(url.href);
  if (copy.username) copy.username = '***';
  if (copy.password) copy.password = '***';
  return copy.href;
}

function checkOptions(options: RedisConnectionOptions, baseDelay: number, maxDelay: number): ConfigProblem[] {
  const problems: ConfigProblem[] = [];
  const { port, db, maxRetriesPerRequest, connectTimeoutMs } = options;
  if (port !== undefined && !(Number.isInteger(port) && port > 0 && port < 65_536)) {
    problems.push({ key: 'redis.port', value: String(port), reason: 'must be an integer in 1..65535' });
  }
  if (db !== undefined && !(Number.isInteger(db) && db >= 0)) {
    problems.push({ key: 'redis.db', value: String(db), reason: 'must be a non-negative integer' });
  }
  if (
    maxRetriesPerRequest !== undefined &&
    maxRetriesPerRequest !== null &&
    !(Number.isInteger(maxRetriesPerRequest) && maxRetriesPerRequest >= 0)
  ) {
    problems.push({
      key: 'redis.maxRetriesPerRequest',
      value: String(maxRetriesPerRequest),
      reason: 'must be a non-negative integer or null',
    });
  }
  if (!(Number.isFinite(baseDelay) && baseDelay > 0 && Number.isFinite(maxDelay) && maxDelay >= baseDelay)) {
    problems.push({
      key: 'redis.reconnect',
      value: `${baseDelay}..${maxDelay}`,
      reason: 'need 0 < baseDelayMs <= maxDelayMs',
    });
  }
  if (connectTimeoutMs !== undefined && !(Number.isInteger(connectTimeoutMs) && connectTimeoutMs > 0)) {
    problems.push({ key: 'redis.connectTimeoutMs', value: String(connectTimeoutMs), reason: 'must be a positive integer' });
  }
  return problems;
}
