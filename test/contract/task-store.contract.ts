import { describe } from 'vitest';
import { dispatchOutboxContract } from './task-store.contract-dispatch.js';
import { readContract } from './task-store.contract-reads.js';
import { writeContract } from './task-store.contract-writes.js';
import { portContract, type StoresHarness } from './stores.fixtures.js';

export type { StoresHarness } from './stores.fixtures.js';

/**
 * The behaviour every TaskStore must have (the harness's `tasks` is the port under test;
 * transitions are written through its `commit`).
 */
export function taskStoreContract(name: string, setup: () => Promise<StoresHarness>): void {
  portContract(`TaskStore contract: ${name}`, 'Asia/Kolkata', setup, (ref) => {
    describe('writes', () => writeContract(ref));
    describe('reads', () => readContract(ref));
    describe('dispatch outbox', () => dispatchOutboxContract(ref));
  });
}
