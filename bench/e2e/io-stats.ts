/**
 * Counts what the orchestrator process sends to PostgreSQL and Redis, by wrapping the
 * client prototypes of `pg` and `ioredis` in that process (bench code only; src is
 * untouched): statements per prepared-statement name (or the statement's first words),
 * with the time each waited for its reply, and Redis commands per name.
 */
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import pg from 'pg';
import { Redis } from 'ioredis';

export interface IoCounter {
  count: number;
  ms: number;
}
export interface IoStats {
  sql: Record<string, IoCounter>;
  redis: Record<string, number>;
}

const sql = new Map<string, IoCounter>();
const redis = new Map<string, number>();

function sqlKey(arg: unknown): string {
  if (typeof arg === 'string') return label(arg);
  if (typeof arg === 'object' && arg !== null) {
    const c = arg as { name?: unknown; text?: unknown };
    if (typeof c.name === 'string') return c.name;
    if (typeof c.text === 'string') return label(c.text);
  }
  return '?';
}

function label(text: string): string {
  const t = text.replace(/\s+/g, ' ').trim();
  const m = /^(BEGIN|COMMIT|ROLLBACK|SAVEPOINT|RELEASE)/i.exec(t);
  if (m) return m[1]!.toUpperCase();
  // Unnamed statements often share their column list: keep the verb, the table and the condition.
  const table = /\b(?:FROM|INTO|UPDATE)\s+([\w.]+)/i.exec(t)?.[1] ?? '';
  const where = /\bWHERE\s+(.*)$/i.exec(t)?.[1] ?? '';
  return `${t.split(' ')[0]!.toUpperCase()} ${table}${where ? ` WHERE ${where}` : ''}`.slice(0, 90);
}

function record(key: string, ms: number): void {
  const c = sql.get(key);
  if (c) {
    c.count++;
    c.ms += ms;
  } else sql.set(key, { count: 1, ms });
}

/**
 * Wraps the clients' prototypes. `srcRoot`: another checkout whose orchestrator runs in this
 * process (bench/ab.ts) — its own node_modules' `pg` and `ioredis` are wrapped, since those
 * are the ones its code uses.
 */
export function installIoStats(srcRoot?: string): void {
  let pgClient: { prototype: unknown } = pg.Client;
  let redisClass: { prototype: unknown } = Redis;
  if (srcRoot) {
    const require = createRequire(join(srcRoot, 'package.json'));
    pgClient = (require('pg') as typeof pg).Client;
    redisClass = (require('ioredis') as { Redis: typeof Redis }).Redis;
  }
  const proto = pgClient.prototype as { query: (...args: unknown[]) => unknown };
  const query = proto.query;
  proto.query = function (this: unknown, ...args: unknown[]): unknown {
    const key = sqlKey(args[0]);
    const start = performance.now();
    const last = args.length - 1;
    if (typeof args[last] === 'function') {
      const cb = args[last] as (...a: unknown[]) => void;
      args[last] = (...a: unknown[]) => {
        record(key, performance.now() - start);
        cb(...a);
      };
      return query.apply(this, args);
    }
    const out = query.apply(this, args);
    if (out && typeof (out as Promise<unknown>).then === 'function') {
      (out as Promise<unknown>).then(
        () => record(key, performance.now() - start),
        () => record(key, performance.now() - start),
      );
    } else {
      record(key, 0);
    }
    return out;
  };
  const rproto = redisClass.prototype as { sendCommand: (...args: unknown[]) => unknown };
  const send = rproto.sendCommand;
  rproto.sendCommand = function (this: unknown, ...args: unknown[]): unknown {
    const cmd = args[0] as { name?: string } | undefined;
    const name = cmd?.name ?? '?';
    redis.set(name, (redis.get(name) ?? 0) + 1);
    return send.apply(this, args);
  };
}

/** The counts since the last call (then reset). */
export function takeIoStats(): IoStats {
  const out: IoStats = {
    sql: Object.fromEntries([...sql].map(([k, v]) => [k, { count: v.count, ms: Math.round(v.ms) }])),
    redis: Object.fromEntries(redis),
  };
  sql.clear();
  redis.clear();
  return out;
}
