import { postgresStoresHarness } from '../helpers/sql-stores-harness.js';
import { commitContract } from './commit.contract.js';

// An own schema; the adapter under test connects as a role that may write only its aggregate's tables.
commitContract('PostgreSQL', () => postgresStoresHarness('commit'));
