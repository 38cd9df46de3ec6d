import { createHash } from 'node:crypto';
import { readdir, readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { MigrationError } from '../../errors.js';
import type { SqlClient } from './sql-client.js';

/** `migrations/` at the package root: the same depth from src/adapters/postgres and dist/adapters/postgres. */
export const DEFAULT_MIGRATIONS_DIR = fileURLToPath(new URL('../../../migrations/', import.meta.url));

const FILE_NAME = /^(\d{3,})_([A-Za-z0-9_-]+)\.sql$/;

export interface Migration {
  version: number;
  name: string;
  /** sha256 of the file's text, hex. */
  checksum: string;
  sql: string;
}

export interface AppliedMigration {
  version: number;
  name: string;
}

export interface MigrateOptions {
  /** Directory of `NNN_name.sql` files; default: the package's `migrations/`. */
  dir?: string;
}

/** Reads and orders the migration files of a directory. */
export async function loadMigrations(dir: string = DEFAULT_MIGRATIONS_DIR): Promise<Migration[]> {
  let entries: string[];
  try {
    entries = await readdir(dir);
  } catch (err) {
    throw new MigrationError(`cannot read migrations directory ${dir}`, { cause: err });
  }
  const migrations: Migration[] = [];
  for (const file of entries) {
    if (!file.endsWith('.sql')) continue;
    const m = FILE_NAME.exec(file);
    if (!m) throw new MigrationError(`migration file ${file} is not named NNN_name.sql`);
    const sql = await readFile(`${dir.replace(/\/?$/, '/')}${file}`, 'utf8');
    migrations.push({
      version: Number(m[1]),
      name: m[2]!,
      checksum: createHash('sha256').update(sql).digest('hex'),
      sql,
    });
  }
  migrations.sort((a, b) => a.version - b.version);
  for (let i = 1; i < migrations.length; i++) {
    if (migrations[i]!.version === migrations[i - 1]!.version) {
      throw new MigrationError(`two migration files have version ${migrations[i]!.version}`);
    }
  }
  return migrations;
}

const CREATE_TABLE = `
  CREATE TABLE IF NOT EXISTS schema_migrations (
    version    INTEGER     PRIMARY KEY,
    name       VARCHAR(100) NOT NULL,
    checksum   CHAR(64)    NOT NULL,
    applied_at TIMESTAMP   NOT NULL DEFAULT (now() AT TIME ZONE 'UTC')
  )`;

/**
 * Serialises migration runs on the same schema (across processes): a transaction-level
 * advisory lock keyed on the search path, so parallel runs on different schemas of one
 * database do not wait for each other.
 */
const LOCK = `SELECT pg_advisory_xact_lock(hashtext('livingagent.migrate:' || current_setting('search_path')))`;

/**
 * Applies the pending migrations in version order, each in its own transaction, and
 * records them in `schema_migrations`. Safe to run again (a no-op) and from several
 * processes at once. An applied migration whose file changed fails with MigrationError.
 * Returns the migrations this call applied.
 */
export async function migrate(sql: SqlClient, options: MigrateOptions = {}): Promise<AppliedMigration[]> {
  const migrations = await loadMigrations(options.dir);
  const applied: AppliedMigration[] = [];

  // Every migration applied and unchanged: nothing to write, so a role without DDL rights
  // (the runtime role of deploy/postgres, next to an owner that runs `orchestrator migrate`)
  // can start. What is pending needs the owner.
  const pending = await pendingMigrations(sql, migrations);
  if (pending.length === 0) return applied;
  try {
    return await applyPending(sql, migrations, applied);
  } catch (err) {
    if (!isPermissionDenied(err)) throw err;
    const detail = err instanceof Error ? err.message : String(err);
    throw new MigrationError(
      `${pending.length} migration(s) pending (${pending.map(fileName).join(', ')}) and this role may not apply them: ${detail}; run \`orchestrator migrate\` with the schema owner's DATABASE_URL first`,
      { cause: err },
    );
  }
}

/**
 * The migrations not yet recorded, read without a write or a lock (an applied one whose
 * file changed fails with MigrationError).
 */
async function pendingMigrations(sql: SqlClient, migrations: readonly Migration[]): Promise<Migration[]> {
  const { rows: present } = await sql.query<{ present: boolean }>(`SELECT to_regclass('schema_migrations') IS NOT NULL AS present`);
  if (!present[0]?.present) return [...migrations];
  const { rows } = await sql.query<{ version: number; checksum: string }>('SELECT version, checksum FROM schema_migrations');
  const recorded = new Map(rows.map((r) => [r.version, r.checksum]));
  for (const m of migrations) checkUnchanged(m, recorded.get(m.version));
  return migrations.filter((m) => !recorded.has(m.version));
}

/** PostgreSQL's insufficient_privilege (42501), wherever the driver put it. */
function isPermissionDenied(err: unknown): boolean {
  for (let e: unknown = err; e instanceof Error; e = e.cause) {
    if ((e as { code?: unknown }).code === '42501') return true;
  }
  return false;
}

async function applyPending(sql: SqlClient, migrations: readonly Migration[], applied: AppliedMigration[]): Promise<AppliedMigration[]> {

  // Verify every applied migration first, so a changed file is reported before
  // anything new runs.
  await sql.transaction(async (tx) => {
    await tx.query(LOCK);
    await tx.exec(CREATE_TABLE);
    const { rows } = await tx.query<{ version: number; checksum: string }>(
      'SELECT version, checksum FROM schema_migrations',
    );
    const recorded = new Map(rows.map((r) => [r.version, r.checksum]));
    for (const m of migrations) checkUnchanged(m, recorded.get(m.version));
  });

  for (const m of migrations) {
    const didApply = await sql.transaction(async (tx) => {
      await tx.query(LOCK);
      const { rows } = await tx.query<{ checksum: string }>(
        'SELECT checksum FROM schema_migrations WHERE version = $1',
        [m.version],
      );
      if (rows[0]) {
        checkUnchanged(m, rows[0].checksum);
        return false; // applied meanwhile by another process
      }
      try {
        await tx.exec(m.sql);
      } catch (err) {
        throw new MigrationError(
          `migration ${fileName(m)} failed: ${err instanceof Error ? err.message : String(err)}`,
          { cause: err },
        );
      }
      await tx.query('INSERT INTO schema_migrations (version, name, checksum) VALUES ($1, $2, $3)', [
        m.version,
        m.name,
        m.checksum,
      ]);
      return true;
    });
    if (didApply) applied.push({ version: m.version, name: m.name });
  }
  return applied;
}

function checkUnchanged(m: Migration, recordedChecksum: string | undefined): void {
  if (recordedChecksum !== undefined && recordedChecksum.trim() !== m.checksum) {
    throw new MigrationError(
      `migration ${fileName(m)} was changed after it was applied (checksum ${recordedChecksum.trim().slice(0, 12)}… recorded, ${m.checksum.slice(0, 12)}… on disk); add a new migration instead`,
    );
  }
}

function fileName(m: Migration): string {
  return `${String(m.version).padStart(3, '0')}_${m.name}.sql`;
}
