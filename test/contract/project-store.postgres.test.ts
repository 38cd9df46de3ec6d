import { migrate } from '../../src/adapters/postgres/migrate.js';
import { createTestSchema } from '../helpers/pg-schema.js';
import { sqlProjectStoreHarness } from '../helpers/sql-project-store-harness.js';
import { projectStoreContract } from './project-store.contract.js';

projectStoreContract('PostgreSQL', async () => {
  const schema = await createTestSchema();
  const sql = schema.client({ max: 4 });
  await migrate(sql);
  // A second pool in the same schema: the races below are between two "processes".
  return sqlProjectStoreHarness(sql, schema.client({ max: 4 }), () => schema.drop());
});
