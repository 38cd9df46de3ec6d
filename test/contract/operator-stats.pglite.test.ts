import { pgliteStoresHarness } from '../helpers/sql-stores-harness.js';
import { operatorStatsContract } from './operator-stats.contract.js';

operatorStatsContract('PGlite', () => pgliteStoresHarness('stats'));
