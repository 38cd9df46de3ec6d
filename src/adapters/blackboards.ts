import type { Logger } from 'pino';
import type { OrchestratorConfig } from '../config/config.js';
import { ServiceUnavailableError } from '../errors.js';
import type { Clock } from '../ports/clock.js';
import type { Blackboard } from '../ports/blackboard.js';
import { PGliteSqlClient, PgSqlClient, redactConnectionString, type SqlClient } from './postgres/sql-client.js';
import { migrate } from './postgres/migrate.js';
import { PostgresCommit } from './postgres/commit.js';
import { PostgresCostStatsStore } from './postgres/cost-stats-store.js';
import { PostgresDeadLetterStore } from './postgres/dead-letter-store.js';
import { PostgresNoticeLedger } from './postgres/notice-ledger.js';
import { PostgresOperatorStats } from './postgres/operator-stats.js';
import { sqlHealthChecks } from './postgres/health.js';
import { PostgresProjectStore } from './postgres/project-store.js';
import { PostgresTaskStore } from './postgres/task-store.js';
import { MemoryTaskQueue } from './memory/task-queue.js';
import { MemoryLockManager } from './memory/lock-manager.js';
import { createRedisClient, describeRedisTarget } from './redis/connection.js';
import { RedisTaskQueue } from './redis/task-queue.js';
import { RedisLockManager } from './redis/lock-manager.js';
import { unusableServer } from './unusable-server.js';


/** The SQL half of a blackboard over one client: a store per aggregate, and the commit port. */
export type SqlStores = Omit<Blackboard, 'queue' | 'locks' | 'close' | 'checks'>;

/**
 * The PostgreSQL adapters over one SqlClient (a pg pool or PGlite). Each store writes only
 * its own aggregate's tables; PostgresCommit is the one that writes several together.
 */
export function sqlStores(sql: SqlClient): SqlStores {
  return {
    tasks: new PostgresTaskStore(sql),
    projects: new PostgresProjectStore(sql),
    commit: new PostgresCommit(sql),
    deadLetters: new PostgresDeadLetterStore(sql),
    costs: new PostgresCostStatsStore(sql),
    notices: new PostgresNoticeLedger(sql),
    stats: new PostgresOperatorStats(sql),
  };
}

function over(sql: SqlClient, rest: Pick<Blackboard, 'queue' | 'locks' | 'checks'>, close: () => Promise<void>): Blackboard {
  return { ...sqlStores(sql), ...rest, close };
}

/**
 * The embedded blackboard: PGlite (in-memory PostgreSQL, or on disk with `dataDir`) with
 * the same migrations and SQL as the server, and the in-memory queue and leases. No server
 * needed; the default of `orchestrator demo` and of fast tests.
 */
export async function createEmbeddedBlackboard(options: { dataDir?: string; clock?: Clock } = {}): Promise<Blackboard> {
  const sql = new PGliteSqlClient(options.dataDir ? { dataDir: options.dataDir } : {});
  await migrate(sql);
  return over(
    sql,
    { queue: new MemoryTaskQueue(), locks: new MemoryLockManager(options.clock ? { clock: options.clock } : {}), checks: sqlHealthChecks(sql) },
    () => sql.close(),
  );
}

/**
 * The production blackboard: PostgreSQL (migrations applied) and Redis. A server that
 * cannot be reached fails with ServiceUnavailableError naming it, where, and how to start it.
 */
export async function createBlackboard(config: OrchestratorConfig, logger: Logger): Promise<Blackboard> {
  const where = redactConnectionString(config.database.url);
  const sql = new PgSqlClient({
    connectionString: config.database.url,
    ...(config.database.schema === 'public' ? {} : { schema: config.database.schema }),
    max: config.database.poolSize,
    applicationName: `orchestrator-${config.instanceId}`.slice(0, 63),
    onError: (message, err) => logger.error({ err }, message),
  });
  try {
    // Created only when missing: CREATE SCHEMA IF NOT EXISTS asks for the right to create
    // schemas even when it exists, which the runtime role (deploy/postgres) does not have.
    const schema = config.database.schema;
    if (schema !== 'public' && (await sql.query('SELECT 1 FROM pg_namespace WHERE nspname = $1', [schema])).rows.length === 0) {
      await sql.query(`CREATE SCHEMA IF NOT EXISTS ${schema}`);
    }
    await sql.query('SELECT 1');
  } catch (err) {
    await sql.close().catch(() => undefined);
    throw unusableServer('postgres', 'PostgreSQL', where, (err as Error).message, 'DATABASE_URL', err);
  }
  try {
    await migrate(sql);
  } catch (err) {
    // The pool closed too: its idle connections would hold the exit for their idle timeout.
    await sql.close().catch(() => undefined);
    throw err;
  }
  // The last connection error (a refused login, a certificate not trusted): what a failed PING says is only that it gave up.
  let lastRedisError: Error | undefined;
  const redisOptions = {
    ...(config.redis.url ? { url: config.redis.url } : { host: config.redis.host, port: config.redis.port, db: config.redis.db }),
    ...(config.redis.password ? { password: config.redis.password } : {}),
    ...(config.redis.tls?.caFile ? { tlsCaFile: config.redis.tls.caFile } : {}),
    connectionName: `orchestrator-${config.instanceId}`,
    onError: (err: Error) => {
      lastRedisError = err;
      logger.warn({ err }, 'redis connection error');
    },
  };
  let redis: ReturnType<typeof createRedisClient>;
  try {
    redis = createRedisClient(redisOptions);
  } catch (err) {
    await sql.close();
    throw err;
  }
  try {
    await redis.ping();
  } catch (err) {
    redis.disconnect();
    await sql.close();
    const detail = (err as Error).message;
    const cause = lastRedisError && lastRedisError.message !== detail ? ` (last connection error: ${lastRedisError.message})` : '';
    throw unusableServer('redis', 'Redis', describeRedisTarget(redisOptions), `${detail}${cause}`, 'REDIS_URL, REDIS_PASSWORD, REDIS_TLS_CA_FILE', err);
  }
  return over(
    sql,
    {
      queue: new RedisTaskQueue({ redis, key: config.queue.key }),
      locks: new RedisLockManager({ redis, prefix: config.redis.keyPrefix }),
      checks: [
        ...sqlHealthChecks(sql),
        {
          name: 'redis',
          check: async () => {
            // Not connected: said at once (a PING would wait in the offline queue).
            if (redis.status !== 'ready') throw new Error(`not connected (${redis.status})${lastRedisError ? `: ${lastRedisError.message}` : ''}`);
            await redis.ping();
          },
        },
      ],
    },
    async () => {
      await redis.quit().catch(() => redis.disconnect());
      await sql.close();
    },
  );
}
