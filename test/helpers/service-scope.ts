import { randomBytes } from 'node:crypto';
import type { NatsConnection } from '@nats-io/transport-node';
import type { Redis } from 'ioredis';
import type { PgSqlClient } from '../../src/adapters/postgres/sql-client.js';
import { connectTestNats, deleteStreams, TEST_NATS_URL } from './nats.js';
import { createTestSchema, TEST_DATABASE_URL, type TestSchema } from './pg-schema.js';
import { closeClients, connectTestRedis, deleteKeysWithPrefix, randomPrefix, TEST_REDIS_URL } from './redis.js';

/**
 * Everything one end-to-end test file owns on the shared servers: a PostgreSQL schema,
 * a Redis key prefix, a NATS subject prefix (and the streams named from it), and the
 * environment that points `orchestrator start` and the agents at them. `cleanup` removes
 * exactly those (and nothing else).
 */
export interface ServiceScope {
  /** NATS subject prefix, e.g. `e2e1a2b3c4d5e`. */
  prefix: string;
  /** Its stream-name prefix (upper-cased), e.g. `E2E1A2B3C4D5E`. */
  streamPrefix: string;
  /** Environment of the service, the agents and the CLI commands. */
  env: Record<string, string>;
  schema: TestSchema;
  /** Reads the service's tables directly. */
  sql: PgSqlClient;
  /** The test's own NATS connection. */
  nc: NatsConnection;
  cleanup(): Promise<void>;
}

export async function createServiceScope(extraEnv: Record<string, string> = {}): Promise<ServiceScope> {
  const id = randomBytes(6).toString('hex');
  const prefix = `e2e${id}`;
  const streamPrefix = prefix.toUpperCase();
  const redisPrefix = randomPrefix('e2e');
  const schema = await createTestSchema();
  let nc: NatsConnection | undefined;
  let redis: Redis | undefined;
  try {
    nc = await connectTestNats(`e2e-${id}`);
    redis = connectTestRedis(`e2e-${id}`);
  } catch (err) {
    await schema.drop();
    throw err;
  }
  const env: Record<string, string> = {
    DATABASE_URL: TEST_DATABASE_URL,
    DATABASE_SCHEMA: schema.name,
    DATABASE_POOL_SIZE: '5',
    REDIS_URL: TEST_REDIS_URL,
    REDIS_KEY_PREFIX: `${redisPrefix}:k`,
    TASK_QUEUE_KEY: `${redisPrefix}:queue`,
    NATS_URL: TEST_NATS_URL,
    NATS_SUBJECT_PREFIX: prefix,
    SCHEDULER_INTERVAL: '0.05',
    RETRY_BACKOFF_BASE: '0.1',
    LOG_LEVEL: 'warn',
    AGENT_DURATION_MS: '150',
    ...extraEnv,
  };
  const ownNc = nc;
  const ownRedis = redis;
  return {
    prefix,
    streamPrefix,
    env,
    schema,
    sql: schema.client(),
    nc: ownNc,
    async cleanup() {
      const errors: unknown[] = [];
      const attempt = async (fn: () => Promise<unknown>) => {
        try {
          await fn();
        } catch (err) {
          errors.push(err);
        }
      };
      await attempt(() => deleteStreams(ownNc, streamPrefix));
      await attempt(() => ownNc.close());
      await attempt(() => deleteKeysWithPrefix(ownRedis, redisPrefix));
      await attempt(() => closeClients([ownRedis]));
      await attempt(() => schema.drop());
      if (errors.length) throw errors[0];
    },
  };
}
