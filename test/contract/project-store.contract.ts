import { afterAll, beforeAll, beforeEach, describe } from 'vitest';
import type { ProjectStore } from '../../src/ports/project-store.js';
import type { TaskStore } from '../../src/ports/task-store.js';
import { approvalContract } from './project-store.contract-approvals.js';
import { ingestContract } from './project-store.contract-ingest.js';
import { projectContract } from './project-store.contract-projects.js';

export interface ProjectStoreHarness {
  store: ProjectStore;
  /** The task store on the same database (tasks, outbox rows and budget effects). */
  tasks: TaskStore;
  /**
   * The same stores over a second client: its own connection pool on a real server, so
   * races between `store` and `peer` are races between processes.
   */
  peer: { store: ProjectStore; tasks: TaskStore };
  /** Whether `peer` really uses other connections (false: PGlite, one connection). */
  separatePools: boolean;
  /** Empties every table (between tests). */
  reset(): Promise<void>;
  close(): Promise<void>;
}

/** What each group of contract tests gets: the harness, once the suite has set it up. */
export type ProjectHarnessRef = () => ProjectStoreHarness;

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
  });
}
