import type { HealthCheck } from '../../ports/health.js';
import { loadMigrations } from './migrate.js';
import type { SqlClient } from './sql-client.js';

/**
 * Readiness of the SQL store: `postgres` (the server answers a query) and `migrations`
 * (every migration file of this build is recorded as applied in the schema).
 */
export function sqlHealthChecks(sql: SqlClient, options: { migrationsDir?: string } = {}): HealthCheck[] {
  let expected: Promise<number[]> | null = null;
  return [
    {
      name: 'postgres',
      async check() {
        await sql.query('SELECT 1');
      },
    },
    {
      name: 'migrations',
      async check() {
        expected ??= loadMigrations(options.migrationsDir).then((ms) => ms.map((m) => m.version));
        const versions = await expected.catch((err: unknown) => {
          expected = null;
          throw err;
        });
        const { rows } = await sql.query<{ version: number }>('SELECT version FROM schema_migrations');
        const applied = new Set(rows.map((r) => Number(r.version)));
        const missing = versions.filter((v) => !applied.has(v));
        if (missing.length) throw new Error(`not applied: ${missing.map((v) => String(v).padStart(3, '0')).join(', ')}`);
      },
    },
  ];
}
