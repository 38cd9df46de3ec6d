import pg from 'pg';
import { PGlite } from '@electric-sql/pglite';
import { ClosedError, ConfigError, TransactionConflictError, ValidationError } from '../../errors.js';

/**
 * The small SQL surface the PostgreSQL adapters use, implemented over a `pg.Pool`
 * (a real server) and over PGlite (embedded, in-memory WASM PostgreSQL), so both run
 * the same migrations and the same SQL.
 *
 * Both implementations return the same JS values:
 * - TIMESTAMP (without time zone, holding UTC) → `Date` read as UTC, whatever the host zone;
 * - INT8 / BIGINT / BIGSERIAL and NUMERIC / DECIMAL → `number` (ids, tokens and money
 *   stay far below 2^53 and 15 significant digits);
 * - JSON / JSONB → parsed values.
 *
 * Parameters: pass timestamps as ISO strings (`toSqlTime`) and JSON as strings
 * (`JSON.stringify`) with an explicit `::jsonb` cast. Both drivers then send them as
 * text, untouched (pg would otherwise format a `Date` in the host zone and an array
 * as a PostgreSQL array literal).
 */
export interface SqlResult<R> {
  rows: R[];
  /** Rows returned or affected by the statement. */
  rowCount: number;
}

export interface QueryOptions {
  /**
   * Prepare the statement under this name, once per connection, and reuse its plan
   * (pg: a named prepared statement; PGlite: ignored). Use a constant name per
   * constant text, for hot statements.
   */
  name?: string;
}

export interface SqlClient {
  readonly dialect: 'postgres' | 'pglite';
  /** One parameterised statement. */
  query<R = Record<string, unknown>>(
    text: string,
    params?: readonly unknown[],
    options?: QueryOptions,
  ): Promise<SqlResult<R>>;
  /** A script of several statements, no parameters (migrations). */
  exec(script: string): Promise<void>;
  /**
   * Runs `fn` in a transaction on one connection: committed when it resolves, rolled
   * back when it throws. Called on a transaction client, it opens a savepoint.
   */
  transaction<T>(fn: (tx: SqlClient) => Promise<T>): Promise<T>;
  close(): Promise<void>;
}

/** A `Date` as the text a TIMESTAMP (UTC) column takes; null stays null. */
export function toSqlTime(date: Date): string;
export function toSqlTime(date: Date | null | undefined): string | null;
export function toSqlTime(date: Date | null | undefined): string | null {
  if (date == null) return null;
  if (Number.isNaN(date.getTime())) throw new ValidationError('a time must be a valid Date', [String(date)]);
  return date.toISOString();
}

const OID = { INT8: 20, TIMESTAMP: 1114, NUMERIC: 1700 } as const;

const TIMESTAMP_TEXT = /^(\d{4,})-(\d{2})-(\d{2})[ T](\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?$/;

/** Parses PostgreSQL TIMESTAMP text (no zone) as UTC. */
export function parseUtcTimestamp(text: string): Date {
  if (text === 'infinity') return new Date(8.64e15);
  if (text === '-infinity') return new Date(-8.64e15);
  const m = TIMESTAMP_TEXT.exec(text);
  if (!m) return new Date(Number.NaN);
  const ms = m[7] ? Number(m[7].slice(0, 3).padEnd(3, '0')) : 0;
  const d = new Date(0);
  d.setUTCFullYear(Number(m[1]), Number(m[2]) - 1, Number(m[3]));
  d.setUTCHours(Number(m[4]), Number(m[5]), Number(m[6]), ms);
  return d;
}

const parseNumber = (text: string): number => Number(text);

/** The text parsers both drivers get, by type OID. */
const PARSERS: Readonly<Record<number, (text: string) => unknown>> = {
  [OID.INT8]: parseNumber,
  [OID.NUMERIC]: parseNumber,
  [OID.TIMESTAMP]: parseUtcTimestamp,
};

// ---------------------------------------------------------------------------------------
// Savepoint-based nesting, shared by both transaction clients.

class TxClient implements SqlClient {
  #depth: number;
  constructor(
    readonly dialect: SqlClient['dialect'],
    private readonly run: (
      text: string,
      params?: readonly unknown[],
      options?: QueryOptions,
    ) => Promise<SqlResult<unknown>>,
    private readonly script: (text: string) => Promise<void>,
    depth = 0,
  ) {
    this.#depth = depth;
  }

  async query<R>(text: string, params?: readonly unknown[], options?: QueryOptions): Promise<SqlResult<R>> {
    return (await this.run(text, params, options)) as SqlResult<R>;
  }

  exec(script: string): Promise<void> {
    return this.script(script);
  }

  async transaction<T>(fn: (tx: SqlClient) => Promise<T>): Promise<T> {
    const name = `sp_${this.#depth + 1}`;
    await this.run(`SAVEPOINT ${name}`);
    try {
      const result = await fn(new TxClient(this.dialect, this.run, this.script, this.#depth + 1));
      await this.run(`RELEASE SAVEPOINT ${name}`);
      return result;
    } catch (err) {
      await this.run(`ROLLBACK TO SAVEPOINT ${name}`);
      throw err;
    }
  }

  async close(): Promise<void> {
    throw new ClosedError('a transaction client cannot be closed; return from the transaction');
  }
}

// ---------------------------------------------------------------------------------------
// pg (a real server)

export interface PgSqlClientOptions {
  connectionString: string;
  /** Schema to work in (sets `search_path`); must already exist. */
  schema?: string;
  /** Pool size; default 10. */
  max?: number;
  /** Application name shown in pg_stat_activity. */
  applicationName?: string;
  /**
   * Receives pool errors (idle client lost...): a message naming the server (its connection
   * string redacted) and the driver's error, to log as an object (`logger.error({ err }, message)`:
   * its SQLSTATE `code` and the rest). Default: console.error. Never sees the password.
   */
  onError?: (message: string, err: Error) => void;
}

const IDENTIFIER = /^[A-Za-z_][A-Za-z0-9_]{0,62}$/;

/** The connection string with its password replaced, for messages. */
export function redactConnectionString(connectionString: string): string {
  try {
    const url = new URL(connectionString);
    if (url.password) url.password = '***';
    return url.toString();
  } catch {
    return '<unparsable connection string>';
  }
}

const pgTypes: pg.CustomTypesConfig = {
  getTypeParser: ((oid: number, format?: 'text' | 'binary') => {
    const parser = PARSERS[oid];
    if (parser && format !== 'binary') return parser;
    return format === 'binary' ? pg.types.getTypeParser(oid, 'binary') : pg.types.getTypeParser(oid, 'text');
  }) as pg.CustomTypesConfig['getTypeParser'],
};

function pgQuery(text: string, params?: readonly unknown[], options?: QueryOptions): pg.QueryConfig {
  return {
    text,
    ...(params === undefined ? {} : { values: params as unknown[] }),
    ...(options?.name === undefined ? {} : { name: options.name }),
  };
}

/**
 * A pg client that ends its connection when connecting fails. When the failure is pg's own
 * (a SCRAM login without a password: "client password must be a string"), pg leaves the
 * socket open, and pg-pool drops the client without ending it: the server then waits for
 * the rest of the login up to its `authentication_timeout` (a minute by default), and the
 * process cannot exit meanwhile, even after `close()`. Ended here, a refused start exits.
 */
class EndingOnFailedConnect extends pg.Client {
  override connect(): Promise<pg.Client>;
  override connect(callback: (err: Error | null) => void): void;
  override connect(callback?: (err: Error | null) => void): Promise<pg.Client> | void {
    if (callback === undefined) {
      return super.connect().catch((err: unknown) => {
        this.#end();
        throw err;
      });
    }
    super.connect((err: Error | null) => {
      if (err) this.#end();
      callback(err);
    });
  }

  #end(): void {
    this.end().catch(() => undefined);
  }
}

/** SQLSTATEs of a transaction the server aborted for a conflict with another: a deadlock, a serialization failure. */
const CONFLICT_ABORTS = new Set(['40P01', '40001']);

/**
 * A transaction the server aborted for a conflict is a TransactionConflictError (nothing
 * written, retryable: the notices owe no replay for it); any other error as it is.
 */
function aborted(err: unknown): unknown {
  const code = (err as { code?: unknown } | null)?.code;
  if (typeof code === 'string' && CONFLICT_ABORTS.has(code)) {
    return new TransactionConflictError(`PostgreSQL aborted the transaction (${(err as Error).message}, ${code}): nothing of it was written`, { cause: err });
  }
  return err;
}

export class PgSqlClient implements SqlClient {
  readonly dialect = 'postgres' as const;
  readonly schema: string | undefined;
  readonly #pool: pg.Pool;
  #closed = false;

  constructor(options: PgSqlClientOptions) {
    if (options.schema !== undefined && !IDENTIFIER.test(options.schema)) {
      throw new ConfigError([
        { key: 'schema', value: options.schema, reason: 'must be a plain identifier (letters, digits, _)' },
      ]);
    }
    this.schema = options.schema;
    const settings = ['-c TimeZone=UTC'];
    if (options.schema) settings.push(`-c search_path=${options.schema}`);
    this.#pool = new pg.Pool({
      connectionString: options.connectionString,
      max: options.max ?? 10,
      application_name: options.applicationName ?? 'livingagent-orchestrator',
      options: settings.join(' '),
      types: pgTypes,
      Client: EndingOnFailedConnect as unknown as new () => pg.ClientBase,
    });
    const where = redactConnectionString(options.connectionString);
    const onError = options.onError ?? ((message: string, err: Error) => console.error(message, err));
    this.#pool.on('error', (err) => onError(`postgres pool error (${where})`, err));
  }

  async query<R>(text: string, params?: readonly unknown[], options?: QueryOptions): Promise<SqlResult<R>> {
    this.#assertOpen();
    try {
      const res = await this.#pool.query(pgQuery(text, params, options));
      return { rows: res.rows as R[], rowCount: res.rowCount ?? 0 };
    } catch (err) {
      throw aborted(err);
    }
  }

  async exec(script: string): Promise<void> {
    this.#assertOpen();
    await this.#pool.query(script);
  }

  async transaction<T>(fn: (tx: SqlClient) => Promise<T>): Promise<T> {
    this.#assertOpen();
    const conn = await this.#pool.connect();
    let broken: Error | undefined;
    try {
      await conn.query('BEGIN');
      const tx = new TxClient(
        'postgres',
        async (text, params, options) => {
          const res = await conn.query(pgQuery(text, params, options));
          return { rows: res.rows, rowCount: res.rowCount ?? 0 };
        },
        async (script) => {
          await conn.query(script);
        },
      );
      const result = await fn(tx);
      await conn.query('COMMIT');
      return result;
    } catch (err) {
      try {
        await conn.query('ROLLBACK');
      } catch (rollbackErr) {
        broken = rollbackErr as Error; // the connection is unusable: discard it
      }
      throw aborted(err);
    } finally {
      conn.release(broken);
    }
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.#pool.end();
  }

  #assertOpen(): void {
    if (this.#closed) throw new ClosedError('PostgreSQL client');
  }
}

// ---------------------------------------------------------------------------------------
// PGlite (embedded)

export interface PGliteSqlClientOptions {
  /** Directory for a persistent database; default: in memory. */
  dataDir?: string;
}

/** PGlite reports 0 affected rows for a SELECT; pg reports the rows returned. */
function pgliteRowCount(res: { rows: unknown[]; affectedRows?: number }): number {
  return res.rows.length || res.affectedRows || 0;
}

/**
 * PGlite is a single connection. Its `query` and `transaction` share one mutex, so a
 * statement issued outside a running transaction waits for it to finish instead of
 * slipping into it, and concurrent transactions run one after another.
 */
export class PGliteSqlClient implements SqlClient {
  readonly dialect = 'pglite' as const;
  readonly #db: PGlite;
  readonly #ready: Promise<void>;
  #closed = false;

  constructor(options: PGliteSqlClientOptions = {}) {
    const parsers = Object.fromEntries(Object.entries(PARSERS).map(([oid, fn]) => [oid, (text: string) => fn(text)]));
    this.#db = new PGlite({ ...(options.dataDir ? { dataDir: options.dataDir } : {}), parsers });
    this.#ready = this.#db.waitReady.then(async () => {
      await this.#db.exec(`SET TimeZone = 'UTC'`);
    });
  }

  async query<R>(text: string, params?: readonly unknown[]): Promise<SqlResult<R>> {
    await this.#open();
    const res = await this.#db.query<R>(text, params as unknown[] | undefined);
    return { rows: res.rows, rowCount: pgliteRowCount(res) };
  }

  async exec(script: string): Promise<void> {
    await this.#open();
    await this.#db.exec(script);
  }

  async transaction<T>(fn: (tx: SqlClient) => Promise<T>): Promise<T> {
    await this.#open();
    return this.#db.transaction(async (ptx) => {
      const tx = new TxClient(
        'pglite',
        async (text, params) => {
          const res = await ptx.query(text, params as unknown[] | undefined);
          return { rows: res.rows, rowCount: pgliteRowCount(res) };
        },
        async (script) => {
          await ptx.exec(script);
        },
      );
      return fn(tx);
    });
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.#ready.catch(() => undefined);
    await this.#db.close();
  }

  async #open(): Promise<void> {
    if (this.#closed) throw new ClosedError('PGlite client');
    await this.#ready;
  }
}
