/**
 * The orchestrator process of the benchmark. It is wired like `startService` (blackboard
 * on PostgreSQL + Redis, NATS event bus, streams ensured, orchestrator started), because
 * `startService` takes no `pipeline` / `taskTypes` options and the benchmark needs its own
 * no-op task type and pipeline. Settings come from BENCH_ORCH (JSON) only, never from the
 * rest of the environment. Started by bench/e2e/processes.ts; not meant to be run alone.
 */
import { performance } from 'node:perf_hooks';
import { installIoStats, takeIoStats } from './io-stats.js';
import { notify, serve } from './ipc.js';
import { wallMs } from './stats.js';
import { BENCH_TASK_TYPES, benchPipeline } from './workload.js';
import {
  NatsEventBus,
  OrchestratorFactory,
  connectNats,
  createBlackboard,
  createLogger,
  loadConfig,
} from '../../src/index.js';

export interface OrchestratorProcSettings {
  databaseUrl: string;
  schema: string;
  redisUrl: string;
  redisPrefix: string;
  queueKey: string;
  natsUrl: string;
  subjectPrefix: string;
  maxRunning: number;
  priorityLevels: number;
  children: number;
  ioStats: boolean;
  instanceId: string;
}

export interface StartedNotice {
  type: 'started';
  /** Wall-clock ms: process start, modules loaded, start() called, start() resolved. */
  processAt: number;
  loadedAt: number;
  startAt: number;
  startedAt: number;
  live: number;
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
if (s.ioStats) installIoStats();

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
const bus = new NatsEventBus({ connection, subjectPrefix: config.nats.subjectPrefix, maxPayloadBytes: config.nats.maxPayloadBytes, logger });
await bus.ensureStreams();
const orchestrator = await OrchestratorFactory.createAndStart(blackboard, bus, config, {
  logger,
  pipeline: benchPipeline(s.priorityLevels, s.children),
  taskTypes: BENCH_TASK_TYPES,
});
const startedAt = wallMs();

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
} satisfies StartedNotice);
