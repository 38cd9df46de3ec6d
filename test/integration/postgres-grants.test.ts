import { randomBytes } from 'node:crypto';
import { cp, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createBlackboard } from '../../src/adapters/blackboards.js';
import { InProcessEventBus } from '../../src/adapters/memory/event-bus.js';
import { DEFAULT_MIGRATIONS_DIR, migrate } from '../../src/adapters/postgres/migrate.js';
import { PgSqlClient } from '../../src/adapters/postgres/sql-client.js';
import { loadConfig } from '../../src/config/config.js';
import { runDemo } from '../../src/demo/demo.js';
import { MigrationError } from '../../src/errors.js';
import { silentLogger } from '../../src/logger.js';
import { closeClients, connectTestRedis, deleteKeysWithPrefix, randomPrefix, TEST_REDIS_URL } from '../helpers/redis.js';
import { TEST_DATABASE_URL } from '../helpers/pg-schema.js';
import { runCli } from '../helpers/service-process.js';

/**
 * deploy/postgres/roles.sql on the shared server, under names of this file's own (a schema
 * and two roles, dropped at the end): the owner runs `orchestrator migrate`; the runtime
 * role, which may not create anything, then starts the service and runs a whole project;
 * with a migration pending it is stopped with what to do.
 */

const id = randomBytes(5).toString('hex');
const SCHEMA = `t_grants_${id}`;
const OWNER = `${SCHEMA}_owner`;
const RUNTIME = `${SCHEMA}_rt`;
const database = new URL(TEST_DATABASE_URL).pathname.slice(1);
const urlAs = (role: string) => {
  const url = new URL(TEST_DATABASE_URL);
  url.username = role;
  url.password = '';
  return url.toString();
};

let admin: PgSqlClient;
let redisPrefix: string;
const clients: PgSqlClient[] = [];

beforeAll(async () => {
  admin = new PgSqlClient({ connectionString: TEST_DATABASE_URL, max: 1 });
  const roles = (await readFile(new URL('../../deploy/postgres/roles.sql', import.meta.url), 'utf8'))
    .replaceAll('lap_owner', OWNER)
    .replaceAll('lap_runtime', RUNTIME)
    .replace(/\blap\b/g, SCHEMA)
    .replace('ON DATABASE postgres', `ON DATABASE ${database}`);
  await admin.exec(roles);
  redisPrefix = randomPrefix('grants');
});

afterAll(async () => {
  await Promise.allSettled(clients.map((c) => c.close()));
  const redis = connectTestRedis('grants-cleanup');
  await deleteKeysWithPrefix(redis, redisPrefix);
  await closeClients([redis]);
  await admin.exec(`DROP SCHEMA IF EXISTS ${SCHEMA} CASCADE`);
  await admin.exec(`DROP OWNED BY ${OWNER}, ${RUNTIME}`);
  await admin.exec(`DROP ROLE IF EXISTS ${RUNTIME}`);
  await admin.exec(`DROP ROLE IF EXISTS ${OWNER}`);
  await admin.close();
});

const env = (role: string) => ({
  DATABASE_URL: urlAs(role),
  DATABASE_SCHEMA: SCHEMA,
  DATABASE_POOL_SIZE: '4',
  REDIS_URL: TEST_REDIS_URL,
  REDIS_KEY_PREFIX: `${redisPrefix}:k`,
  TASK_QUEUE_KEY: `${redisPrefix}:queue`,
  INSTANCE_ID: `grants-${id}`,
});

function client(role: string): PgSqlClient {
  const c = new PgSqlClient({ connectionString: urlAs(role), schema: SCHEMA, max: 1 });
  clients.push(c);
  return c;
}

describe('the PostgreSQL roles of deploy/postgres/roles.sql', () => {
  it('the runtime role may not apply the migrations: start says to run `orchestrator migrate` as the owner', async () => {
    const config = loadConfig(env(RUNTIME));
    const err = await createBlackboard(config, silentLogger()).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(MigrationError);
    expect((err as Error).message).toMatch(/pending .*orchestrator migrate.* owner/);
    const { rows } = await admin.query<{ n: string }>(`SELECT count(*)::text AS n FROM pg_tables WHERE schemaname = $1`, [SCHEMA]);
    expect(rows[0]!.n).toBe('0');
  });

  it('`orchestrator migrate` as the owner, then the runtime role starts without DDL and runs a project to completion', async () => {
    const migrated = await runCli(['migrate'], env(OWNER));
    expect(migrated.code, migrated.stderr).toBe(0);
    expect(migrated.stdout).toMatch(/^applied: /);

    const runtime = client(RUNTIME);
    await expect(runtime.query('CREATE TABLE sneaky (id int)')).rejects.toThrow(/permission denied/);
    await expect(runtime.query('DROP TABLE tasks')).rejects.toThrow(/must be owner/);
    await expect(runtime.query('ALTER TABLE tasks ADD COLUMN x int')).rejects.toThrow(/must be owner/);

    const config = loadConfig(env(RUNTIME), { scheduler: { intervalSeconds: 0.05, retryBackoffSeconds: 0.1 } });
    const blackboard = await createBlackboard(config, silentLogger());
    const bus = new InProcessEventBus();
    try {
      const result = await runDemo({
        environment: {
          blackboard,
          bus,
          async startAgent(agent, handle) {
            const unregister = bus.registerAgent(agent, async (task) => {
              const r = await handle(task);
              await bus.sendResult(task.projectId, { taskId: task.taskId, fencingToken: task.fencingToken, ...r });
            });
            return async () => unregister();
          },
          observe: async (listener) => {
            const unsubscribe = bus.subscribe(listener);
            return async () => unsubscribe();
          },
          decide: (projectId, decision) => bus.sendDecision(projectId, decision),
          close: async () => undefined,
        },
        config,
        logger: silentLogger(),
        write: () => undefined,
        tty: false,
        rejectFirst: true,
        shots: 2,
        budget: 25,
        speed: 0.05,
      });
      expect(result.state).toBe('completed');
      const { rows } = await runtime.query<{ status: string; n: string }>('SELECT status, count(*)::text AS n FROM tasks WHERE project_id = $1 GROUP BY status', [result.projectId]);
      expect(Object.fromEntries(rows.map((r) => [r.status, r.n]))).toMatchObject({ COMPLETED: expect.any(String) });
    } finally {
      await blackboard.close();
    }
  }, 120_000);

  it('a migration pending: the runtime role applies nothing and names the owner; the owner applies it', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'lap-migrations-'));
    try {
      await cp(DEFAULT_MIGRATIONS_DIR, dir, { recursive: true });
      await writeFile(join(dir, '999_extra.sql'), 'CREATE TABLE extra_table (id int);');
      const err = await migrate(client(RUNTIME), { dir }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(MigrationError);
      expect((err as Error).message).toMatch(/1 migration\(s\) pending \(999_extra\.sql\).*permission denied.*orchestrator migrate/);
      expect((await migrate(client(OWNER), { dir })).map((m) => m.name)).toEqual(['extra']);
      expect(await migrate(client(RUNTIME), { dir })).toEqual([]);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
