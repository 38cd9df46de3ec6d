import { pgliteStoresHarness } from '../helpers/sql-stores-harness.js';
import { projectStoreContract } from './project-store.contract.js';

projectStoreContract('PGlite', () => pgliteStoresHarness('projects'));
