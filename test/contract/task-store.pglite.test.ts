import { migrate } from '../../src/adapters/postgres/migrate.js';
import { PGliteSqlClient } from '../../src/adapters/postgres/sql-client.js';
import { sqlTaskStoreHarness } from '../helpers/sql-task-store-harness.js';
import { taskStoreContract } from './task-store.contract.js';

taskStoreContract('PGlite', async () => {
  const sql = new PGliteSqlClient();
  await migrate(sql);
  return sqlTaskStoreHarness(sql, () => sql.close());
});
