/**
 * The shared servers as the benchmark process sees them, and the isolated environments
 * of a run: each environment has its own PostgreSQL schema, Redis key prefix and NATS
 * subject prefix (hence its own streams). Everything a run creates carries the run id,
 * so `cleanupAll` also removes what a crashed earlier step left behind — of this run only.
 */
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { jetstream, jetstreamManager, type JetStreamClient, type JetStreamManager } from '@nats-io/jetstream';
import { Redis, type RedisOptions } from 'ioredis';
import pg from 'pg';
import { migrate } from '../../src/adapters/postgres/migrate.js';
import { PgSqlClient } from '../../src/adapters/postgres/sql-client.js';
import type { BenchConfig } from './config.js';
import { sleep } from './stats.js';

export interface BenchEnv {
  id: string;
  schema: string;
  /** Redis prefix of the orchestrator's leases and fencing counter. */
  redisPrefix: string;
  queueKey: string;
  subjectPrefix: string;
  streamPrefix: string;
}

/** Connection options from a redis:// URL, for ioredis and BullMQ alike (BullMQ wants maxRetriesPerRequest null). */
export interface RedisConnectionOptions {
  host: string;
  port: number;
  db: number;
  password?: string;
  username?: string;
  maxRetriesPerRequest: null;
}

export function redisOptions(url: string): RedisConnectionOptions {
  const u = new URL(url);
  return {
    host: u.hostname || '127.0.0.1',
    port: Number(u.port || 6379),
    db: u.pathname.length > 1 ? Number(u.pathname.slice(1)) : 0,
    ...(u.password ? { password: decodeURIComponent(u.password) } : {}),
    ...(u.username ? { username: decodeURIComponent(u.username) } : {}),
    maxRetriesPerRequest: null,
  };
}

export class Infra {
  private readonly envs: BenchEnv[] = [];
  private counter = 0;
  private closed = false;

  private constructor(
    readonly config: BenchConfig,
    readonly pg: pg.Pool,
    readonly redis: Redis,
    readonly nc: NatsConnection,
    readonly js: JetStreamClient,
    readonly jsm: JetStreamManager,
  ) {}

  static async connect(config: BenchConfig): Promise<Infra> {
    const pool = new pg.Pool({ connectionString: config.databaseUrl, max: 4, application_name: `bench-e2e-${config.runId}` });
    await pool.query('SELECT 1');
    const redis = new Redis({ ...redisOptions(config.redisUrl), connectionName: `bench-e2e-${config.runId}` });
    await redis.ping();
    const nc = await connect({ servers: config.natsUrl.split(','), name: `bench-e2e-${config.runId}` });
    const jsm = await jetstreamManager(nc);
    return new Infra(config, pool, redis, nc, jetstream(nc), jsm);
  }

  /** Where BullMQ keys of this run live (`<prefix>:<queue>:…`). */
  get bullPrefix(): string {
    return `bench:e2e:${this.config.runId}:bull`;
  }

  newEnv(label: string): BenchEnv {
    const n = this.counter++;
    const id = `${this.config.runId}_${n}_${label}`.toLowerCase().replace(/[^a-z0-9_]/g, '_');
    const env: BenchEnv = {
      id,
      schema: `bench_e2e_${id}`,
      redisPrefix: `bench:e2e:${this.config.runId}:${n}`,
      queueKey: `bench:e2e:${this.config.runId}:${n}:queue`,
      subjectPrefix: `bench_${id}`,
      streamPrefix: `BENCH_${id}`.toUpperCase(),
    };
    this.envs.push(env);
    return env;
  }

  /** Creates the schema with the orchestrator's migrations (for seeding before it starts). */
  async migrate(env: BenchEnv): Promise<void> {
    await this.pg.query(`CREATE SCHEMA IF NOT EXISTS ${env.schema}`);
    const sql = new PgSqlClient({ connectionString: this.config.databaseUrl, schema: env.schema, max: 1 });
    try {
      await migrate(sql);
    } finally {
      await sql.close();
    }
  }

  async countByStatus(env: BenchEnv, projectId?: string): Promise<Record<string, number>> {
    const { rows } = projectId
      ? await this.pg.query<{ status: string; n: string }>(`SELECT status, count(*) AS n FROM ${env.schema}.tasks WHERE project_id = $1 GROUP BY status`, [projectId])
      : await this.pg.query<{ status: string; n: string }>(`SELECT status, count(*) AS n FROM ${env.schema}.tasks GROUP BY status`);
    return Object.fromEntries(rows.map((r) => [r.status, Number(r.n)]));
  }

  async waitForProject(env: BenchEnv, projectId: string, limitMs = 30_000): Promise<void> {
    const deadline = Date.now() + limitMs;
    for (;;) {
      try {
        const { rowCount } = await this.pg.query(`SELECT 1 FROM ${env.schema}.projects WHERE project_id = $1`, [projectId]);
        if (rowCount) return;
      } catch {
        // the schema may not exist yet
      }
      if (Date.now() > deadline) throw new Error(`project ${projectId} not created within ${limitMs} ms`);
      await sleep(20);
    }
  }

  /** Publishes a pipeline event into the env's inbound stream (JetStream, de-duplicated by id). */
  async publishEvent(env: BenchEnv, projectId: string, type: string, id: string, payload: Record<string, unknown>): Promise<void> {
    const body = JSON.stringify({ id, type, projectId, payload, occurredAt: new Date().toISOString() });
    await this.js.publish(`${env.subjectPrefix}.events.${projectId}.${type}`, body, { msgID: id });
  }

  async deleteRedisKeys(pattern: string): Promise<number> {
    let cursor = '0';
    let deleted = 0;
    do {
      const [next, keys] = await this.redis.scan(cursor, 'MATCH', pattern, 'COUNT', 5_000);
      cursor = next;
      // UNLINK: a large sorted set is freed in the background, not while Redis serves others.
      if (keys.length) deleted += await this.redis.unlink(...keys);
    } while (cursor !== '0');
    return deleted;
  }

  async dropEnv(env: BenchEnv): Promise<void> {
    const errors: unknown[] = [];
    await this.pg.query(`DROP SCHEMA IF EXISTS ${env.schema} CASCADE`).catch((e: unknown) => errors.push(e));
    await this.deleteRedisKeys(`${env.redisPrefix}:*`).catch((e: unknown) => errors.push(e));
    for (const suffix of ['INBOUND', 'TASKS', 'DLQ']) {
      await this.jsm.streams.delete(`${env.streamPrefix}_${suffix}`).catch((e: unknown) => {
        if (!/not found/i.test(String(e))) errors.push(e);
      });
    }
    const i = this.envs.indexOf(env);
    if (i >= 0) this.envs.splice(i, 1);
    if (errors.length) throw new Error(`cleanup of ${env.id} incomplete: ${errors.map(String).join('; ')}`);
  }

  /** Run ids of other benchmark runs with schemas on this server now (another `npm run bench` disturbs the figures). */
  async otherRuns(): Promise<string[]> {
    const { rows } = await this.pg.query<{ nspname: string }>(`SELECT nspname FROM pg_namespace WHERE nspname LIKE 'bench\\_e2e\\_%'`);
    const ids = new Set(rows.map((r) => r.nspname.split('_')[2] ?? '?'));
    ids.delete(this.config.runId);
    return [...ids];
  }

  /** Removes everything of this run: known environments, then anything else carrying the run id. */
  async cleanupAll(): Promise<string[]> {
    const problems: string[] = [];
    for (const env of [...this.envs]) await this.dropEnv(env).catch((e: unknown) => problems.push(String(e)));
    const run = this.config.runId;
    try {
      const { rows } = await this.pg.query<{ nspname: string }>(
        `SELECT nspname FROM pg_namespace WHERE nspname LIKE $1`,
        [`bench_e2e_${run}\\_%`],
      );
      for (const r of rows) await this.pg.query(`DROP SCHEMA IF EXISTS ${r.nspname} CASCADE`);
    } catch (e) {
      problems.push(`schemas: ${String(e)}`);
    }
    await this.deleteRedisKeys(`bench:e2e:${run}:*`).catch((e: unknown) => problems.push(`redis: ${String(e)}`));
    try {
      for await (const s of this.jsm.streams.list()) {
        if (s.config.name.startsWith(`BENCH_${run.toUpperCase()}_`)) await this.jsm.streams.delete(s.config.name);
      }
    } catch (e) {
      problems.push(`streams: ${String(e)}`);
    }
    return problems;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.nc.drain().catch(() => undefined);
    await this.redis.quit().catch(() => this.redis.disconnect());
    await this.pg.end().catch(() => undefined);
  }
}
