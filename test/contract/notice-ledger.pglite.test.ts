import { pgliteStoresHarness } from '../helpers/sql-stores-harness.js';
import { noticeLedgerContract } from './notice-ledger.contract.js';

noticeLedgerContract('PGlite', () => pgliteStoresHarness('notices'));
