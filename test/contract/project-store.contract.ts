import { afterAll, beforeAll, beforeEach, describe } from 'vitest';
import { approvalContract } from './project-store.contract-approvals.js';
import { ingestContract } from './project-store.contract-ingest.js';
import { projectContract } from './project-store.contract-projects.js';
import { stepContract } from './project-store.contract-steps.js';
import type { ProjectStoreHarness } from './project-store.fixtures.js';

export type { ProjectStoreHarness } from './project-store.fixtures.js';

/**
 * The behaviour every ProjectStore must have. `setup` runs once per suite, `reset` before
 * each test. The tests use the ports only.
 */
export function projectStoreContract(name: string, setup: () => Promise<ProjectStoreHarness>): void {
  describe(`ProjectStore contract: ${name}`, () => {
    let harness: ProjectStoreHarness | undefined;
    const hostZone = process.env.TZ;

    beforeAll(async () => {
      // Timestamps must not depend on the host's zone: run in one far from UTC.
      process.env.TZ = 'America/St_Johns';
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
    describe('ingestEvent', () => ingestContract(ref));
    describe('projects and budget limits', () => projectContract(ref));
    describe('approvals, dead letters and costs', () => approvalContract(ref));
    describe('project machine steps', () => stepContract(ref));
  });
}
