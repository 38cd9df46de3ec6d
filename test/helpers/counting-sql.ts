import type { QueryOptions, SqlClient, SqlResult } from '../../src/adapters/postgres/sql-client.js';

/**
 * The real client, counting what it sends: every statement, script, and a transaction's
 * BEGIN and COMMIT (or a nested one's SAVEPOINT and RELEASE). Nothing else changes.
 */
class CountingSqlClient implements SqlClient {
  constructor(
    private readonly inner: SqlClient,
    private readonly counter: { n: number },
  ) {}

  get dialect(): SqlClient['dialect'] {
    return this.inner.dialect;
  }

  query<R = Record<string, unknown>>(text: string, params?: readonly unknown[], options?: QueryOptions): Promise<SqlResult<R>> {
    this.counter.n++;
    return this.inner.query<R>(text, params, options);
  }

  exec(script: string): Promise<void> {
    this.counter.n++;
    return this.inner.exec(script);
  }

  transaction<T>(fn: (tx: SqlClient) => Promise<T>): Promise<T> {
    this.counter.n += 2;
    return this.inner.transaction((tx) => fn(new CountingSqlClient(tx, this.counter)));
  }

  close(): Promise<void> {
    return this.inner.close();
  }
}

/** `sql`, counting its round trips (see CountingSqlClient). */
export function countingSql(sql: SqlClient): { sql: SqlClient; count(): number } {
  const counter = { n: 0 };
  return { sql: new CountingSqlClient(sql, counter), count: () => counter.n };
}
