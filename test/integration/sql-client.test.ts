import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  parseUtcTimestamp,
  PGliteSqlClient,
  PgSqlClient,
  redactConnectionString,
  type SqlClient,
} from '../../src/adapters/postgres/sql-client.js';
import { ClosedError, ConfigError } from '../../src/errors.js';
import { createTestSchema, TEST_DATABASE_URL, type TestSchema } from '../helpers/pg-schema.js';

function clientContract(name: string, open: () => Promise<{ sql: SqlClient; close(): Promise<void> }>): void {
  describe(`SqlClient: ${name}`, () => {
    let sql: SqlClient;
    let close: () => Promise<void>;
    const hostZone = process.env.TZ;
    beforeAll(async () => {
      process.env.TZ = 'America/St_Johns'; // UTC-03:30: a zone mistake cannot hide
      ({ sql, close } = await open());
      await sql.exec('CREATE TABLE kv (k TEXT PRIMARY KEY, v INTEGER NOT NULL)');
    });
    afterAll(async () => {
      await close();
      if (hostZone === undefined) delete process.env.TZ;
      else process.env.TZ = hostZone;
    });

    it('returns the same JS values on both drivers', async () => {
      const { rows } = await sql.query<Record<string, unknown>>(
        `SELECT '2025-06-30 23:59:58.123456'::timestamp AS ts, $1::timestamp AS param_ts,
                12.3456::decimal(10,4) AS money, 0::decimal(12,4) AS zero, 9007199254740991::bigint AS big,
                42::integer AS int, '{"a":[1,null,"x"]}'::jsonb AS j, NULL::timestamp AS none,
                current_setting('TimeZone') AS tz, (now() AT TIME ZONE 'UTC') - now()::timestamp AS drift`,
        ['2025-01-02T03:04:05.678Z'],
      );
      expect(rows[0]).toMatchObject({
        ts: new Date('2025-06-30T23:59:58.123Z'),
        param_ts: new Date('2025-01-02T03:04:05.678Z'),
        money: 12.3456,
        zero: 0,
        big: Number.MAX_SAFE_INTEGER,
        int: 42,
        j: { a: [1, null, 'x'] },
        none: null,
        tz: 'UTC',
      });
    });

    it('counts rows the same way', async () => {
      expect((await sql.query(`INSERT INTO kv VALUES ('a', 1), ('b', 2)`)).rowCount).toBe(2);
      expect((await sql.query(`SELECT * FROM kv`)).rowCount).toBe(2);
      expect((await sql.query(`UPDATE kv SET v = v + 1`)).rowCount).toBe(2);
      expect((await sql.query(`UPDATE kv SET v = v + 1 WHERE k = 'zz'`)).rowCount).toBe(0);
      await sql.query('DELETE FROM kv');
    });

    it('commits, rolls back on throw, and nests with savepoints', async () => {
      await sql.transaction(async (tx) => {
        await tx.query(`INSERT INTO kv VALUES ('c1', 1)`);
      });
      await expect(
        sql.transaction(async (tx) => {
          await tx.query(`INSERT INTO kv VALUES ('r1', 1)`);
          throw new Error('boom');
        }),
      ).rejects.toThrow('boom');
      await sql.transaction(async (tx) => {
        await tx.query(`INSERT INTO kv VALUES ('outer', 1)`);
        await expect(
          tx.transaction(async (inner) => {
            await inner.query(`INSERT INTO kv VALUES ('inner', 1)`);
            throw new Error('inner boom');
          }),
        ).rejects.toThrow('inner boom');
        await tx.transaction((inner) => inner.query(`INSERT INTO kv VALUES ('inner2', 1)`));
      });
      const { rows } = await sql.query<{ k: string }>('SELECT k FROM kv ORDER BY k');
      expect(rows.map((r) => r.k)).toStrictEqual(['c1', 'inner2', 'outer']);
      await sql.query('DELETE FROM kv');
    });

    it('runs concurrent read-modify-write transactions without losing updates', async () => {
      await sql.query(`INSERT INTO kv VALUES ('n', 0)`);
      await Promise.all(
        Array.from({ length: 8 }, () =>
          sql.transaction(async (tx) => {
            const { rows } = await tx.query<{ v: number }>(`SELECT v FROM kv WHERE k = 'n' FOR UPDATE`);
            await new Promise((r) => setImmediate(r)); // a window for another caller to interleave
            await tx.query(`UPDATE kv SET v = $1 WHERE k = 'n'`, [rows[0]!.v + 1]);
          }),
        ),
      );
      const { rows } = await sql.query<{ v: number }>(`SELECT v FROM kv WHERE k = 'n'`);
      expect(rows[0]!.v).toBe(8);
    });

    it('refuses queries once closed', async () => {
      const { sql: other, close: closeOther } = await open();
      await closeOther();
      await expect(other.query('SELECT 1')).rejects.toBeInstanceOf(ClosedError);
    });
  });
}

const schemas: TestSchema[] = [];
afterAll(async () => {
  await Promise.all(schemas.map((s) => s.drop()));
});

clientContract('pg', async () => {
  const schema = await createTestSchema();
  schemas.push(schema);
  const sql = schema.client({ max: 4 });
  return { sql, close: () => sql.close() };
});

clientContract('PGlite', async () => {
  const sql = new PGliteSqlClient();
  return { sql, close: () => sql.close() };
});

describe('PGliteSqlClient', () => {
  it('makes a statement outside a running transaction wait for it', async () => {
    const sql = new PGliteSqlClient();
    try {
      await sql.exec('CREATE TABLE t (v INTEGER)');
      const seen: number[] = [];
      const tx = sql.transaction(async (t) => {
        await t.query('INSERT INTO t VALUES (1)');
        await new Promise((r) => setImmediate(r));
        await t.query('INSERT INTO t VALUES (2)');
      });
      const outside = sql.query<{ n: number }>('SELECT count(*)::int AS n FROM t').then((r) => seen.push(r.rows[0]!.n));
      await Promise.all([tx, outside]);
      expect(seen).toStrictEqual([2]);
    } finally {
      await sql.close();
    }
  });
});

describe('PgSqlClient options', () => {
  it('refuses a schema that is not a plain identifier', () => {
    expect(() => new PgSqlClient({ connectionString: TEST_DATABASE_URL, schema: 'x; DROP TABLE y' })).toThrow(
      ConfigError,
    );
  });

  it('redacts the password of a connection string', () => {
    const shown = redactConnectionString('postgres://user:s3cret@db.example:5432/app');
    expect(shown).not.toContain('s3cret');
    expect(shown).toContain('user');
  });

  it('parses TIMESTAMP text as UTC', () => {
    expect(parseUtcTimestamp('2025-02-03 04:05:06')).toStrictEqual(new Date('2025-02-03T04:05:06.000Z'));
    expect(parseUtcTimestamp('2025-02-03 04:05:06.7')).toStrictEqual(new Date('2025-02-03T04:05:06.700Z'));
    expect(parseUtcTimestamp('0099-02-03 04:05:06').getUTCFullYear()).toBe(99);
  });
});
