import { postgresStoresHarness } from '../helpers/sql-stores-harness.js';
import { costStatsStoreContract } from './cost-stats-store.contract.js';

// An own schema; the adapter under test connects as a role that may write only its aggregate's tables.
costStatsStoreContract('PostgreSQL', () => postgresStoresHarness('costs'));
