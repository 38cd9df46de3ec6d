/**
 * `npm run bench:ab -- <rev>` (or `BENCH_AB=<rev> npm run bench`): the flat and fan-in
 * throughput of another revision (A) against this working tree (B), in one run.
 *
 *   npm run bench:ab -- d25cb55                  both figures, 3 rounds per side
 *   BENCH_ONLY=deps npm run bench:ab -- d25cb55  fan-in only
 *   BENCH_CPU_PROF=1 npm run bench:ab -- d25cb55 CPU profiles of every orchestrator process
 *
 * A is checked out once, side by side, as a detached git worktree in `.bench-ab/<sha>`
 * (BENCH_AB_DIR; the folder ignores itself), with its own `npm ci --omit=dev` (cached: done
 * again only when its package-lock.json changes). Both sides are driven by this tree's
 * harness — workload, agents process, status watcher, CPU and I/O meters, and
 * bench/e2e/orchestrator-proc.ts — the A side's orchestrator-proc importing A's
 * `src/index.ts` (with A's node_modules) instead of this tree's. Only the orchestrator
 * code differs between the sides.
 *
 * Rounds alternate, A then B, then B then A, …; each round has a fresh environment (its own
 * schema, Redis prefix, subject prefix and streams) and a fresh orchestrator process.
 * Prints a Markdown table and writes bench/results/ab-<stamp>-<run>.json beside the
 * `npm run bench` reports (logs and profiles in bench/results/ab-<stamp>-<run>/).
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { configForReport, loadBenchConfig, RESULTS_DIR, ROOT, type BenchConfig } from './e2e/config.js';
import { spawnAgents, type Ctx } from './e2e/context.js';
import { CpuMeter, type CpuGroup, type CpuUsage } from './e2e/cpu.js';
import { Infra } from './e2e/infra.js';
import type { IoStats } from './e2e/io-stats.js';
import type { Child } from './e2e/ipc.js';
import { machineInfo } from './e2e/report.js';
import { summarizeProfiles, profileMarkdown, type ProfileSummary } from './e2e/profile.js';
import { fmt, fmtInt, fmtRatio, fmtSummary, median, pairedRatios, summarize, type Summary } from './e2e/stats.js';
import { orchestratorRound, type DelaySummary, type ThroughputKind, type ThroughputSample } from './scenarios/throughput.js';
import type { ProbeCounter } from './e2e/probe.js';

export interface AbSide {
  label: 'A' | 'B';
  /** What was asked for (A: the revision given; B: "working tree"). */
  rev: string;
  /** Commit (B: HEAD, with "+ changes" when src/ differs from it). */
  commit: string;
  subject: string;
  /** The checkout whose src/ runs; undefined for B (this tree). */
  srcRoot?: string;
  /** Extra Node flags of this side's orchestrator processes (BENCH_AB_NODE_ARGS_A / _B): flags compared on the same code. */
  nodeArgs?: string[];
}

/** The side's own Node flags, from BENCH_AB_NODE_ARGS_<label>. */
function sideNodeArgs(label: 'A' | 'B'): string[] {
  return (process.env[`BENCH_AB_NODE_ARGS_${label}`] ?? '').split(' ').filter(Boolean);
}

/** A round, with how busy the machine was just before it (BENCH_AB_QUIET). */
export type AbRound = ThroughputSample & { busyBefore?: number };

export interface AbSideResult extends Summary {
  rounds: AbRound[];
  capped: number;
  /** Tasks written per second (event published → created), per round, summarised. */
  intake: Summary;
  /** µs of CPU per completed task, per process group and `all`, median of the rounds. */
  cpuPerTask: Partial<Record<CpuGroup | 'all', number>>;
  /** Cores this run's processes kept busy on average over the measured window, median of the rounds. */
  coresBusy: number;
  /** Cores the rest of the machine (other jobs) took over the measured window, per round. */
  otherCores: Summary;
  /** Tasks/s per core left by other jobs (rate ÷ (cores − otherCores)), per round: the rate corrected for contention, when CPU-bound. */
  perFreeCore: Summary;
  /** Per completed task, median round by transitions: SQL statements, Redis commands, and each statement. */
  io?: { sqlPerTask: number; redisPerTask: number; sqlWaitMsPerTask: number; statements: Record<string, number>; redis: Record<string, number> };
}

export interface AbScenarioResult {
  kind: ThroughputKind;
  total: number;
  A: AbSideResult;
  B: AbSideResult;
  /** median(B) ÷ median(A). */
  ratio: number;
  /** A's CPU per task (all of this run's processes) ÷ B's: the rate ratio on a machine of its own, if both are CPU-bound. */
  cpuRatio: number;
  /** B ÷ A per pair of rounds (round i of each side), summarised. */
  pairedRatio: Summary;
  /** median(B) ÷ median(A) of the rates per core left by other jobs. */
  perFreeCoreRatio: number;
}

export interface AbReport {
  runId: string;
  startedAt: string;
  config: Record<string, unknown>;
  machine: Record<string, unknown>;
  sides: { A: AbSide; B: AbSide };
  floor: number;
  scenarios: Partial<Record<ThroughputKind, AbScenarioResult>>;
  errors: Record<string, string>;
  skipped: string[];
  timing: Record<string, { seconds: number; loadBefore: number; loadAfter: number }>;
  seconds: number;
  profiles?: ProfileSummary[];
  concurrentRuns?: string[];
}

const LABELS: Record<ThroughputKind, string> = { flat: 'flat', deps: 'fan-in' };

function git(args: string[], cwd = ROOT): string {
  return execFileSync('git', args, { cwd, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }).trim();
}

/**
 * The A side's checkout: `<BENCH_AB_DIR or .bench-ab>/<sha>`, a detached git worktree of
 * `rev` with its runtime dependencies installed (`npm ci --omit=dev --ignore-scripts`: tsx
 * and the harness come from this tree). Made once; reused while its lock file is unchanged.
 */
export function prepareCheckout(rev: string, log: (m: string) => void): AbSide {
  let sha: string;
  try {
    sha = git(['rev-parse', '--verify', `${rev}^{commit}`]);
  } catch {
    throw new Error(`BENCH_AB: ${rev} is not a commit of this repository`);
  }
  const base = resolve(ROOT, process.env.BENCH_AB_DIR ?? '.bench-ab');
  mkdirSync(base, { recursive: true });
  // The folder ignores itself (and everything in it): nothing to add to .gitignore.
  if (!existsSync(join(base, '.gitignore'))) writeFileSync(join(base, '.gitignore'), '# bench/ab.ts: checkouts of other revisions\n*\n');
  const dir = join(base, sha.slice(0, 12));
  if (!existsSync(join(dir, 'src', 'index.ts'))) {
    log(`A: checking out ${rev} (${sha.slice(0, 12)}) in ${dir}`);
    git(['worktree', 'prune']);
    git(['worktree', 'add', '--detach', dir, sha]);
  }
  const head = git(['rev-parse', 'HEAD'], dir);
  if (head !== sha) throw new Error(`${dir} holds ${head}, not ${sha}: remove it (git worktree remove --force ${dir}) and run again`);
  const dirty = git(['status', '--porcelain', '--untracked-files=no'], dir);
  if (dirty) throw new Error(`${dir} has local changes:\n${dirty}\nremove it (git worktree remove --force ${dir}) and run again`);
  const lockHash = createHash('sha256').update(readFileSync(join(dir, 'package-lock.json'))).digest('hex');
  const marker = join(dir, 'node_modules', '.bench-ab-installed');
  if (!existsSync(marker) || readFileSync(marker, 'utf8').trim() !== lockHash) {
    log(`A: npm ci --omit=dev in ${dir} (once per lock file)`);
    const r = spawnSync('npm', ['ci', '--omit=dev', '--ignore-scripts', '--no-audit', '--no-fund'], { cwd: dir, stdio: ['ignore', 2, 2] });
    if (r.status !== 0) throw new Error(`npm ci in ${dir} failed (${r.status ?? r.signal})`);
    writeFileSync(marker, `${lockHash}\n`);
  }
  return { label: 'A', rev, commit: sha.slice(0, 12), subject: git(['log', '-1', '--format=%s', sha]), srcRoot: dir, nodeArgs: sideNodeArgs('A') };
}

function workingTree(): AbSide {
  const head = git(['rev-parse', '--short=12', 'HEAD']);
  const changed = git(['status', '--porcelain', 'src', 'migrations', 'package-lock.json']);
  return { label: 'B', rev: 'working tree', commit: `${head}${changed ? ' + changes' : ''}`, subject: git(['log', '-1', '--format=%s', 'HEAD']), nodeArgs: sideNodeArgs('B') };
}

function sideResult(rounds: AbRound[]): AbSideResult {
  const usable = rounds.filter((s) => s.cpu && s.completed > 0);
  const cpuPerTask: AbSideResult['cpuPerTask'] = {};
  const groups = new Set(usable.flatMap((s) => Object.keys(s.cpu as CpuUsage) as CpuGroup[]));
  for (const g of groups) cpuPerTask[g] = median(usable.map((s) => (((s.cpu as CpuUsage)[g] ?? 0) / s.completed) * 1e6));
  const all = (s: ThroughputSample): number => Object.values(s.cpu as CpuUsage).reduce((a, b) => a + (b ?? 0), 0);
  if (usable.length) cpuPerTask.all = median(usable.map((s) => (all(s) / s.completed) * 1e6));
  const result: AbSideResult = {
    ...summarize(rounds.map((s) => s.rate)),
    rounds,
    capped: rounds.filter((s) => s.capped).length,
    intake: summarize(rounds.map((s) => (s.created ?? 0) / (s.createdSeconds ?? Number.NaN))),
    cpuPerTask,
    coresBusy: median(usable.map((s) => all(s) / s.seconds)),
    otherCores: summarize(rounds.map((s) => (s.otherCpu ?? Number.NaN) / s.seconds)),
    perFreeCore: summarize(rounds.map((s) => s.rate / Math.max(0.1, cpus().length - (s.otherCpu ?? Number.NaN) / s.seconds))),
  };
  const withIo = rounds.filter((s) => s.io && s.completed > 0);
  if (withIo.length) {
    const mid = [...withIo].sort((a, b) => (a.transitions ?? 0) - (b.transitions ?? 0))[withIo.length >> 1]!;
    const io = mid.io as IoStats;
    const per = (n: number): number => n / mid.completed;
    const sql = Object.entries(io.sql);
    result.io = {
      sqlPerTask: per(sql.reduce((a, [, v]) => a + v.count, 0)),
      sqlWaitMsPerTask: per(sql.reduce((a, [, v]) => a + v.ms, 0)),
      redisPerTask: per(Object.values(io.redis).reduce((a, b) => a + b, 0)),
      statements: Object.fromEntries(sql.map(([k, v]) => [k, per(v.count)])),
      redis: Object.fromEntries(Object.entries(io.redis).map(([k, v]) => [k, per(v)])),
    };
  }
  return result;
}

/**
 * BENCH_AB_QUIET (cores, default 0.5; 0: off): before a round, wait until the rest of the
 * machine keeps at most that many cores busy (sampled over 1 s; nothing of this run is
 * working then), for at most BENCH_AB_QUIET_WAIT_S (default 60). Returns the last sample.
 */
async function waitQuiet(ctx: Ctx): Promise<number | undefined> {
  const limit = Number(process.env.BENCH_AB_QUIET ?? 0.5);
  if (!(limit > 0)) return undefined;
  const until = Date.now() + Number(process.env.BENCH_AB_QUIET_WAIT_S ?? 60) * 1000;
  let waited = false;
  for (;;) {
    const busy = await CpuMeter.busyCores(1000);
    if (busy === null) return undefined;
    if (busy <= limit) return busy;
    if (Date.now() >= until) {
      ctx.log(`the machine is still busy (${busy.toFixed(2)} cores): going on`);
      return busy;
    }
    if (!waited) ctx.log(`the machine is busy (${busy.toFixed(2)} cores of other jobs): waiting for ≤ ${limit}`);
    waited = true;
  }
}

async function runScenario(ctx: Ctx, kind: ThroughputKind, sides: { A: AbSide; B: AbSide }): Promise<AbScenarioResult> {
  const samples: Record<'A' | 'B', AbRound[]> = { A: [], B: [] };
  for (let round = 0; round < ctx.config.rounds; round++) {
    const order = round % 2 === 0 ? (['A', 'B'] as const) : (['B', 'A'] as const);
    for (const label of order) {
      const side = sides[label];
      const busyBefore = await waitQuiet(ctx);
      const sample: AbRound = await orchestratorRound(ctx, kind, round, { label, ...(side.srcRoot ? { srcRoot: side.srcRoot } : {}), ...(side.nodeArgs?.length ? { nodeArgs: side.nodeArgs } : {}) });
      if (busyBefore !== undefined) sample.busyBefore = busyBefore;
      samples[label].push(sample);
      const other = sample.otherCpu === undefined ? '' : `; other jobs ${(sample.otherCpu / sample.seconds).toFixed(2)} cores`;
      ctx.log(
        `${LABELS[kind]} round ${round + 1}/${ctx.config.rounds} ${label} (${side.commit}): ${sample.completed}/${sample.total} completed in ` +
          `${sample.seconds.toFixed(2)} s = ${sample.rate.toFixed(1)}/s${sample.capped ? ' (capped)' : ''}; ` +
          `last created ${sample.createdSeconds?.toFixed(2)} s, last READY ${sample.readySeconds?.toFixed(2)} s, first dispatch ${sample.firstDispatchSeconds?.toFixed(2)} s${other}`,
      );
    }
  }
  const A = sideResult(samples.A);
  const B = sideResult(samples.B);
  return {
    kind,
    total: samples.A[0]?.total ?? samples.B[0]?.total ?? 0,
    A,
    B,
    ratio: B.median / A.median,
    cpuRatio: (A.cpuPerTask.all ?? Number.NaN) / (B.cpuPerTask.all ?? Number.NaN),
    perFreeCoreRatio: B.perFreeCore.median / A.perFreeCore.median,
    pairedRatio: pairedRatios(samples.B.map((s) => s.rate), samples.A.map((s) => s.rate)),
  };
}

const CPU_ROWS: [CpuGroup | 'all', string][] = [
  ['orchestrator', 'orchestrator process'],
  ['agents', 'agents process (no-op agents)'],
  ['bench', 'bench process (status watcher)'],
  ['postgres', 'PostgreSQL'],
  ['nats', 'NATS server'],
  ['redis', 'Redis'],
  ['all', 'all'],
];

export function abMarkdown(r: AbReport): string {
  const c = r.config as unknown as BenchConfig;
  const m = r.machine;
  const { A, B } = r.sides;
  const kinds = (['flat', 'deps'] as const).filter((k) => r.scenarios[k]);
  const scenarioName = (k: ThroughputKind): string =>
    k === 'flat'
      ? `flat, ${fmtInt(c.n)} tasks, events of ${fmtInt(c.eventSize)}`
      : `fan-in, ${fmtInt(c.parents)} parents × ${c.children} children (${fmtInt(c.parents * (c.children + 1))} tasks), events of ${c.parentsPerEvent} parents`;
  const capped = (s: AbSideResult): string => (s.capped ? ` ⚠ capped in ${s.capped}/${s.rounds.length}` : '');
  const lines = [
    `### A/B run ${r.runId}, ${r.startedAt.slice(0, 16).replace('T', ' ')} UTC, ${fmt(r.seconds)} s`,
    '',
    `A = ${A.rev} (${A.commit}, "${A.subject}"${A.nodeArgs?.length ? `, node ${A.nodeArgs.join(' ')}` : ''}); B = ${B.rev} (${B.commit}, "${B.subject}"${B.nodeArgs?.length ? `, node ${B.nodeArgs.join(' ')}` : ''}). ` +
      `${m.cores} × ${m.cpu}, Node ${m.node}, PostgreSQL ${m.postgres}, Redis ${m.redis}, NATS ${m.nats}; load average at start ${(m.loadAverageAtStart as number[]).join(' ')}. ` +
      `${c.rounds} rounds per side, alternating (A B, B A, …), median (min–max); agent concurrency ${c.agentConcurrency}, MAX_CONCURRENT_TASKS ${c.maxRunning}, DISPATCH_BATCH ${c.dispatchBatch ?? 1} (a revision without it: one message per dispatch); rounds capped at ${c.phaseLimitMs / 1000} s.`,
    '',
    `| figure (tasks/s, first event → last COMPLETED) | A | B | B ÷ A (medians) | B ÷ A per round pair | ≥ ${r.floor} × A |`,
    '| --- | ---: | ---: | ---: | ---: | :---: |',
    ...kinds.map((k) => {
      const s = r.scenarios[k]!;
      return `| ${scenarioName(k)} | ${fmtSummary(s.A)}${capped(s.A)} | ${fmtSummary(s.B)}${capped(s.B)} | ${fmtRatio(s.ratio)} | ${fmtSummary(s.pairedRatio, fmtRatio)} | ${s.ratio >= r.floor ? 'yes' : 'no'} |`;
    }),
    ...kinds.map((k) => {
      const s = r.scenarios[k]!;
      return `| ${LABELS[k]}, CPU per task of this run's processes (µs; B ÷ A: A's ÷ B's) | ${fmt(s.A.cpuPerTask.all ?? Number.NaN)} | ${fmt(s.B.cpuPerTask.all ?? Number.NaN)} | ${fmtRatio(s.cpuRatio)} | – | ${s.cpuRatio >= r.floor ? 'yes' : 'no'} |`;
    }),
    ...kinds.map((k) => {
      const s = r.scenarios[k]!;
      return `| ${LABELS[k]}, tasks/s per core left by other jobs (rate ÷ (${cpus().length} − other jobs' cores)) | ${fmtSummary(s.A.perFreeCore)} | ${fmtSummary(s.B.perFreeCore)} | ${fmtRatio(s.perFreeCoreRatio)} | – | ${s.perFreeCoreRatio >= r.floor ? 'yes' : 'no'} |`;
    }),
    ...kinds.map((k) => {
      const s = r.scenarios[k]!;
      return `| ${LABELS[k]}, other jobs on the machine during the rounds (cores) | ${fmtSummary(s.A.otherCores)} | ${fmtSummary(s.B.otherCores)} | – | – | – |`;
    }),
    ...kinds.map((k) => {
      const s = r.scenarios[k]!;
      return `| ${LABELS[k]}, intake: tasks written (per s) | ${fmtSummary(s.A.intake)} | ${fmtSummary(s.B.intake)} | ${fmtRatio(s.B.intake.median / s.A.intake.median)} | – | – |`;
    }),
  ];
  const withCpu = kinds.filter((k) => r.scenarios[k]!.A.cpuPerTask.all !== undefined && r.scenarios[k]!.B.cpuPerTask.all !== undefined);
  if (withCpu.length) {
    lines.push(
      '',
      `**CPU per task** (µs of CPU per completed task in each process over the measured window, median of rounds; ${cpus().length} cores):`,
      '',
      `| process | ${withCpu.map((k) => `${LABELS[k]} A | ${LABELS[k]} B | B ÷ A`).join(' | ')} |`,
      `| --- | ${withCpu.map(() => '---: | ---: | ---:').join(' | ')} |`,
      ...CPU_ROWS.map(([g, name]) => {
        const cells = withCpu.map((k) => {
          const a = r.scenarios[k]!.A.cpuPerTask[g] ?? Number.NaN;
          const b = r.scenarios[k]!.B.cpuPerTask[g] ?? Number.NaN;
          return `${fmt(a)} | ${fmt(b)} | ${fmtRatio(b / a)}`;
        });
        return `| ${name} | ${cells.join(' | ')} |`;
      }),
      ...threadRows(r, withCpu),
      `| cores busy (this run) | ${withCpu.map((k) => `${fmt(r.scenarios[k]!.A.coresBusy)} | ${fmt(r.scenarios[k]!.B.coresBusy)} | –`).join(' | ')} |`,
    );
  }
  for (const k of kinds) {
    const s = r.scenarios[k]!;
    if (!s.A.io || !s.B.io) continue;
    const a = s.A.io;
    const b = s.B.io;
    const keys = [...new Set([...Object.keys(a.statements), ...Object.keys(b.statements)])].sort(
      (x, y) => Math.max(b.statements[y] ?? 0, a.statements[y] ?? 0) - Math.max(b.statements[x] ?? 0, a.statements[x] ?? 0),
    );
    lines.push(
      '',
      `**Orchestrator I/O per 1 000 completed tasks, ${LABELS[k]}** (median round, counted in the orchestrator process): ` +
        `SQL statements A ${k1(a.sqlPerTask)}, B ${k1(b.sqlPerTask)}; ` +
        `ms waiting on SQL (summed over concurrent statements) A ${k1(a.sqlWaitMsPerTask)}, B ${k1(b.sqlWaitMsPerTask)}; ` +
        `Redis commands A ${k1(a.redisPerTask)} (${fmtCounts(a.redis)}), B ${k1(b.redisPerTask)} (${fmtCounts(b.redis)}).`,
      '',
      '| statement (prepared name, or verb, table and condition) | A per 1 000 tasks | B per 1 000 tasks |',
      '| --- | ---: | ---: |',
      ...keys.slice(0, 16).map((key) => `| \`${key.replaceAll('|', '\\|')}\` | ${k1(a.statements[key] ?? 0)} | ${k1(b.statements[key] ?? 0)} |`),
    );
  }
  for (const k of kinds) lines.push(...probeSection(r.scenarios[k]!, LABELS[k]));
  const times = Object.entries(r.timing).map(([k, t]) => `${LABELS[k as ThroughputKind] ?? k} ${fmt(t.seconds)} s (load ${t.loadBefore.toFixed(1)} → ${t.loadAfter.toFixed(1)})`);
  if (times.length) lines.push('', `Scenario times: ${times.join(', ')}.`);
  if (r.concurrentRuns?.length) lines.push('', `⚠ Other benchmark runs used the same servers meanwhile (${r.concurrentRuns.join(', ')}): figures disturbed.`);
  if (r.skipped.length) lines.push('', `Skipped (time limit): ${r.skipped.join(', ')}.`);
  for (const [name, error] of Object.entries(r.errors)) lines.push('', `**${name} failed**: ${error}`);
  for (const p of r.profiles ?? []) lines.push('', profileMarkdown(p));
  return lines.join('\n');
}

/** The orchestrator process's CPU per task by thread (main JS thread, V8 helpers, …), median of rounds. */
function threadRows(r: AbReport, kinds: readonly ThroughputKind[]): string[] {
  const names = new Set<string>();
  for (const k of kinds) for (const side of ['A', 'B'] as const) for (const s of r.scenarios[k]![side].rounds) for (const n of Object.keys(s.orchestratorThreads ?? {})) names.add(n);
  const perTask = (rounds: readonly AbRound[], name: string): number =>
    median(rounds.filter((s) => s.orchestratorThreads && s.completed > 0).map((s) => ((s.orchestratorThreads![name] ?? 0) / s.completed) * 1e6));
  return [...names]
    .sort((a, b) => (a === 'main' ? -1 : b === 'main' ? 1 : a.localeCompare(b)))
    .filter((n) => kinds.some((k) => perTask(r.scenarios[k]!.A.rounds, n) + perTask(r.scenarios[k]!.B.rounds, n) >= 1))
    .map((n) => {
      const cells = kinds.map((k) => {
        const a = perTask(r.scenarios[k]!.A.rounds, n);
        const b = perTask(r.scenarios[k]!.B.rounds, n);
        return `${fmt(a)} | ${fmt(b)} | ${fmtRatio(b / a)}`;
      });
      return `| – orchestrator process, ${n === 'main' ? 'its JS thread' : n === 'helpers' ? 'its other threads (V8 GC and compiler, libuv)' : `thread ${n}`} | ${cells.join(' | ')} |`;
    });
}

/** BENCH_PROBE: the hot-path counters, mean per round, A beside B; and the fan-in delays. */
function probeSection(s: AbScenarioResult, label: string): string[] {
  const sides = [s.A.rounds.filter((x) => x.probe), s.B.rounds.filter((x) => x.probe)] as const;
  if (!sides[0].length || !sides[1].length) return [];
  const mean = (rounds: readonly AbRound[], name: string, f: (c: ProbeCounter) => number): number =>
    rounds.reduce((a, x) => a + (x.probe![name] ? f(x.probe![name]!) : 0), 0) / rounds.length;
  const maxOf = (rounds: readonly AbRound[], name: string, f: (c: ProbeCounter) => number): number =>
    Math.max(0, ...rounds.map((x) => (x.probe![name] ? f(x.probe![name]!) : 0)));
  const names = [...new Set(sides.flatMap((rounds) => rounds.flatMap((x) => Object.keys(x.probe!))))].sort();
  const cell = (rounds: readonly AbRound[], name: string): string => {
    const calls = mean(rounds, name, (c) => c.calls);
    if (!calls) return '– | – | – | –';
    const items = mean(rounds, name, (c) => c.items);
    const ms = mean(rounds, name, (c) => c.ms);
    const wait = mean(rounds, name, (c) => c.waitMs ?? Number.NaN);
    return `${fmt(calls)} | ${items ? fmt(items / calls) : '–'} | ${fmt(ms / calls)} (max ${fmt(maxOf(rounds, name, (c) => c.maxMs))}) | ${Number.isNaN(wait) ? '–' : `${fmt(wait / calls)} (max ${fmt(maxOf(rounds, name, (c) => c.maxWaitMs ?? 0))})`}`;
  };
  const lines = [
    '',
    `**Hot path, ${label}** (BENCH_PROBE; per round, mean of ${sides[0].length} / ${sides[1].length} rounds: calls, items per call, wall ms per call, and for reactions the ms each waited for its project's earlier ones):`,
    '',
    '| method | A calls | A items/call | A ms/call | A wait ms | B calls | B items/call | B ms/call | B wait ms |',
    '| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |',
    ...names.map((n) => `| ${n} | ${cell(sides[0], n)} | ${cell(sides[1], n)} |`),
  ];
  const delays = [s.A.rounds.filter((x) => x.delays), s.B.rounds.filter((x) => x.delays)] as const;
  if (delays[0].length && delays[1].length) {
    const d = (rounds: readonly AbRound[], pick: (x: NonNullable<AbRound['delays']>) => DelaySummary): string => {
      const m = (f: (x: DelaySummary) => number): string => fmt(median(rounds.map((x) => f(pick(x.delays!)))));
      return `${m((x) => x.p50)} / ${m((x) => x.p90)} / ${m((x) => x.p99)} / ${m((x) => x.max)}`;
    };
    lines.push(
      '',
      `**Fan-in delays** (ms, p50 / p90 / p99 / max, median of rounds; from the status messages' arrivals):`,
      '',
      '| delay | A | B |',
      '| --- | ---: | ---: |',
      `| parent: last child COMPLETED → parent READY (promotion) | ${d(delays[0], (x) => x.promote)} | ${d(delays[1], (x) => x.promote)} |`,
      `| parent: READY → RUNNING | ${d(delays[0], (x) => x.dispatch)} | ${d(delays[1], (x) => x.dispatch)} |`,
      `| child: READY → RUNNING | ${d(delays[0], (x) => x.childDispatch)} | ${d(delays[1], (x) => x.childDispatch)} |`,
    );
  }
  return lines;
}

/** A per-task figure per 1 000 tasks. */
const k1 = (perTask: number): string => fmt(perTask * 1000);

function fmtCounts(counts: Record<string, number>): string {
  return Object.entries(counts)
    .sort((x, y) => y[1] - x[1])
    .map(([k, v]) => `${k} ${k1(v)}`)
    .join(', ');
}

/** The whole A/B run; resolves with the exit code. */
export async function runAb(rev: string): Promise<number> {
  const config = loadBenchConfig();
  const started = Date.now();
  const stamp = new Date(started).toISOString().replace(/[:.]/g, '-').slice(0, 19);
  const outDir = join(RESULTS_DIR, `ab-${stamp}-${config.runId}`);
  const log = (message: string): void => console.error(`[${((Date.now() - started) / 1000).toFixed(1).padStart(6)} s] ${message}`);
  const floor = Number(process.env.BENCH_AB_FLOOR ?? 0.9);
  const kinds = (['flat', 'deps'] as const).filter((k) => config.only.has(k));
  if (!kinds.length) throw new Error('BENCH_ONLY: the A/B run measures flat and deps only');

  const sides = { A: prepareCheckout(rev, log), B: workingTree() };
  mkdirSync(outDir, { recursive: true });

  let infra: Infra | null = null;
  let agents: Child | null = null;
  let cleaning: Promise<void> | null = null;
  const cleanup = (): Promise<void> =>
    (cleaning ??= (async () => {
      if (agents) await agents.stop(10_000).catch(() => undefined);
      if (infra) {
        for (const p of await infra.cleanupAll()) log(`cleanup: ${p}`);
        await infra.close();
      }
    })());
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.once(signal, () => {
      log(`${signal}: cleaning up`);
      void cleanup().finally(() => process.exit(130));
    });
  }

  try {
    log(
      `A/B run ${config.runId}: A = ${sides.A.rev} (${sides.A.commit}${sides.A.nodeArgs?.length ? `, node ${sides.A.nodeArgs.join(' ')}` : ''}), B = ${sides.B.rev} (${sides.B.commit}${sides.B.nodeArgs?.length ? `, node ${sides.B.nodeArgs.join(' ')}` : ''}); ` +
        `N=${config.n}, parents=${config.parents}×${config.children}, rounds=${config.rounds}, scenarios=${kinds.join(',')}`,
    );
    infra = await Infra.connect(config);
    agents = spawnAgents(config, outDir);
    await agents.notice('started', 60_000);
    const cpu = await CpuMeter.find(infra, agents.pid);
    const ctx: Ctx = { config, infra, agents, cpu, outDir, deadline: started + config.totalLimitMs, log };
    const report: AbReport = {
      runId: config.runId,
      startedAt: new Date(started).toISOString(),
      config: configForReport(config),
      machine: await machineInfo(infra),
      sides,
      floor,
      scenarios: {},
      errors: {},
      skipped: [],
      timing: {},
      seconds: 0,
    };
    // Warm-up, not counted: the agents and bench processes (and the tsx cache of each side's
    // code) start cold, which would cost the first round of the first side.
    const warmups = Math.max(0, Number(process.env.BENCH_AB_WARMUP ?? 1));
    if (warmups > 0) {
      const small = { ...ctx, config: { ...config, n: Math.max(100, Math.round(config.n / 10)), parents: Math.max(10, Math.round(config.parents / 10)) } };
      for (let w = 0; w < warmups; w++) {
        for (const kind of kinds) {
          for (const label of ['A', 'B'] as const) {
            const side = sides[label];
            const sample = await orchestratorRound(small, kind, 100 + w, { label: `w${label}`, ...(side.srcRoot ? { srcRoot: side.srcRoot } : {}), ...(side.nodeArgs?.length ? { nodeArgs: side.nodeArgs } : {}) });
            log(`warm-up ${LABELS[kind]} ${label}: ${sample.completed}/${sample.total} in ${sample.seconds.toFixed(2)} s (not counted)`);
          }
        }
      }
    }
    for (const kind of kinds) {
      const others = await infra.otherRuns().catch(() => []);
      if (others.length) {
        log(`warning: other benchmark runs are using this server (${others.join(', ')}): the figures will be disturbed`);
        report.concurrentRuns = [...new Set([...(report.concurrentRuns ?? []), ...others])];
      }
      if (Date.now() > ctx.deadline) {
        log(`${kind}: skipped (BENCH_TOTAL_LIMIT_S reached)`);
        report.skipped.push(kind);
        continue;
      }
      const load = loadavg()[0]!;
      log(`${LABELS[kind]}: start (load average ${load.toFixed(2)})`);
      const t = Date.now();
      try {
        report.scenarios[kind] = await runScenario(ctx, kind, sides);
      } catch (err) {
        log(`${kind}: FAILED ${err instanceof Error ? err.stack ?? err.message : String(err)}`);
        report.errors[kind] = err instanceof Error ? err.message : String(err);
      }
      report.timing[kind] = { seconds: (Date.now() - t) / 1000, loadBefore: load, loadAfter: loadavg()[0]! };
    }
    await cleanup();
    if (config.cpuProf) report.profiles = summarizeProfiles(join(outDir, 'profiles'));
    report.seconds = (Date.now() - started) / 1000;
    const markdown = abMarkdown(report);
    const file = join(RESULTS_DIR, `ab-${stamp}-${config.runId}.json`);
    writeFileSync(file, `${JSON.stringify({ ...report, markdown }, null, 2)}\n`);
    console.log(markdown);
    log(`results: ${file} (logs${config.cpuProf ? ', profiles' : ''}: ${outDir})`);
    return Object.keys(report.errors).length ? 1 : 0;
  } finally {
    await cleanup().catch(() => undefined);
  }
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const rev = (process.argv[2] ?? process.env.BENCH_AB ?? '').trim();
  if (!rev) {
    console.error('usage: npm run bench:ab -- <rev>   (or BENCH_AB=<rev> npm run bench)');
    process.exitCode = 2;
  } else {
    runAb(rev).then(
      (code) => {
        process.exitCode = code;
      },
      (err: unknown) => {
        console.error(err);
        process.exitCode = 1;
      },
    );
  }
}
