/**
 * Settings of `npm run bench`, all from the environment (see bench/README.md). BENCH_N
 * scales the other sizes unless they are given: `BENCH_N=2000` is a quick run.
 */
import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';

export const ROOT = fileURLToPath(new URL('../..', import.meta.url));
export const RESULTS_DIR = fileURLToPath(new URL('../results/', import.meta.url));

export const SCENARIOS = ['flat', 'deps', 'latency', 'scale', 'memory'] as const;
export type ScenarioName = (typeof SCENARIOS)[number];

/**
 * The peers the throughput figures compare the orchestrator with (bench/e2e/peers/), in
 * the report's order. `bullmq-redis` is the reference: BullMQ on the shared Redis, not durable.
 */
export const PEERS = ['bullmq-redis', 'bullmq-redis-aof', 'bullmq-pg', 'graphile-worker', 'pg-boss'] as const;
export type PeerName = (typeof PEERS)[number];

export interface BenchConfig {
  runId: string;
  /** Flat throughput: tasks / jobs per round. */
  n: number;
  /** Dependency throughput: parents per round, each waiting on `children` children. */
  parents: number;
  children: number;
  /** A/B rounds (alternating) of the throughput and latency comparisons. */
  rounds: number;
  /** Time limit of one orchestrator run (flat, deps); the rate over what completed is reported past it. */
  phaseLimitMs: number;
  /**
   * Tasks each orchestrator process runs first, in a project of their own and not counted
   * (flat: that many tasks; fan-in: a tenth of the parents, and their children), so that
   * the measured window finds its code compiled, as a long-running service's is — the
   * peers' workers and producers run warm in the long-lived agents and benchmark processes.
   * 0: none.
   */
  warmupTasks: number;
  /** Time limit of one BullMQ run (and of one round of every peer). */
  bullLimitMs: number;
  /** BENCH_PEERS: the peers of the flat and fan-in figures (default all of PEERS). */
  peers: PeerName[];
  /** Concurrency of the BullMQ Worker: jobs in its processor at once. */
  concurrency: number;
  /** Concurrency of the no-op agent worker: tasks in its handler at once (the same as the Worker's by default). */
  agentConcurrency: number;
  /** DISPATCH_BATCH of the orchestrator for the no-op agent: dispatches per message (1: one message each). */
  dispatchBatch: number;
  /**
   * MAX_CONCURRENT_TASKS of the orchestrator: tasks RUNNING at once, which counts those on
   * their way to the agent and their results on their way back, not only those in a handler.
   */
  maxRunning: number;
  /** Tasks per event (flat) and parents per event (deps); the same chunks go to BullMQ's addBulk. */
  eventSize: number;
  parentsPerEvent: number;
  priorityLevels: number;
  seed: number;
  latencySeconds: number;
  /** Fixed latency load in events/s; default half the maximum each side showed in a burst. */
  latencyRate: number | null;
  /** Single-task events of the orchestrator's burst (BullMQ: 10 × as many adds). */
  latencyProbe: number;
  floorRequests: number;
  scaleSmall: number;
  scaleBig: number;
  /** Dispatches timed per scale window, and the window's limit. */
  scaleDispatches: number;
  scaleWindowMs: number;
  scaleRounds: number;
  /** Tasks per project of the big backlog (default scaleSmall, like the small one). */
  scalePerProject: number;
  recoveryTasks: number;
  finalTasks: number;
  /** The whole run stops starting scenarios past this. */
  totalLimitMs: number;
  cpuProf: boolean;
  /** Count the orchestrator's SQL statements and Redis commands (a wrapper in its process). */
  ioStats: boolean;
  /** BENCH_PROBE: counters on the orchestrator's hot path (bench/e2e/probe.ts) and, in the fan-in rounds, each parent's promotion delay. */
  probe: boolean;
  only: Set<ScenarioName>;
  databaseUrl: string;
  redisUrl: string;
  natsUrl: string;
}

function int(env: NodeJS.ProcessEnv, name: string, fallback: number): number {
  const raw = env[name];
  if (raw === undefined || raw.trim() === '') return fallback;
  const value = Number(raw.replaceAll('_', ''));
  if (!Number.isInteger(value) || value < 0) throw new Error(`${name}=${raw}: expected a non-negative integer`);
  return value;
}

function num(env: NodeJS.ProcessEnv, name: string, fallback: number | null): number | null {
  const raw = env[name];
  if (raw === undefined || raw.trim() === '') return fallback;
  const value = Number(raw);
  if (!Number.isFinite(value) || value <= 0) throw new Error(`${name}=${raw}: expected a positive number`);
  return value;
}

function flag(env: NodeJS.ProcessEnv, name: string, fallback: boolean): boolean {
  const raw = env[name]?.trim().toLowerCase();
  if (!raw) return fallback;
  return ['1', 'true', 'yes', 'on'].includes(raw);
}

export function loadBenchConfig(env: NodeJS.ProcessEnv = process.env): BenchConfig {
  const n = int(env, 'BENCH_N', 20_000);
  const scale = n / 20_000;
  // `fanin` is the fan-in figure's name in the report; `deps` its name here since the start.
  const only = (env.BENCH_ONLY ?? '').split(',').map((s) => s.trim()).filter(Boolean).map((s) => (s === 'fanin' ? 'deps' : s));
  for (const s of only) if (!(SCENARIOS as readonly string[]).includes(s)) throw new Error(`BENCH_ONLY: unknown scenario ${s} (${SCENARIOS.join(', ')})`);
  const peers = (env.BENCH_PEERS ?? '').split(',').map((s) => s.trim()).filter(Boolean);
  for (const p of peers) if (!(PEERS as readonly string[]).includes(p)) throw new Error(`BENCH_PEERS: unknown peer ${p} (${PEERS.join(', ')})`);
  const config: BenchConfig = {
    runId: randomBytes(3).toString('hex'),
    n,
    parents: int(env, 'BENCH_PARENTS', Math.max(10, Math.round(2_000 * scale))),
    children: int(env, 'BENCH_CHILDREN', 5),
    rounds: Math.max(1, int(env, 'BENCH_ROUNDS', 3)),
    phaseLimitMs: int(env, 'BENCH_PHASE_LIMIT_S', 30) * 1000,
    warmupTasks: Math.max(0, int(env, 'BENCH_WARMUP_TASKS', Math.round(2_000 * scale))),
    bullLimitMs: int(env, 'BENCH_BULL_LIMIT_S', 60) * 1000,
    peers: peers.length ? PEERS.filter((p) => peers.includes(p)) : [...PEERS],
    concurrency: Math.max(1, int(env, 'BENCH_CONCURRENCY', 50)),
    agentConcurrency: Math.max(1, int(env, 'BENCH_AGENT_CONCURRENCY', int(env, 'BENCH_CONCURRENCY', 50))),
    dispatchBatch: Math.max(1, int(env, 'BENCH_DISPATCH_BATCH', int(env, 'BENCH_AGENT_CONCURRENCY', int(env, 'BENCH_CONCURRENCY', 50)))),
    maxRunning: Math.max(1, int(env, 'BENCH_MAX_RUNNING', 1_000)),
    eventSize: Math.max(1, int(env, 'BENCH_EVENT_SIZE', 1_000)),
    parentsPerEvent: Math.max(1, int(env, 'BENCH_PARENTS_PER_EVENT', 100)),
    priorityLevels: Math.min(1001, Math.max(1, int(env, 'BENCH_PRIORITY_LEVELS', 10))),
    seed: int(env, 'BENCH_SEED', 42),
    latencySeconds: Math.max(1, int(env, 'BENCH_LATENCY_S', 6)),
    latencyRate: num(env, 'BENCH_LATENCY_RATE', null),
    latencyProbe: Math.max(10, int(env, 'BENCH_LATENCY_PROBE', 400)),
    floorRequests: Math.max(10, int(env, 'BENCH_FLOOR_REQUESTS', 2_000)),
    scaleSmall: Math.max(1, int(env, 'BENCH_SCALE_SMALL', 1_000)),
    scaleBig: Math.max(1, int(env, 'BENCH_SCALE_BIG', Math.round(1_000_000 * scale))),
    scaleDispatches: Math.max(10, int(env, 'BENCH_SCALE_DISPATCHES', 900)),
    scaleWindowMs: int(env, 'BENCH_SCALE_WINDOW_S', 10) * 1000,
    scaleRounds: Math.max(1, int(env, 'BENCH_SCALE_ROUNDS', 3)),
    scalePerProject: Math.max(1, int(env, 'BENCH_SCALE_PER_PROJECT', int(env, 'BENCH_SCALE_SMALL', 1_000))),
    recoveryTasks: Math.max(1, int(env, 'BENCH_RECOVERY_TASKS', Math.round(100_000 * scale))),
    finalTasks: Math.max(1, int(env, 'BENCH_FINAL_TASKS', Math.round(1_000_000 * scale))),
    totalLimitMs: int(env, 'BENCH_TOTAL_LIMIT_S', 840) * 1000,
    cpuProf: flag(env, 'BENCH_CPU_PROF', false),
    ioStats: flag(env, 'BENCH_IO_STATS', true),
    probe: flag(env, 'BENCH_PROBE', false),
    only: new Set((only.length ? only : SCENARIOS) as ScenarioName[]),
    databaseUrl: env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test',
    redisUrl: env.REDIS_URL ?? 'redis://127.0.0.1:6379',
    natsUrl: env.NATS_URL ?? 'nats://127.0.0.1:4222',
  };
  if (config.scaleDispatches >= config.scaleSmall) config.scaleDispatches = Math.max(1, Math.floor(config.scaleSmall / 2));
  return config;
}

/** What goes into the JSON file (the Set as an array). */
export function configForReport(c: BenchConfig): Record<string, unknown> {
  return { ...c, only: [...c.only] };
}
