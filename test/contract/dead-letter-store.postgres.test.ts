import { postgresStoresHarness } from '../helpers/sql-stores-harness.js';
import { deadLetterStoreContract } from './dead-letter-store.contract.js';

// An own schema; the adapter under test connects as a role that may write only its aggregate's tables.
deadLetterStoreContract('PostgreSQL', () => postgresStoresHarness('deadLetters'));
