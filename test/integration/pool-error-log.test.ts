import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createBlackboard, type Blackboard } from '../../src/index.js';
import { PgSqlClient } from '../../src/adapters/postgres/sql-client.js';
import { createLogger } from '../../src/logger.js';
import { createDefectScope, eventually, type DefectScope } from '../helpers/defects.js';

/**
 * A PostgreSQL pool error (an idle connection the server terminated) reaches the logger as
 * an error object with its SQLSTATE `code`, not as a bare string, and never with the
 * connection string's password (the test server trusts any password).
 */

const PASSWORD = 'pool-s3cret-pw';
let scope: DefectScope;
let blackboard: Blackboard | undefined;
const raw: string[] = [];

beforeAll(async () => {
  scope = await createDefectScope();
}, 30_000);

afterAll(async () => {
  await blackboard?.close().catch(() => undefined);
  await scope?.cleanup();
}, 30_000);

describe('postgres pool error', () => {
  it('is logged as an object with its code, the connection string redacted', async () => {
    const url = new URL(scope.databaseUrl);
    url.password = PASSWORD;
    if (!url.username) url.username = 'postgres';
    const config = scope.config(`pool-${scope.id}`, { database: { url: url.toString() } });
    const logger = createLogger({ level: 'debug', destination: { write: (s: string) => void raw.push(s) } });
    blackboard = await createBlackboard(config, logger);
    await blackboard.projects.getProject('prj_none'); // an idle connection in the pool

    const admin = new PgSqlClient({ connectionString: scope.databaseUrl, max: 1 });
    try {
      const { rows } = await admin.query<{ terminated: boolean }>(
        'SELECT pg_terminate_backend(pid) AS terminated FROM pg_stat_activity WHERE application_name = $1',
        [`orchestrator-${config.instanceId}`],
      );
      expect(rows.length).toBeGreaterThan(0);
    } finally {
      await admin.close();
    }

    const poolLines = () => raw.map((l) => JSON.parse(l) as { msg: string; err?: unknown }).filter((l) => l.msg.startsWith('postgres pool error'));
    await eventually(() => poolLines().length > 0, 'the pool error logged');
    const line = poolLines()[0]!;
    expect(line.err).toMatchObject({ code: '57P01', message: expect.stringMatching(/terminating connection/) });
    expect(line.msg).toContain(':***@');
    expect(raw.join('')).not.toContain(PASSWORD);
  }, 60_000);
});
