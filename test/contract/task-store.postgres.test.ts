import { migrate } from '../../src/adapters/postgres/migrate.js';
import { createTestSchema } from '../helpers/pg-schema.js';
import { sqlTaskStoreHarness } from '../helpers/sql-task-store-harness.js';
import { taskStoreContract } from './task-store.contract.js';

taskStoreContract('PostgreSQL', async () => {
  const schema = await createTestSchema();
  const sql = schema.client({ max: 4 });
  await migrate(sql);
  return sqlTaskStoreHarness(sql, () => schema.drop());
});
