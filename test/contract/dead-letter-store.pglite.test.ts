import { pgliteStoresHarness } from '../helpers/sql-stores-harness.js';
import { deadLetterStoreContract } from './dead-letter-store.contract.js';

deadLetterStoreContract('PGlite', () => pgliteStoresHarness('deadLetters'));
