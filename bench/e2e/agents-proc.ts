/**
 * The consumer process of the benchmark, one for the whole run: the orchestrator's no-op
 * agent (createAgentWorker, answering `{ output: {}, actualCost: 0 }` at once), the BullMQ
 * Worker with its no-op processor, and a NATS echo responder (the request-reply floor).
 * Only one side works at a time; both record, for tasks / jobs carrying `sentAt`, the
 * time from `sentAt` to the handler being called. Started by bench/run.ts.
 */
import { connect } from '@nats-io/transport-node';
import { Worker, type Job } from 'bullmq';
import { createAgentWorker, createLogger, type AgentWorker } from '../../src/index.js';
import { redisOptions } from './infra.js';
import { notify, serve } from './ipc.js';
import { sleep, wallMs } from './stats.js';
import { NOOP_AGENT } from './workload.js';

const settings = JSON.parse(process.env.BENCH_AGENTS ?? 'null') as { natsUrl: string; redisUrl: string } | null;
if (!settings) throw new Error('BENCH_AGENTS is not set: this process is started by bench/run.ts');
const nc = await connect({ servers: settings.natsUrl.split(','), name: 'bench-agents', noAsyncTraces: true });
const logger = createLogger({ level: 'warn', name: 'bench-agents' });

/**
 * The current latency window: [sentAt, latency ms] of the tasks / jobs sent since `since`
 * (stragglers of an earlier window are not counted), how many, and when the last came.
 */
let latencies: [number, number][] = [];
let since = Number.POSITIVE_INFINITY;
let handled = 0;
let lastHandledAt = 0;

let agent: AgentWorker | null = null;
let echo: { unsubscribe(): void } | null = null;

let bull: Worker | null = null;
let completed = 0;
let lastCompletedAt = 0;

function sample(sentAt: unknown): void {
  if (typeof sentAt !== 'number' || sentAt < since) return;
  const now = wallMs();
  handled++;
  lastHandledAt = now;
  latencies.push([sentAt, now - sentAt]);
}

async function until(check: () => boolean, deadline: number): Promise<void> {
  while (!check() && Date.now() < deadline) await sleep(5);
}

serve({
  async startNats(args) {
    const { subjectPrefix, concurrency } = args as { subjectPrefix: string; concurrency: number };
    if (agent) throw new Error('agent already running');
    agent = await createAgentWorker({
      connection: nc,
      agent: NOOP_AGENT,
      subjectPrefix,
      concurrency,
      logger,
      handle: async (task) => {
        sample(task.input.sentAt);
        return { output: {}, actualCost: 0 };
      },
    });
    echo = nc.subscribe(`${subjectPrefix}.bench.echo`, { callback: (_err, m) => void m.respond(m.data) });
    await nc.flush();
    return null;
  },
  async stopNats() {
    echo?.unsubscribe();
    echo = null;
    await agent?.stop({ abort: true });
    agent = null;
    return null;
  },
  async startBull(args) {
    const { queueName, prefix, concurrency } = args as { queueName: string; prefix: string; concurrency: number };
    if (bull) throw new Error('BullMQ worker already running');
    completed = 0;
    lastCompletedAt = 0;
    bull = new Worker(queueName, async (job: Job) => void sample((job.data as { sentAt?: unknown }).sentAt), {
      connection: redisOptions(settings.redisUrl),
      prefix,
      concurrency,
    });
    bull.on('completed', () => {
      completed++;
      lastCompletedAt = wallMs();
    });
    bull.on('error', (err) => logger.warn({ err }, 'BullMQ worker error'));
    await bull.waitUntilReady();
    return null;
  },
  async stopBull() {
    await bull?.close(true);
    bull = null;
    return null;
  },
  /** Resolves once `target` jobs completed or at `deadline` (epoch ms). */
  async waitBull(args) {
    const { target, deadline } = args as { target: number; deadline: number };
    await until(() => completed >= target, deadline);
    return { completed, lastCompletedAt };
  },
  /** Starts a latency window: only what was sent at or after `since` (epoch ms) is counted. */
  async beginWindow(args) {
    ({ since } = args as { since: number });
    latencies = [];
    handled = 0;
    lastHandledAt = 0;
    return null;
  },
  /** Resolves once `target` tasks/jobs of the window were handled, or at `deadline`. */
  async waitHandled(args) {
    const { target, deadline } = args as { target: number; deadline: number };
    await until(() => handled >= target, deadline);
    return { handled, lastHandledAt };
  },
  /** Ends the window: its samples. */
  async takeLatencies() {
    const out = latencies;
    latencies = [];
    since = Number.POSITIVE_INFINITY;
    return out;
  },
  stop: async () => {
    await agent?.stop({ abort: true }).catch(() => undefined);
    await bull?.close(true).catch(() => undefined);
    await nc.drain().catch(() => undefined);
    setTimeout(() => process.exit(0), 50);
    return null;
  },
});

notify({ type: 'started' });
