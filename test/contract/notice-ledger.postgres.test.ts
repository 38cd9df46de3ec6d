import { postgresStoresHarness } from '../helpers/sql-stores-harness.js';
import { noticeLedgerContract } from './notice-ledger.contract.js';

// An own schema; the adapter under test connects as a role that may write only `instances`.
noticeLedgerContract('PostgreSQL', () => postgresStoresHarness('notices'));
