/**
 * `npm run chaos`: the fault-injection battery. Every scenario runs `orchestrator start` as
 * a real process in a world of its own (see world.ts), injects its fault, and checks the
 * invariants (invariants.ts) and its own expectations. Prints a Markdown table, one row per
 * scenario, and writes the same as JSON to chaos/results/chaos-<time>.json (gitignored).
 * Exits 1 when a check failed or a scenario could not run.
 *
 *   npm run chaos                          every scenario
 *   CHAOS_ONLY=sigkill npm run chaos       the scenarios whose id contains one of these (comma-separated)
 *   CHAOS_SEEDS=7,8,9 npm run chaos        the seeds of the seeded scenarios (default 1,2,3)
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Check } from './invariants.js';
import type { Scenario, ScenarioResult } from './scenario.js';
import { approvalRaces } from './scenarios/approval-races.js';
import { authTls } from './scenarios/auth-tls.js';
import { budgetRace } from './scenarios/budget-race.js';
import { fuzz } from './scenarios/fuzz.js';
import { poisonTask } from './scenarios/poison-task.js';
import { natsKill, postgresCrash, redisLost } from './scenarios/server-faults.js';
import { sigkillRestarts } from './scenarios/sigkill-restarts.js';
import { stalledAgent } from './scenarios/stalled-agent.js';
import { triplicates } from './scenarios/triplicates.js';
import { twoInstancesOneKilled } from './scenarios/two-instances-one-killed.js';

const RESULTS_DIR = fileURLToPath(new URL('./results/', import.meta.url));

const seeds = (process.env.CHAOS_SEEDS ?? '1,2,3').split(',').map((s) => Number(s.trim())).filter(Number.isInteger);
const only = (process.env.CHAOS_ONLY ?? '').split(',').map((s) => s.trim()).filter(Boolean);

const all: Scenario[] = [
  ...seeds.map((seed) => sigkillRestarts(seed)),
  postgresCrash(),
  natsKill(10_000),
  natsKill(30_000),
  redisLost(),
  twoInstancesOneKilled(),
  // The same two with several dispatches per message to every agent (DISPATCH_BATCH).
  sigkillRestarts(seeds[0] ?? 1, { dispatchBatch: 20 }),
  twoInstancesOneKilled({ dispatchBatch: 20 }),
  stalledAgent(),
  budgetRace(),
  approvalRaces(),
  triplicates(),
  poisonTask(),
  authTls(),
  fuzz(),
];
const scenarios = only.length ? all.filter((s) => only.some((o) => s.id.includes(o))) : all;

interface Row extends ScenarioResult {
  id: string;
  title: string;
  seconds: number;
  error?: string;
}

const started = Date.now();
const stamp = new Date(started).toISOString().replace(/[:.]/g, '-').slice(0, 19);
const elapsed = () => `[${((Date.now() - started) / 1000).toFixed(0).padStart(5)} s]`;
const rows: Row[] = [];

for (const [i, s] of scenarios.entries()) {
  console.log(`${elapsed()} ${i + 1}/${scenarios.length} ${s.title}`);
  const t0 = Date.now();
  let row: Row;
  try {
    const r = await s.run((line) => console.log(`${elapsed()}   ${line}`));
    row = { id: s.id, title: s.title, seconds: (Date.now() - t0) / 1000, ...r };
  } catch (err) {
    row = { id: s.id, title: s.title, seconds: (Date.now() - t0) / 1000, did: 'did not finish', checks: [], figure: null, error: err instanceof Error ? err.message : String(err) };
  }
  rows.push(row);
  const passed = row.checks.filter((c) => c.ok).length;
  console.log(`${elapsed()}   ${row.error ? `ERROR ${row.error}` : `${passed}/${row.checks.length} checks`}`);
  for (const c of row.checks.filter((x) => !x.ok)) console.log(`${elapsed()}   FAILED ${c.name}: ${c.detail}`);
}

const ok = (r: Row) => !r.error && r.checks.length > 0 && r.checks.every((c: Check) => c.ok);
const fmtFigure = (r: Row) =>
  r.figure ? `${r.figure.label}: ${Number.isInteger(r.figure.value) ? r.figure.value : r.figure.value.toFixed(2)}${r.figure.unit ? ` ${r.figure.unit}` : ''}` : '–';
const table = [
  '| scenario | what it did | checks | figure | time |',
  '| --- | --- | ---: | --- | ---: |',
  ...rows.map((r) => `| ${ok(r) ? '✅' : '❌'} ${r.title} | ${r.error ? `error: ${r.error.replaceAll('|', '/')}` : r.did} | ${r.checks.filter((c) => c.ok).length}/${r.checks.length} | ${fmtFigure(r)} | ${r.seconds.toFixed(0)} s |`),
].join('\n');
console.log(`\n### Chaos battery, ${new Date(started).toISOString().slice(0, 16).replace('T', ' ')} UTC, ${((Date.now() - started) / 1000).toFixed(0)} s\n\n${table}\n`);
mkdirSync(RESULTS_DIR, { recursive: true });
const file = join(RESULTS_DIR, `chaos-${stamp}.json`);
writeFileSync(file, `${JSON.stringify({ startedAt: new Date(started).toISOString(), seconds: (Date.now() - started) / 1000, seeds, scenarios: rows }, null, 2)}\n`);
console.log(`results: ${file}`);
process.exit(rows.every(ok) ? 0 : 1);
