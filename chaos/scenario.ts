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

/** A small seeded generator (mulberry32), so a scenario's random moments repeat with its seed. */
export function seeded(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
