import { migrate } from '../../src/adapters/postgres/migrate.js';
import { PGliteSqlClient } from '../../src/adapters/postgres/sql-client.js';
import { sqlProjectStoreHarness } from '../helpers/sql-project-store-harness.js';
import { projectStoreContract } from './project-store.contract.js';

projectStoreContract('PGlite', async () => {
  const sql = new PGliteSqlClient();
  await migrate(sql);
  return sqlProjectStoreHarness(sql, sql, () => sql.close());
});
