import { pgliteStoresHarness } from '../helpers/sql-stores-harness.js';
import { taskStoreContract } from './task-store.contract.js';

taskStoreContract('PGlite', () => pgliteStoresHarness('tasks'));
