/** The run's report: machine description, the Markdown table, the I/O breakdown. */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { cpus, loadavg, release, totalmem } from 'node:os';
import { join } from 'node:path';
import { ROOT } from './config.js';
import type { Infra } from './infra.js';
import type { IoStats } from './io-stats.js';
import { profileMarkdown, type ProfileSummary } from './profile.js';
import { fmt, fmtInt, fmtMiB, fmtRatio, fmtSummary, summarize, type Summary } from './stats.js';
import type { ThroughputResult, ThroughputSample } from '../scenarios/throughput.js';
import type { CpuGroup, CpuUsage } from './cpu.js';
import type { PeerName } from './config.js';
import type { LatencyResult } from '../scenarios/latency.js';
import type { ScaleResult } from '../scenarios/scale.js';
import type { MemoryResult } from '../scenarios/memory.js';

export interface Report {
  runId: string;
  startedAt: string;
  config: Record<string, unknown>;
  machine: Record<string, unknown>;
  scenarios: Record<string, unknown>;
  errors: Record<string, string>;
  skipped: string[];
  /** Per scenario: seconds taken and the 1-minute load average before and after. */
  timing: Record<string, { seconds: number; loadBefore: number; loadAfter: number }>;
  seconds: number;
  profiles?: ProfileSummary[];
  /** Other benchmark runs seen on the same servers while this one ran. */
  concurrentRuns?: string[];
  /** The throughput figures' peers and their configuration (bench/e2e/peers/). */
  peers?: Record<string, string>;
}

function git(args: string[]): string {
  try {
    return execFileSync('git', args, { cwd: ROOT, encoding: 'utf8' }).trim();
  } catch {
    return '?';
  }
}

export async function machineInfo(infra: Infra): Promise<Record<string, unknown>> {
  const pgVersion = (await infra.pg.query<{ v: string }>("SELECT current_setting('server_version') AS v")).rows[0]?.v;
  const redisVersion = /redis_version:(\S+)/.exec(await infra.redis.info('server'))?.[1];
  const version = (pkg: string): string => (JSON.parse(readFileSync(join(ROOT, 'node_modules', pkg, 'package.json'), 'utf8')) as { version: string }).version;
  const bullmq = version('bullmq');
  return {
    cpu: cpus()[0]?.model ?? '?',
    cores: cpus().length,
    memoryGiB: Math.round(totalmem() / 2 ** 30),
    kernel: release(),
    node: process.version,
    postgres: pgVersion,
    redis: redisVersion,
    nats: infra.nc.info?.version ?? '?',
    bullmq,
    graphileWorker: version('graphile-worker'),
    pgBoss: version('pg-boss'),
    // BENCH_COMMIT: for a run from an exported tree (git archive), which has no .git.
    commit: process.env.BENCH_COMMIT ?? `${git(['rev-parse', '--short', 'HEAD'])}${git(['status', '--porcelain', 'src']) ? ' (src modified)' : ''}`,
    loadAverageAtStart: loadavg().map((l) => Number(l.toFixed(2))),
  };
}

const ms = (n: number): string => (n === Number.POSITIVE_INFINITY ? '> 10 s' : `${fmt(n)}`);
const secs = (n: number): string => `${fmt(n)} s`;

function throughputRow(n: number, label: string, r: ThroughputResult | undefined): string[] {
  if (!r) return [];
  const capped = r.orchestrator.capped ? ` ⚠ capped in ${r.orchestrator.capped}/${r.orchestrator.rounds.length}` : '';
  const i = r.ingest;
  const none = (x: Summary | undefined, f?: (n: number) => string): string => (x ? fmtSummary(x, f) : '–');
  return [
    `| ${n}. ${label}: first event / add → last completed (tasks/s) | ${fmtSummary(r.orchestrator)}${capped} | ${none(r.bullmq)} | ${none(r.ratio['bullmq-redis'], fmtRatio)} |`,
    `| ${n}b. same, intake: tasks written / jobs added (per s) | ${fmtSummary(i.orchestrator)} | ${none(i.peers['bullmq-redis'])} | ${none(i.ratio['bullmq-redis'], fmtRatio)} |`,
  ];
}

/** The sides of a throughput figure: the orchestrator, then each peer with rounds. */
function sidesOf(r: ThroughputResult | undefined): [string, ThroughputSample[]][] {
  if (!r) return [];
  return [['orchestrator', r.orchestrator.rounds], ...Object.entries(r.peers).map(([k, v]) => [k, v!.rounds] as [string, ThroughputSample[]])];
}

/** µs of CPU per completed task of one group (all groups: undefined), median of the rounds. */
function cpuPerTask(rounds: ThroughputSample[], group?: CpuGroup): number {
  const measured = rounds.filter((s) => s.cpu && s.completed > 0);
  // A group with no process in these rounds (the orchestrator's in a peer's): "–", not 0.
  if (group && !measured.some((s) => (s.cpu as CpuUsage)[group] !== undefined)) return Number.NaN;
  const values = measured.map((s) => {
    const cpu = s.cpu as CpuUsage;
    const seconds = group ? (cpu[group] ?? 0) : Object.values(cpu).reduce((a, b) => a + (b ?? 0), 0);
    return (seconds / s.completed) * 1e6;
  });
  return summarize(values).median;
}

const GROUP_LABELS: Record<CpuGroup, string> = {
  orchestrator: 'orchestrator',
  agents: 'agents/worker',
  bench: 'bench/producer',
  postgres: 'PostgreSQL',
  nats: 'NATS',
  redis: 'Redis',
};

/** "1 132 (orchestrator 478, PostgreSQL 361, …)": all groups, then the biggest ones (≥ 5 % of the whole). */
function cpuCell(rounds: ThroughputSample[] | undefined): string {
  if (!rounds?.some((s) => s.cpu && s.completed > 0)) return '–';
  const all = cpuPerTask(rounds);
  const groups = (Object.keys(GROUP_LABELS) as CpuGroup[])
    .map((g) => [g, cpuPerTask(rounds, g)] as const)
    .filter(([, v]) => v >= all * 0.05)
    .sort((a, b) => b[1] - a[1]);
  return `${fmt(all)} (${groups.map(([g, v]) => `${GROUP_LABELS[g]} ${fmt(v)}`).join(', ')})`;
}

/**
 * One row per side: flat and fan-in rates, the orchestrator's ratio to each peer (paired
 * per round), and the CPU per task of all processes with the biggest groups.
 */
function peersTable(r: Report, flat: ThroughputResult | undefined, fanin: ThroughputResult | undefined): string[] {
  if (!flat && !fanin) return [];
  const names = [
    ...new Set([flat, fanin].flatMap((x) => [...Object.keys(x?.peers ?? {}), ...Object.keys(x?.unsupported ?? {}), ...Object.keys(x?.errors ?? {})])),
  ] as PeerName[];
  const rate = (x: ThroughputResult | undefined, p: PeerName): string => {
    const s = x?.peers[p];
    if (!s) return x?.unsupported[p] ? '—' : x?.errors[p] ? 'failed' : '–';
    return `${fmtSummary(s)}${s.capped ? ` ⚠ capped ${s.capped}/${s.rounds.length}` : ''}`;
  };
  const ratio = (x: ThroughputResult | undefined, p: PeerName): string => (x?.ratio[p] ? fmtSummary(x.ratio[p]!, fmtRatio) : '—');
  const orchCapped = (x: ThroughputResult | undefined): string => (x?.orchestrator.capped ? ` ⚠ capped ${x.orchestrator.capped}/${x.orchestrator.rounds.length}` : '');
  const lines = [
    '',
    `**The orchestrator against the peers** (tasks/s, median (min–max) of ${(r.config as { rounds: number }).rounds} rounds in rotating order; ` +
      'orchestrator ÷ peer per round; CPU: µs per completed task of every process of the round, the groups above 5 % in brackets):',
    '',
    '| peer | flat tasks/s | orchestrator ÷ peer | fan-in tasks/s | orchestrator ÷ peer | CPU µs per task, flat | CPU µs per task, fan-in |',
    '| --- | ---: | ---: | ---: | ---: | ---: | ---: |',
    `| **orchestrator** | **${flat ? fmtSummary(flat.orchestrator) : '–'}**${orchCapped(flat)} | — | **${fanin ? fmtSummary(fanin.orchestrator) : '–'}**${orchCapped(fanin)} | — | ${cpuCell(flat?.orchestrator.rounds)} | ${cpuCell(fanin?.orchestrator.rounds)} |`,
    ...names.map(
      (p) =>
        `| ${p} | ${rate(flat, p)} | ${ratio(flat, p)} | ${rate(fanin, p)} | ${ratio(fanin, p)} | ${cpuCell(flat?.peers[p]?.rounds)} | ${cpuCell(fanin?.peers[p]?.rounds)} |`,
    ),
  ];
  const notes = names.filter((p) => fanin?.unsupported[p]).map((p) => `${p}: ${fanin!.unsupported[p]}`);
  if (notes.length) lines.push('', `No fan-in round (—): ${notes.join('; ')}.`);
  if (r.peers) lines.push('', `Peers: ${Object.entries(r.peers).map(([k, v]) => `\`${k}\` ${v}`).join('; ')}.`);
  return lines;
}

export function markdownReport(r: Report): string {
  const c = r.config as { n: number; parents: number; children: number; rounds: number; phaseLimitMs: number; concurrency: number; agentConcurrency: number; dispatchBatch: number; maxRunning: number; eventSize: number; parentsPerEvent: number };
  const flat = r.scenarios.flat as ThroughputResult | undefined;
  const deps = (r.scenarios.fanin ?? r.scenarios.deps) as ThroughputResult | undefined;
  const lat = r.scenarios.latency as LatencyResult | undefined;
  const scale = r.scenarios.scale as ScaleResult | undefined;
  const mem = r.scenarios.memory as MemoryResult | undefined;
  const m = r.machine;
  const lines = [
    `### Run ${r.runId}, ${r.startedAt.slice(0, 16).replace('T', ' ')} UTC, ${fmt(r.seconds)} s`,
    '',
    `${m.cores} × ${m.cpu}, ${m.memoryGiB} GiB, Linux ${m.kernel}; Node ${m.node}, PostgreSQL ${m.postgres}, Redis ${m.redis}, ` +
      `NATS ${m.nats}, BullMQ ${m.bullmq}, graphile-worker ${m.graphileWorker as string}, pg-boss ${m.pgBoss as string}; commit ${m.commit}; load average at start ${(m.loadAverageAtStart as number[]).join(' ')}. ` +
      `${c.rounds} alternating rounds, median (min–max); worker concurrency ${c.concurrency} (BullMQ Worker) and ${c.agentConcurrency} (no-op agent), orchestrator MAX_CONCURRENT_TASKS ${c.maxRunning}, DISPATCH_BATCH ${c.dispatchBatch ?? 1} for the no-op agent; orchestrator runs capped at ${c.phaseLimitMs / 1000} s.`,
    '',
    '| figure | orchestrator | BullMQ | orchestrator ÷ BullMQ |',
    '| --- | ---: | ---: | ---: |',
    ...throughputRow(1, `flat, ${fmtInt(c.n)} tasks, random priorities, events of ${fmtInt(c.eventSize)}`, flat),
    ...throughputRow(2, `fan-in, ${fmtInt(c.parents)} parents × ${c.children} children (${fmtInt(c.parents * (c.children + 1))} tasks), events of ${c.parentsPerEvent} parents`, deps),
  ];
  if (lat) {
    const o = lat.orchestrator;
    lines.push(
      `| 3. latency p50, event → agent at ${fmt(o.rate)}/s${o.maximum ? ` (half of ${fmt(o.maximum)}/s)` : ''} (ms) | ${fmtSummary(o.p50, ms)} | ${fmtSummary(lat.bullmqSameRate.p50, ms)} | ${fmtSummary(lat.ratioP50, fmtRatio)} |`,
      `| 3. latency p99, same load (ms) | ${fmtSummary(o.p99, ms)} | ${fmtSummary(lat.bullmqSameRate.p99, ms)} | ${fmtSummary(lat.ratioP99, fmtRatio)} |`,
      `| 3. BullMQ at ${fmt(lat.bullmqOwnRate.rate)}/s${lat.bullmqOwnRate.maximum ? ` (half of ${fmt(lat.bullmqOwnRate.maximum)}/s)` : ''}: p50 / p99 (ms) | – | ${fmt(lat.bullmqOwnRate.p50.median)} / ${ms(lat.bullmqOwnRate.p99.median)} | – |`,
      `| 3. floor: NATS request-reply round trip p50 / p99 (ms) | ${fmt(lat.natsFloor.p50.median)} / ${fmt(lat.natsFloor.p99.median)} | – | – |`,
    );
  }
  if (scale) {
    lines.push(
      `| 4. dispatch rate, ${fmtInt(scale.small.queued)} READY tasks queued (/s) | ${fmtSummary(scale.small)} | – | – |`,
      `| 4. dispatch rate, ${fmtInt(scale.big.queued)} READY tasks queued (/s); big ÷ small | ${fmtSummary(scale.big)} | – | ${fmtSummary(scale.ratio, fmtRatio)} |`,
    );
  }
  if (mem) {
    const heap = (x: { heapUsed: number; rss: number }): string => `heap ${fmtMiB(x.heapUsed)}, RSS ${fmtMiB(x.rss)}`;
    lines.push(
      `| 4. memory, no tasks (baseline) | ${heap(mem.baseline)} | – | – |`,
      `| 4. memory, ${fmtInt(mem.nonFinal.tasks)} non-final tasks | ${heap(mem.nonFinal)} | – | – |`,
      `| 4. memory, ${fmtInt(mem.final.tasks)} final tasks | ${heap(mem.final)} | – | – |`,
      `| 5. recovery: restart with ${fmtInt(mem.recovery.tasks)} READY tasks → first dispatch | ${fmtSummary(mem.recovery, secs)} (start() ${fmtSummary(mem.recovery.startSeconds, secs)}) | – | – |`,
    );
  }
  lines.push(...peersTable(r, flat, deps));
  lines.push('', ...progressNotes('flat', flat), ...progressNotes('fan-in', deps));
  const times = Object.entries(r.timing).map(([k, t]) => `${k} ${fmt(t.seconds)} s (load ${t.loadBefore.toFixed(1)} → ${t.loadAfter.toFixed(1)})`);
  if (times.length) lines.push(`Scenario times: ${times.join(', ')}.`);
  if (r.concurrentRuns?.length) lines.push('', `⚠ Other benchmark runs used the same servers meanwhile (${r.concurrentRuns.join(', ')}): figures disturbed.`);
  if (r.skipped.length) lines.push('', `Skipped (time limit): ${r.skipped.join(', ')}.`);
  for (const [name, error] of Object.entries(r.errors)) lines.push('', `**${name} failed**: ${error}`);
  lines.push(...cpuSection(flat, 'flat'), ...cpuSection(deps, 'fan-in'));
  lines.push(...ioSection(flat, 'flat'), ...ioSection(deps, 'fan-in'));
  for (const p of r.profiles ?? []) lines.push('', profileMarkdown(p));
  return lines.join('\n');
}

/** How far the orchestrator got in each round: READY (events ingested, tasks promoted), dispatched, completed. */
function progressNotes(label: string, r: ThroughputResult | undefined): string[] {
  const rounds = r?.orchestrator.rounds ?? [];
  if (!rounds.length) return [];
  const parts = rounds.map(
    (s) =>
      `${fmtInt(s.created ?? 0)} created (last after ${fmt(s.createdSeconds ?? Number.NaN)} s), ` +
      `${fmtInt(s.readied ?? 0)} READY (last after ${fmt(s.readySeconds ?? Number.NaN)} s), first dispatch after ${fmt(s.firstDispatchSeconds ?? Number.NaN)} s, ` +
      `${fmtInt(s.completed)} completed in ${fmt(s.seconds)} s${s.capped ? ' (capped)' : ''}`,
  );
  return [`Orchestrator ${label} rounds (of ${fmtInt(r!.total)}): ${parts.join('; ')}.`, ''];
}

/** Per group: its label. */
const CPU_ROWS: [CpuGroup, string][] = [
  ['orchestrator', 'orchestrator process'],
  ['agents', "agents process: no-op agents over NATS / the peer's worker with a no-op processor"],
  ['bench', "bench process: status watcher / the peer's producer (and its COUNT queries)"],
  ['postgres', 'PostgreSQL (all its processes)'],
  ['nats', 'NATS server'],
  ['redis', 'Redis (the shared one, and the AOF peer\'s)'],
];

/**
 * CPU per task (per job) of each process group over the measured windows, median over
 * rounds, for every side: all of them share the machine's cores, so this is what bounds the rate.
 */
function cpuSection(r: ThroughputResult | undefined, label: string): string[] {
  const sides = sidesOf(r).filter(([, rounds]) => rounds.some((s) => s.cpu && s.completed > 0));
  if (!sides.length) return [];
  const busy = (rounds: ThroughputSample[]): number =>
    summarize(rounds.filter((s) => s.cpu).map((s) => Object.values(s.cpu as CpuUsage).reduce((a, b) => a + (b ?? 0), 0) / s.seconds)).median;
  return [
    '',
    `**CPU per task, ${label}** (µs of CPU time per completed task (job) in each process group over the measured window, median of rounds; ` +
      `cores busy on average (of ${cpus().length}): ${sides.map(([name, rounds]) => `${name} ${fmt(busy(rounds))}`).join(', ')}):`,
    '',
    `| process | ${sides.map(([name]) => name).join(' | ')} |`,
    `| --- |${sides.map(() => ' ---: |').join('')}`,
    ...CPU_ROWS.map(([group, name]) => `| ${name} | ${sides.map(([, rounds]) => fmt(cpuPerTask(rounds, group))).join(' | ')} |`),
    `| all | ${sides.map(([, rounds]) => fmt(cpuPerTask(rounds))).join(' | ')} |`,
  ];
}

/**
 * Statements and commands of the orchestrator process per durable transition (every
 * status message: created, READY, RUNNING, heartbeat, COMPLETED…) and per completed task,
 * in the round with the most transitions.
 */
function ioSection(r: ThroughputResult | undefined, label: string): string[] {
  const rounds = (r?.orchestrator.rounds ?? []).filter((s) => s.io && (s.transitions ?? 0) > 0);
  if (!rounds.length) return [];
  const mid = [...rounds].sort((a, b) => (a.transitions ?? 0) - (b.transitions ?? 0))[rounds.length >> 1]!;
  const io = mid.io as IoStats;
  const transitions = mid.transitions ?? 0;
  const per = (n: number, d: number): string => (d > 0 ? (n / d).toFixed(2) : '–');
  const sql = Object.entries(io.sql).sort((a, b) => b[1].ms - a[1].ms);
  const totalCount = sql.reduce((s, [, v]) => s + v.count, 0);
  const totalMs = sql.reduce((s, [, v]) => s + v.ms, 0);
  const redis = Object.entries(io.redis).sort((a, b) => b[1] - a[1]);
  const redisTotal = redis.reduce((s, [, v]) => s + v, 0);
  return [
    '',
    `**Orchestrator I/O, ${label}** (median round: ${fmtInt(transitions)} transitions, ${fmtInt(mid.completed)} tasks completed, in ${fmt(mid.seconds)} s): ` +
      `${per(totalCount, transitions)} SQL statements per transition (${per(totalCount, mid.completed)} per completed task), ` +
      `${fmt(totalMs / 1000)} s spent waiting on SQL in all (summed over concurrent statements); ` +
      `${per(redisTotal, transitions)} Redis commands per transition (${redis.map(([k, v]) => `${k} ${per(v, transitions)}`).join(', ')}).`,
    '',
    '| statement (prepared name, or verb, table and condition) | per transition | mean ms | share of SQL wait |',
    '| --- | ---: | ---: | ---: |',
    ...sql.slice(0, 10).map(([k, v]) => `| \`${k.replaceAll('|', '\\|')}\` | ${per(v.count, transitions)} | ${(v.ms / v.count).toFixed(2)} | ${((v.ms / totalMs) * 100).toFixed(0)} % |`),
  ];
}

export type { Summary };
