/**
 * What every scenario gets: the settings, the shared connections, the agents process,
 * and how to start an orchestrator process on an environment; plus the status watcher.
 */
import { existsSync, readdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { NatsConnection, Subscription } from '@nats-io/transport-node';
import { RESULTS_DIR, type BenchConfig } from './config.js';
import type { CpuMeter } from './cpu.js';
import type { BenchEnv, Infra } from './infra.js';
import { Child } from './ipc.js';
import type { MemoryReport, OrchestratorProcSettings, StartedNotice } from './orchestrator-proc.js';
import type { IoStats } from './io-stats.js';
import type { ProbeStats } from './probe.js';
import { sleep, wallMs } from './stats.js';

export interface Ctx {
  config: BenchConfig;
  infra: Infra;
  agents: Child;
  /** CPU per process group over a window; null where /proc is missing. */
  cpu: CpuMeter | null;
  /** bench/results/<stamp>-<runId>/ : logs, profiles. */
  outDir: string;
  /** Epoch ms after which no new scenario starts. */
  deadline: number;
  log(message: string): void;
}

export function spawnAgents(config: BenchConfig, outDir: string): Child {
  return Child.spawn('agents', 'bench/e2e/agents-proc.ts', {
    ...(config.cpuProf ? { nodeArgs: ['--cpu-prof', '--cpu-prof-dir', join(outDir, 'profiles', 'agents')] } : {}),
    // NO_LOG_SUCCESS: graphile-worker writes no log line per completed job (its documented setting for throughput).
    env: { BENCH_AGENTS: JSON.stringify({ natsUrl: config.natsUrl, redisUrl: config.redisUrl }), NO_LOG_SUCCESS: '1' },
    logFile: join(outDir, 'logs', 'agents.log'),
  });
}

export class OrchestratorProc {
  private constructor(
    readonly child: Child,
    readonly label: string,
    private readonly profDir: string | null,
  ) {}

  /** Spawns the orchestrator on `env`; resolves once it has started (start() resolved). */
  /** `maxRunning` overrides the orchestrator's MAX_CONCURRENT_TASKS (default: the configured one). */
  /** `srcRoot`: run another checkout's orchestrator (its src/ and node_modules; bench/ab.ts), default this tree's. */
  static async start(
    ctx: Ctx,
    env: BenchEnv,
    label: string,
    maxRunning?: number,
    srcRoot?: string,
    sideNodeArgs: readonly string[] = [],
  ): Promise<{ proc: OrchestratorProc; started: StartedNotice; spawnAt: number }> {
    const c = ctx.config;
    const settings: OrchestratorProcSettings = {
      databaseUrl: c.databaseUrl,
      schema: env.schema,
      redisUrl: c.redisUrl,
      redisPrefix: env.redisPrefix,
      queueKey: env.queueKey,
      natsUrl: c.natsUrl,
      subjectPrefix: env.subjectPrefix,
      maxRunning: maxRunning ?? c.maxRunning,
      dispatchBatch: c.dispatchBatch,
      priorityLevels: c.priorityLevels,
      children: c.children,
      ioStats: c.ioStats,
      // The run id in it: CpuMeter finds this run's PostgreSQL backends by application_name.
      instanceId: `bench-${c.runId}-${label}`.replace(/[^A-Za-z0-9_.-]/g, '_'),
      ...(srcRoot ? { srcRoot } : {}),
      ...(c.probe ? { probe: true } : {}),
    };
    // One directory per process: tsx's loader thread writes a profile of its own.
    const profDir = join(ctx.outDir, 'profiles', `orchestrator-${label}`);
    // The service's own flag (the image's ENTRYPOINT), then the run's and the side's.
    const nodeArgs = [SERVICE_NODE_ARGS, ...(process.env.BENCH_ORCH_NODE_ARGS ?? '').split(' ').filter(Boolean), ...sideNodeArgs, ...(c.cpuProf ? ['--cpu-prof', '--cpu-prof-dir', profDir] : [])];
    const spawnAt = wallMs();
    const child = Child.spawn(`orchestrator(${label})`, 'bench/e2e/orchestrator-proc.ts', {
      env: { BENCH_ORCH: JSON.stringify(settings) },
      logFile: join(ctx.outDir, 'logs', `orchestrator-${label}.log`),
      nodeArgs,
    });
    try {
      const started = (await child.notice('started', 180_000)) as unknown as StartedNotice;
      if (srcRoot && started.src !== srcRoot) throw new Error(`orchestrator(${label}) runs ${started.src}, not ${srcRoot}`);
      return { proc: new OrchestratorProc(child, label, c.cpuProf ? profDir : null), started, spawnAt };
    } catch (err) {
      await child.stop(2_000);
      throw err;
    }
  }

  /** The process's memory; with `loadAll`, after loading the actor of every non-final task. */
  memory(loadAll = false): Promise<MemoryReport> {
    return this.child.request<MemoryReport>('memory', { loadAll });
  }

  io(): Promise<IoStats> {
    return this.child.request<IoStats>('io');
  }

  /** The hot-path counters since the last call (BENCH_PROBE), and which methods are wrapped. */
  probe(): Promise<{ wrapped: string[]; stats: ProbeStats }> {
    return this.child.request('probe');
  }

  /** Marks a moment of the measured window (`start`, `end`) on the profile's clock: profile-diff.ts counts only what lies between. */
  async mark(name: string): Promise<void> {
    if (this.profDir) await this.child.request('mark', { name });
  }

  /**
   * Stops the process; with profiling, its main thread's profile becomes
   * profiles/orchestrator-<label>.cpuprofile, and the marks of its measured window
   * profiles/orchestrator-<label>.window.json.
   */
  async stop(): Promise<{ graceful: boolean }> {
    const marks = this.profDir ? await this.child.request<Record<string, number>>('marks', undefined, 5_000).catch(() => null) : null;
    const outcome = await this.child.stop(20_000);
    if (this.profDir && existsSync(this.profDir)) {
      // CPU.<date>.<time>.<pid>.<thread id>.<seq>.cpuprofile; the main thread is 0.
      const main = readdirSync(this.profDir).find((f) => /^CPU\.\d+\.\d+\.\d+\.0\.\d+\.cpuprofile$/.test(f));
      if (main) renameSync(join(this.profDir, main), join(this.profDir, '..', `orchestrator-${this.label}.cpuprofile`));
      if (main && marks) writeFileSync(join(this.profDir, '..', `orchestrator-${this.label}.window.json`), `${JSON.stringify(marks)}\n`);
      rmSync(this.profDir, { recursive: true, force: true });
    }
    return outcome;
  }
}

/**
 * Watches `<prefix>.status.>` (core NATS, published by the orchestrator after every
 * durable transition) and counts arrivals as they happen in this process.
 */
/** The Node flag the service runs with (Dockerfile ENTRYPOINT; README, Image): the benchmark runs the orchestrator as shipped. */
export const SERVICE_NODE_ARGS = '--max-semi-space-size=64';

export class StatusWatch {
  /** Every status message: each is one durable transition (creation included). */
  transitions = 0;
  created = 0;
  lastCreatedAt = 0;
  /** Tasks seen COMPLETED (each once: a repeated COMPLETED message would stop the clock early). */
  completed = 0;
  /** COMPLETED messages for a task already seen COMPLETED. */
  repeatedCompleted = 0;
  private readonly completedIds = new Set<string>();
  readied = 0;
  lastReadyAt = 0;
  dispatched = 0;
  failed = 0;
  lastCompletedAt = 0;
  firstDispatchAt = 0;
  /** Arrival times of READY → RUNNING, when `recordDispatches`. */
  dispatchTimes: number[] = [];
  recordDispatches = false;
  /** Per task, when `recordTasks`: arrival times of its creation, READY, first RUNNING and COMPLETED. */
  tasks = new Map<string, { created?: number; ready?: number; running?: number; completed?: number }>();
  recordTasks = false;
  private readonly sub: Subscription;

  constructor(private readonly nc: NatsConnection, subjectPrefix: string) {
    this.sub = nc.subscribe(`${subjectPrefix}.status.>`, {
      callback: (_err, m) => {
        if (!m) return;
        const body = m.json<{ taskId: string; from: string | null; to: string }>();
        const now = wallMs();
        this.transitions++;
        if (this.recordTasks) {
          let t = this.tasks.get(body.taskId);
          if (!t) this.tasks.set(body.taskId, (t = {}));
          if (body.from === null) t.created = now;
          if (body.to === 'READY') t.ready ??= now;
          else if (body.to === 'RUNNING') t.running ??= now;
          else if (body.to === 'COMPLETED') t.completed = now;
        }
        if (body.from === null) {
          this.created++;
          this.lastCreatedAt = now;
        }
        if (body.to === 'COMPLETED') {
          if (this.completedIds.has(body.taskId)) {
            this.repeatedCompleted++;
          } else {
            this.completedIds.add(body.taskId);
            this.completed++;
            this.lastCompletedAt = now;
          }
        } else if (body.to === 'READY') {
          this.readied++;
          this.lastReadyAt = now;
        } else if (body.to === 'RUNNING' && body.from === 'READY') {
          this.dispatched++;
          if (!this.firstDispatchAt) this.firstDispatchAt = now;
          if (this.recordDispatches) this.dispatchTimes.push(now);
        } else if (body.to === 'FAILED' || body.to === 'CANCELLED') {
          this.failed++;
        }
      },
    });
  }

  /** Forgets what it saw (a warm-up's statuses): the counts start again from zero. */
  reset(): void {
    this.transitions = this.created = this.lastCreatedAt = this.completed = this.repeatedCompleted = 0;
    this.readied = this.lastReadyAt = this.dispatched = this.failed = this.lastCompletedAt = this.firstDispatchAt = 0;
    this.completedIds.clear();
    this.dispatchTimes = [];
    this.tasks.clear();
  }

  /** Resolves once the subscription is registered at the server. */
  async ready(): Promise<void> {
    await this.nc.flush();
  }

  /** Waits until `check` holds or `deadline` (epoch ms); returns whether it held. */
  async until(check: () => boolean, deadline: number): Promise<boolean> {
    while (!check()) {
      if (Date.now() >= deadline) return false;
      await sleep(10);
    }
    return true;
  }

  close(): void {
    this.sub.unsubscribe();
  }
}

export const RESULTS = RESULTS_DIR;
