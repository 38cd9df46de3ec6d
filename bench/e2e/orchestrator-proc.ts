/**
 * The orchestrator process of the benchmark. It is wired like `startService` (blackboard
 * on PostgreSQL + Redis, NATS event bus, streams ensured, orchestrator started), because
 * `startService` takes no `pipeline` / `taskTypes` options and the benchmark needs its own
 * no-op task type and pipeline. Settings come from BENCH_ORCH (JSON) only, never from the
 * rest of the environment. Started by bench/e2e/context.ts; not meant to be run alone.
 *
 * `srcRoot` (the A side of `npm run bench:ab`, bench/ab.ts) runs another checkout's
 * orchestrator: its `src/index.ts` is imported instead of this tree's, with that
 * checkout's own node_modules, while this harness (settings, pipeline, I/O counting, IPC)
 * stays the same on both sides.
 */
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { installIoStats, takeIoStats } from './io-stats.js';
import { installProbe, takeProbe } from './probe.js';
import { notify, serve } from './ipc.js';
import { wallMs } from './stats.js';
import { BENCH_TASK_TYPES, NOOP_AGENT, benchPipeline } from './workload.js';

/** What this process uses of the package's public API (src/index.ts), in every revision it runs. */
type Lib = Pick<
  typeof import('../../src/index.js'),
  'NatsEventBus' | 'OrchestratorFactory' | 'connectNats' | 'createBlackboard' | 'createLogger' | 'loadConfig'
>;
const LIB_NAMES = ['NatsEventBus', 'OrchestratorFactory', 'connectNats', 'createBlackboard', 'createLogger', 'loadConfig'] as const;

async function loadLib(srcRoot: string | undefined): Promise<Lib> {
  if (!srcRoot) return import('../../src/index.js');
  const lib = (await import(pathToFileURL(join(srcRoot, 'src', 'index.ts')).href)) as Partial<Lib>;
  const missing = LIB_NAMES.filter((name) => lib[name] === undefined || lib[name] === null);
  if (missing.length) throw new Error(`${srcRoot}/src/index.ts does not export ${missing.join(', ')}: bench/e2e/orchestrator-proc.ts cannot drive that revision`);
  return lib as Lib;
}

export interface OrchestratorProcSettings {
  databaseUrl: string;
  schema: string;
  redisUrl: string;
  redisPrefix: string;
  queueKey: string;
  natsUrl: string;
  subjectPrefix: string;
  maxRunning: number;
  /** DISPATCH_BATCH for the no-op agent (a revision without it sends one message per dispatch). */
  dispatchBatch: number;
  priorityLevels: number;
  children: number;
  ioStats: boolean;
  instanceId: string;
  /** Another checkout whose src/ (and node_modules) this process runs; default this tree. */
  srcRoot?: string;
  /** Counters on the hot path (bench/e2e/probe.ts). */
  probe?: boolean;
}

export interface StartedNotice {
  type: 'started';
  /** Wall-clock ms: process start, modules loaded, start() called, start() resolved. */
  processAt: number;
  loadedAt: number;
  startAt: number;
  startedAt: number;
  live: number;
  /** The checkout whose src/ this process runs. */
  src: string;
}

export interface MemoryReport {
  rss: number;
  heapUsed: number;
  heapTotal: number;
  external: number;
  arrayBuffers: number;
  live: number;
}

const loadedAt = wallMs();
const s = JSON.parse(process.env.BENCH_ORCH ?? 'null') as OrchestratorProcSettings | null;
if (!s) throw new Error('BENCH_ORCH is not set: this process is started by bench/run.ts');
if (s.ioStats) installIoStats(s.srcRoot);
const { NatsEventBus, OrchestratorFactory, connectNats, createBlackboard, createLogger, loadConfig } = await loadLib(s.srcRoot);
const root = s.srcRoot ?? fileURLToPath(new URL('../..', import.meta.url));
const probed = s.probe ? await installProbe(root) : [];

const config = loadConfig({}, {
  database: { url: s.databaseUrl, schema: s.schema, poolSize: 10 },
  redis: { url: s.redisUrl, keyPrefix: s.redisPrefix },
  queue: { key: s.queueKey },
  nats: { servers: s.natsUrl, subjectPrefix: s.subjectPrefix },
  scheduler: { maxConcurrentTasks: s.maxRunning, intervalSeconds: 1 },
  budget: { checkEnabled: false },
  approval: { enabled: false },
  instanceId: s.instanceId,
  logLevel: 'warn',
});
const logger = createLogger({ level: 'warn', name: 'bench-orchestrator' });

const startAt = wallMs();
const blackboard = await createBlackboard(config, logger);
const connection = await connectNats({ ...config.nats, name: `bench-${config.instanceId}` }, logger);
const bus = new NatsEventBus({
  connection,
  subjectPrefix: config.nats.subjectPrefix,
  maxPayloadBytes: config.nats.maxPayloadBytes,
  ...(s.dispatchBatch > 1 ? { dispatchBatch: { [NOOP_AGENT]: s.dispatchBatch } } : {}),
  logger,
});
await bus.ensureStreams();
const orchestrator = await OrchestratorFactory.createAndStart(blackboard, bus, config, {
  logger,
  pipeline: benchPipeline(s.priorityLevels, s.children),
  taskTypes: BENCH_TASK_TYPES,
});
const startedAt = wallMs();

const marks: Record<string, number> = {};
let stopping: Promise<void> | null = null;
async function stop(): Promise<void> {
  stopping ??= (async () => {
    const limit = new Promise<void>((resolve) => setTimeout(resolve, 12_000).unref());
    await Promise.race([
      (async () => {
        await orchestrator.stop();
        await connection.drain().catch(() => undefined);
        await blackboard.close();
      })(),
      limit,
    ]);
  })();
  return stopping;
}

function memory(): MemoryReport {
  const gc = (globalThis as { gc?: () => void }).gc;
  if (gc) {
    gc();
    gc();
  }
  const m = process.memoryUsage();
  return { rss: m.rss, heapUsed: m.heapUsed, heapTotal: m.heapTotal, external: m.external, arrayBuffers: m.arrayBuffers, live: orchestrator.core.registry.liveCount };
}

serve({
  // With `loadAll`, every non-final task's actor is loaded first (at start only RUNNING ones
  // are; the others load when needed): the heap then holds one live actor per non-final task.
  memory: async (args) => {
    if ((args as { loadAll?: boolean } | undefined)?.loadAll) await orchestrator.core.registry.restore();
    return memory();
  },
  io: async () => takeIoStats(),
  probe: async () => ({ wrapped: probed, stats: takeProbe() }),
  // Moments of the measured window on the CPU profile's clock (monotonic µs, as V8's profile timestamps).
  mark: async (args) => {
    marks[(args as { name: string }).name] = Number(process.hrtime.bigint() / 1000n);
    return null;
  },
  marks: async () => marks,
  stop: async () => {
    await stop();
    // Exit after the reply is out; --cpu-prof writes its profile on a normal exit.
    setTimeout(() => process.exit(0), 50);
    return null;
  },
});
process.once('SIGTERM', () => void stop().then(() => process.exit(0)));

notify({
  type: 'started',
  processAt: performance.timeOrigin,
  loadedAt,
  startAt,
  startedAt,
  live: orchestrator.core.registry.liveCount,
  src: root,
} satisfies StartedNotice);
