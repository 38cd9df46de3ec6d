import { pgliteStoresHarness } from '../helpers/sql-stores-harness.js';
import { costStatsStoreContract } from './cost-stats-store.contract.js';

costStatsStoreContract('PGlite', () => pgliteStoresHarness('costs'));
