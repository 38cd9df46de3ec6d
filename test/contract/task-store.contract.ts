import { afterAll, beforeAll, beforeEach, describe } from 'vitest';
import { batchContract } from './task-store.contract-batch.js';
import { budgetContract } from './task-store.contract-budget.js';
import { dispatchOutboxContract } from './task-store.contract-dispatch.js';
import { readContract } from './task-store.contract-reads.js';
import { writeContract } from './task-store.contract-writes.js';
import type { TaskStoreHarness } from './task-store.fixtures.js';

export type { TaskStoreHarness } from './task-store.fixtures.js';

/**
 * The behaviour every TaskStore must have. `setup` runs once per suite, `reset` before
 * each test. The tests use the port (plus the harness's project seeding for budgets).
 */
export function taskStoreContract(name: string, setup: () => Promise<TaskStoreHarness>): void {
  describe(`TaskStore contract: ${name}`, () => {
    let harness: TaskStoreHarness | undefined;
    const hostZone = process.env.TZ;

    beforeAll(async () => {
      // Timestamps must not depend on the host's zone: run in one far from UTC.
      process.env.TZ = 'Asia/Kolkata';
      harness = await setup();
    });
    afterAll(async () => {
      await harness?.close();
      if (hostZone === undefined) delete process.env.TZ;
      else process.env.TZ = hostZone;
    });
    beforeEach(async () => {
      await harness!.reset();
    });

    const ref = () => harness!;
    describe('writes', () => writeContract(ref));
    describe('reads', () => readContract(ref));
    describe('budget and outbox', () => budgetContract(ref));
    describe('batches', () => batchContract(ref));
    describe('dispatch outbox', () => dispatchOutboxContract(ref));
  });
}
