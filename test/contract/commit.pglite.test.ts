import { pgliteStoresHarness } from '../helpers/sql-stores-harness.js';
import { commitContract } from './commit.contract.js';

commitContract('PGlite', () => pgliteStoresHarness('commit'));
