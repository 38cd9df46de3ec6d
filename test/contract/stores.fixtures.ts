import { afterAll, beforeAll, beforeEach, describe } from 'vitest';
import type { Commit } from '../../src/ports/commit.js';
import type { CostStatsStore } from '../../src/ports/cost-stats-store.js';
import type { DeadLetterStore } from '../../src/ports/dead-letter-store.js';
import type { NoticeLedger } from '../../src/ports/notice-ledger.js';
import type { OperatorStats } from '../../src/ports/operator-stats.js';
import type { ProjectState, ProjectStore } from '../../src/ports/project-store.js';
import type { TaskStore } from '../../src/ports/task-store.js';

/** The ports over one database: one per aggregate, and the commit port that writes several. */
export interface StorePorts {
  tasks: TaskStore;
  projects: ProjectStore;
  commit: Commit;
  deadLetters: DeadLetterStore;
  costs: CostStatsStore;
  notices: NoticeLedger;
  /** Read-only: the stored state in figures (metrics). */
  stats: OperatorStats;
}

export type PortName = keyof StorePorts;

export interface SeedProject {
  projectId: string;
  state?: ProjectState;
  budgetLimit: number | null;
  spent?: number;
  reserved?: number;
}

/**
 * What every port's contract suite gets: the ports over one database, the port under test
 * among them. The suites exercise the port under test and use the others only to set up
 * and observe state.
 */
export interface StoresHarness extends StorePorts {
  /**
   * The same ports over a second client: its own connection pool on a real server, so
   * races between the ports and `peer` are races between processes.
   */
  peer: StorePorts;
  /** Whether `peer` really uses other connections (false: PGlite, one connection). */
  separatePools: boolean;
  /** Statements the port under test has sent to the database so far (its round trips). */
  roundTrips(): number;
  /** Empties every table (between tests). */
  reset(): Promise<void>;
  close(): Promise<void>;
  /** Creates a project row with given amounts directly (budget effects need a project). */
  seedProject(project: SeedProject): Promise<void>;
  /** A project's budget amounts; null when there is no such project. */
  readBudget(projectId: string): Promise<{ spent: number; reserved: number } | null>;
  /** The dispatch outbox as stored, every row (`<task id>@<fencing token>`, by task id): what no port lists whole. */
  dispatchRecords(): Promise<string[]>;
}

/** What each group of contract tests gets: the harness, once the suite has set it up. */
export type StoresRef = () => StoresHarness;

/**
 * One port's contract suite: `setup` runs once, `reset` before each test, the host's time
 * zone set to `zone` meanwhile (timestamps must not depend on it: run in one far from UTC).
 */
export function portContract(title: string, zone: string, setup: () => Promise<StoresHarness>, groups: (ref: StoresRef) => void): void {
  describe(title, () => {
    let harness: StoresHarness | undefined;
    const hostZone = process.env.TZ;

    beforeAll(async () => {
      process.env.TZ = zone;
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

    groups(() => harness!);
  });
}
