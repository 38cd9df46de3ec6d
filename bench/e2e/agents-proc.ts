/**
 * The consumer process of the benchmark, one for the whole run: the orchestrator's no-op
 * agent (createAgentWorker, answering `{ output: {}, actualCost: 0 }` at once), the
 * peers' workers with their no-op processors (bench/e2e/peers/: the BullMQ Worker on
 * Redis or PostgreSQL, graphile-worker's runner, pg-boss's `work`), and a NATS echo
 * responder (the request-reply floor). Only one side works at a time; the orchestrator's
 * agent and BullMQ's Worker record, for tasks / jobs carrying `sentAt`, the time from
 * `sentAt` to the handler being called. Started by bench/run.ts.
 */
import { connect } from '@nats-io/transport-node';
import { createAgentWorker, createLogger, type AgentWorker } from '../../src/index.js';
import { redisOptions } from './infra.js';
import { notify, serve } from './ipc.js';
import { startPeerWorker, type PeerWorker, type PeerWorkerSettings } from './peers/workers.js';
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

/** The peer worker of the current round (the latency figure's BullMQ Worker too). */
let peer: PeerWorker | null = null;

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

async function startPeer(s: PeerWorkerSettings): Promise<null> {
  if (peer) throw new Error('a peer worker is already running');
  peer = await startPeerWorker(
    s,
    (data) => sample((data as { sentAt?: unknown } | null)?.sentAt),
    (err) => logger.warn({ err, peer: s.peer }, 'peer worker error'),
  );
  return null;
}

async function stopPeer(): Promise<null> {
  const p = peer;
  peer = null;
  await p?.close();
  return null;
}

async function waitPeer(args: unknown): Promise<{ completed: number; lastCompletedAt: number }> {
  const { target, deadline } = args as { target: number; deadline: number };
  await until(() => (peer?.completed().completed ?? 0) >= target, deadline);
  return peer?.completed() ?? { completed: 0, lastCompletedAt: 0 };
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
  /** The latency figure's BullMQ Worker on the shared Redis: the `bullmq-redis` peer's. */
  async startBull(args) {
    const { queueName, prefix, concurrency } = args as { queueName: string; prefix: string; concurrency: number };
    return startPeer({ peer: 'bullmq-redis', kind: 'flat', queueName, prefix, concurrency, redis: redisOptions(settings.redisUrl) });
  },
  stopBull: () => stopPeer(),
  waitBull: (args) => waitPeer(args),
  /** Starts a peer's worker for a round (bench/e2e/peers/). */
  startPeer: (args) => startPeer(args as PeerWorkerSettings),
  stopPeer: () => stopPeer(),
  /** Resolves once the peer's worker saw `target` jobs completed or at `deadline` (epoch ms). */
  waitPeer: (args) => waitPeer(args),
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
    await peer?.close().catch(() => undefined);
    await nc.drain().catch(() => undefined);
    setTimeout(() => process.exit(0), 50);
    return null;
  },
});

notify({ type: 'started' });
