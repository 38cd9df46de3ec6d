/**
 * `npm run bench`: the orchestrator end to end against BullMQ and the durable peers
 * (bench/e2e/peers/) on this machine's PostgreSQL, Redis and NATS (see bench/README.md
 * for what each figure means).
 *
 *   npm run bench                      default sizes (< 15 minutes)
 *   BENCH_PEERS=bullmq-redis,pg-boss npm run bench   some peers only
 *   BENCH_N=2000 npm run bench         a quick run (the other sizes scale with N)
 *   BENCH_ONLY=flat,latency npm run bench
 *   BENCH_CPU_PROF=1 npm run bench     CPU profiles of the orchestrator processes
 *   BENCH_AB=<rev> npm run bench       instead: flat and fan-in of <rev> against this tree (bench/ab.ts)
 *
 * Prints a Markdown table and writes bench/results/e2e-<stamp>-<run>.json (plus logs and
 * profiles under bench/results/e2e-<stamp>-<run>/). Everything the run creates (schemas,
 * Redis keys, streams) carries its run id and is removed at the end, also on failure or
 * Ctrl-C.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { configForReport, loadBenchConfig, RESULTS_DIR, type ScenarioName } from './e2e/config.js';
import { spawnAgents, type Ctx } from './e2e/context.js';
import { CpuMeter } from './e2e/cpu.js';
import { Infra } from './e2e/infra.js';
import type { Child } from './e2e/ipc.js';
import { machineInfo, markdownReport, type Report } from './e2e/report.js';
import { summarizeProfiles } from './e2e/profile.js';
import { PeerServers, peerDrivers } from './e2e/peers/index.js';
import { legacyDeps, runThroughput, type ThroughputResult } from './scenarios/throughput.js';
import { runLatency } from './scenarios/latency.js';
import { runScale } from './scenarios/scale.js';
import { runMemory } from './scenarios/memory.js';

const abRev = process.env.BENCH_AB?.trim();
const config = loadBenchConfig();
const started = Date.now();
const stamp = new Date(started).toISOString().replace(/[:.]/g, '-').slice(0, 19);
const outDir = join(RESULTS_DIR, `e2e-${stamp}-${config.runId}`);
const log = (message: string): void => console.error(`[${((Date.now() - started) / 1000).toFixed(1).padStart(6)} s] ${message}`);

let infra: Infra | null = null;
let agents: Child | null = null;
let peerServers: PeerServers | null = null;
let cleaning: Promise<void> | null = null;

async function cleanup(): Promise<void> {
  cleaning ??= (async () => {
    if (agents) await agents.stop(10_000).catch(() => undefined);
    if (peerServers) await peerServers.stop().catch((e: unknown) => log(`cleanup: peer servers: ${String(e)}`));
    if (infra) {
      const problems = await infra.cleanupAll();
      for (const p of problems) log(`cleanup: ${p}`);
      await infra.close();
    }
  })();
  return cleaning;
}

async function main(): Promise<number> {
  mkdirSync(outDir, { recursive: true });
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.once(signal, () => {
      log(`${signal}: cleaning up`);
      void cleanup().finally(() => process.exit(130));
    });
  }
  log(`run ${config.runId}: N=${config.n}, parents=${config.parents}, rounds=${config.rounds}, scenarios=${[...config.only].join(',')}`);
  infra = await Infra.connect(config);
  agents = spawnAgents(config, outDir);
  await agents.notice('started', 60_000);
  const cpu = await CpuMeter.find(infra, agents.pid);
  const ctx: Ctx = { config, infra, agents, cpu, outDir, deadline: started + config.totalLimitMs, log };
  peerServers = new PeerServers(outDir, cpu);
  const drivers = peerDrivers(config, infra, peerServers);
  const report: Report = {
    runId: config.runId,
    startedAt: new Date(started).toISOString(),
    config: configForReport(config),
    machine: await machineInfo(infra),
    scenarios: {},
    errors: {},
    skipped: [],
    timing: {},
    seconds: 0,
    peers: Object.fromEntries([...drivers.values()].map((d) => [d.name, d.describe()])),
  };
  const scenarios: [ScenarioName, () => Promise<unknown>][] = [
    ['flat', () => runThroughput(ctx, 'flat', drivers)],
    ['deps', () => runThroughput(ctx, 'deps', drivers)],
    ['latency', () => runLatency(ctx)],
    ['scale', () => runScale(ctx)],
    ['memory', () => runMemory(ctx)],
  ];
  for (const [name, run] of scenarios) {
    if (!config.only.has(name)) continue;
    const others = await infra.otherRuns().catch(() => []);
    if (others.length) {
      log(`warning: other benchmark runs are using this server (${others.join(', ')}): the figures will be disturbed`);
      report.concurrentRuns = [...new Set([...(report.concurrentRuns ?? []), ...others])];
    }
    if (Date.now() > ctx.deadline) {
      log(`${name}: skipped (BENCH_TOTAL_LIMIT_S reached)`);
      report.skipped.push(name);
      continue;
    }
    log(`${name}: start (load average ${loadavg()[0]!.toFixed(2)})`);
    const load = loadavg()[0]!;
    const t = Date.now();
    try {
      const result = await run();
      // A peer whose round failed: the figure has the others, the run reports the failure (and exits 1).
      for (const [peer, error] of Object.entries((result as Partial<ThroughputResult>).errors ?? {})) report.errors[`${name}:${peer}`] = error;
      if (name === 'deps') {
        // The fan-in figure is `fanin` in the report; `deps` keeps its earlier layout (orchestrator against bullmq-redis).
        report.scenarios.fanin = result;
        report.scenarios.deps = legacyDeps(result as ThroughputResult);
      } else {
        report.scenarios[name] = result;
      }
    } catch (err) {
      log(`${name}: FAILED ${err instanceof Error ? err.stack ?? err.message : String(err)}`);
      report.errors[name] = err instanceof Error ? err.message : String(err);
    }
    report.timing[name] = { seconds: (Date.now() - t) / 1000, loadBefore: load, loadAfter: loadavg()[0]! };
  }
  await cleanup();
  if (config.cpuProf) report.profiles = summarizeProfiles(join(outDir, 'profiles'));
  report.seconds = (Date.now() - started) / 1000;
  const markdown = markdownReport(report);
  const file = join(RESULTS_DIR, `e2e-${stamp}-${config.runId}.json`);
  writeFileSync(file, `${JSON.stringify({ ...report, markdown }, null, 2)}\n`);
  console.log(markdown);
  log(`results: ${file} (logs${config.cpuProf ? ', profiles' : ''}: ${outDir})`);
  return Object.keys(report.errors).length ? 1 : 0;
}

(abRev ? import('./ab.js').then((ab) => ab.runAb(abRev)) : main())
  .then((code) => {
    process.exitCode = code;
  })
  .catch(async (err: unknown) => {
    console.error(err);
    await cleanup().catch(() => undefined);
    process.exitCode = 1;
  });
