import { postgresStoresHarness } from '../helpers/sql-stores-harness.js';
import { operatorStatsContract } from './operator-stats.contract.js';

// An own schema; the adapter under test connects as a role that may write no table.
operatorStatsContract('PostgreSQL', () => postgresStoresHarness('stats'));
