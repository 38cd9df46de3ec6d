import { describe } from 'vitest';
import { acrossContract } from './commit.contract-across.js';
import { batchContract } from './commit.contract-batch.js';
import { budgetContract } from './commit.contract-budget.js';
import { ingestContract } from './commit.contract-ingest.js';
import { transitionContract } from './commit.contract-transitions.js';
import { portContract, type StoresHarness } from './stores.fixtures.js';

export type { StoresHarness } from './stores.fixtures.js';

/**
 * The behaviour every Commit must have (the harness's `commit` is the port under test; the
 * aggregates' ports observe what it wrote).
 */
export function commitContract(name: string, setup: () => Promise<StoresHarness>): void {
  portContract(`Commit contract: ${name}`, 'Australia/Eucla', setup, (ref) => {
    describe('transitions', () => transitionContract(ref));
    describe('budget and outbox', () => budgetContract(ref));
    describe('batches', () => batchContract(ref));
    describe('ingestEvent', () => ingestContract(ref));
    describe('across aggregates, in one statement', () => acrossContract(ref));
  });
}
