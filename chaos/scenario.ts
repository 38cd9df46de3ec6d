import type { Check } from './invariants.js';

/** A scenario's outcome: a row of the battery's table. */
export interface ScenarioResult {
  /** What it did, in a few words (kills, restarts, tasks). */
  did: string;
  checks: Check[];
  /** Its figure (e.g. the worst time from restart to first dispatch). */
  figure: { label: string; value: number; unit: string } | null;
}

export interface Scenario {
  id: string;
  title: string;
  /** Runs the scenario in a world of its own; `log` shows progress. */
  run(log: (line: string) => void): Promise<ScenarioResult>;
}

/** A check of the scenario itself (beside the invariants). */
export function expectThat(name: string, ok: boolean, detail: string): Check {
  return { name, ok, detail };
}

/** The seeded generator of a scenario's random moments (the same seed, the same moments). */
export { prng as seeded } from '../test/helpers/prng.js';
