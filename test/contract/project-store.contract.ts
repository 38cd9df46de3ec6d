import { describe } from 'vitest';
import { approvalContract } from './project-store.contract-approvals.js';
import { projectContract } from './project-store.contract-projects.js';
import { stepContract } from './project-store.contract-steps.js';
import { portContract, type StoresHarness } from './stores.fixtures.js';

export type { StoresHarness } from './stores.fixtures.js';

/**
 * The behaviour every ProjectStore must have (the harness's `projects` is the port under
 * test; projects and approvals are created through its `commit`, as an event's ingest).
 */
export function projectStoreContract(name: string, setup: () => Promise<StoresHarness>): void {
  portContract(`ProjectStore contract: ${name}`, 'America/St_Johns', setup, (ref) => {
    describe('projects and budget limits', () => projectContract(ref));
    describe('approvals', () => approvalContract(ref));
    describe('project machine steps', () => stepContract(ref));
  });
}
