import { postgresStoresHarness } from '../helpers/sql-stores-harness.js';
import { taskStoreContract } from './task-store.contract.js';

// An own schema; the adapter under test connects as a role that may write only its aggregate's tables.
taskStoreContract('PostgreSQL', () => postgresStoresHarness('tasks'));
