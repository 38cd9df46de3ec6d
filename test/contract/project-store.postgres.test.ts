import { postgresStoresHarness } from '../helpers/sql-stores-harness.js';
import { projectStoreContract } from './project-store.contract.js';

// An own schema; the adapter under test connects as a role that may write only its aggregate's tables.
projectStoreContract('PostgreSQL', () => postgresStoresHarness('projects'));
