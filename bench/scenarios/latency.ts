/**
 * Figure 3: latency at a steady load.
 *
 * - orchestrator: one BENCH_ONE event (one task) published every 1/rate s; latency =
 *   the agent's handler called − the event's `sentAt` (same machine clock, wall ms);
 * - BullMQ: one Queue.add every 1/rate s; latency = processor called − `sentAt`;
 * - floor: NATS request-reply round trip to the agents process (sequential requests).
 *
 * The load is half the maximum each side sustains on this very workload, measured first
 * by a burst (latencyProbe single-task events / 10 × as many single adds, all sent at
 * once; maximum = handled ÷ time to the last handled, within 20 s) — the flat figure
 * does not fit: its events carry 1 000 tasks each. BENCH_LATENCY_RATE sets the load of
 * both sides instead. BullMQ is also measured at the orchestrator's load (same rate).
 * Windows of latencySeconds alternate between the sides for `rounds` rounds; the first
 * 10 % of each window is warm-up and not counted. A task not handled within 10 s after
 * its window counts as an infinite latency (p99 shows "> 10 s" when over 1 % miss).
 */
import { Queue } from 'bullmq';
import type { Ctx } from '../e2e/context.js';
import { OrchestratorProc } from '../e2e/context.js';
import { redisOptions } from '../e2e/infra.js';
import { pairedRatios, percentile, sleep, summarize, wallMs, type Summary } from '../e2e/stats.js';

const DRAIN_MS = 10_000;
const WARMUP = 0.1;
const PROBE_LIMIT_MS = 20_000;

export interface LatencyWindow {
  rate: number;
  sent: number;
  handled: number;
  p50: number;
  p99: number;
}

export interface LatencySide {
  rate: number;
  /** The burst's maximum this side's rate is half of (null with BENCH_LATENCY_RATE). */
  maximum: number | null;
  p50: Summary;
  p99: Summary;
  windows: LatencyWindow[];
}

export interface LatencyResult {
  orchestrator: LatencySide;
  /** BullMQ at the orchestrator's rate. */
  bullmqSameRate: LatencySide;
  /** BullMQ at half its own measured maximum. */
  bullmqOwnRate: LatencySide;
  natsFloor: { p50: Summary; p99: Summary; requests: number };
  /** orchestrator ÷ BullMQ (same rate), per round. */
  ratioP50: Summary;
  ratioP99: Summary;
}

function side(windows: LatencyWindow[], rate: number, maximum: number | null): LatencySide {
  return { rate, maximum, p50: summarize(windows.map((w) => w.p50)), p99: summarize(windows.map((w) => w.p99)), windows };
}

export async function runLatency(ctx: Ctx): Promise<LatencyResult> {
  const c = ctx.config;
  const env = ctx.infra.newEnv('latency');
  const projectId = 'bench_latency';
  const queueName = 'latency';
  const prefix = ctx.infra.bullPrefix;
  const queue = new Queue(queueName, { connection: redisOptions(c.redisUrl), prefix });
  let orchestrator: OrchestratorProc | null = null;
  let natsUp = false;
  let bullUp = false;
  try {
    ({ proc: orchestrator } = await OrchestratorProc.start(ctx, env, 'latency'));
    await ctx.agents.request('startNats', { subjectPrefix: env.subjectPrefix, concurrency: c.agentConcurrency });
    natsUp = true;
    await ctx.agents.request('startBull', { queueName, prefix, concurrency: c.concurrency });
    bullUp = true;
    await queue.waitUntilReady();
    await ctx.infra.publishEvent(env, projectId, 'PROJECT_CREATED', `${env.id}_created`, { title: 'bench latency' });
    await ctx.infra.waitForProject(env, projectId);

    let seq = 0;
    const publishOrch = (sentAt: number): Promise<void> =>
      ctx.infra.publishEvent(env, projectId, 'BENCH_ONE', `${env.id}_${seq++}`, { sentAt });
    const addBull = async (sentAt: number): Promise<void> => {
      await queue.add('one', { sentAt });
    };
    // The bursts also warm both paths up (JIT, prepared statements, scripts).
    const orchMax = await probe(ctx, publishOrch, c.latencyProbe);
    const bullMax = await probe(ctx, addBull, c.latencyProbe * 10);
    const orchRate = c.latencyRate ?? Math.max(1, orchMax / 2);
    const bullRate = c.latencyRate ?? Math.max(1, bullMax / 2);
    ctx.log(`latency: maxima ${orchMax.toFixed(1)}/s (orchestrator), ${bullMax.toFixed(0)}/s (BullMQ); loads ${orchRate.toFixed(1)}/s and ${bullRate.toFixed(0)}/s`);

    const orch: LatencyWindow[] = [];
    const same: LatencyWindow[] = [];
    const own: LatencyWindow[] = [];
    const floors: { p50: number; p99: number }[] = [];
    for (let round = 0; round < c.rounds; round++) {
      const steps: (() => Promise<void>)[] = [
        async () => void orch.push(await measureWindow(ctx, publishOrch, orchRate, c.latencySeconds)),
        async () => void same.push(await measureWindow(ctx, addBull, orchRate, c.latencySeconds)),
        async () => void own.push(await measureWindow(ctx, addBull, bullRate, c.latencySeconds)),
      ];
      if (round % 2 === 1) steps.reverse();
      for (const step of steps) await step();
      floors.push(await natsFloor(ctx, env.subjectPrefix, c.floorRequests));
      const last = (ws: LatencyWindow[]): string => `${ws.at(-1)!.p50.toFixed(1)}/${ws.at(-1)!.p99.toFixed(1)} ms`;
      ctx.log(`latency round ${round + 1}/${c.rounds} p50/p99: orchestrator ${last(orch)}, BullMQ same rate ${last(same)}, own rate ${last(own)}, NATS ${floors.at(-1)!.p50.toFixed(2)}/${floors.at(-1)!.p99.toFixed(2)} ms`);
    }
    return {
      orchestrator: side(orch, orchRate, c.latencyRate ? null : orchMax),
      bullmqSameRate: side(same, orchRate, null),
      bullmqOwnRate: side(own, bullRate, c.latencyRate ? null : bullMax),
      natsFloor: { p50: summarize(floors.map((f) => f.p50)), p99: summarize(floors.map((f) => f.p99)), requests: c.floorRequests },
      ratioP50: pairedRatios(orch.map((w) => w.p50), same.map((w) => w.p50)),
      ratioP99: pairedRatios(orch.map((w) => w.p99), same.map((w) => w.p99)),
    };
  } finally {
    if (bullUp) await ctx.agents.request('stopBull');
    await queue.close();
    if (orchestrator) await orchestrator.stop();
    if (natsUp) await ctx.agents.request('stopNats');
    await ctx.infra.deleteRedisKeys(`${prefix}:${queueName}:*`);
    await ctx.infra.dropEnv(env);
  }
}

/** Sends `count` at once; the rate at which the agent process got them (within PROBE_LIMIT_MS). */
async function probe(ctx: Ctx, send: (sentAt: number) => Promise<void>, count: number): Promise<number> {
  const start = wallMs();
  await ctx.agents.request('beginWindow', { since: start });
  const sends: Promise<void>[] = [];
  for (let i = 0; i < count; i++) sends.push(send(wallMs()));
  await Promise.allSettled(sends);
  const r = await ctx.agents.request<{ handled: number; lastHandledAt: number }>(
    'waitHandled',
    { target: count, deadline: Date.now() + PROBE_LIMIT_MS },
    PROBE_LIMIT_MS + 30_000,
  );
  await ctx.agents.request('takeLatencies');
  return r.handled / ((r.handled >= count ? r.lastHandledAt - start : wallMs() - start) / 1000);
}

/** Sends `rate`/s for `seconds` (each send stamped), waits for the handlers, returns p50/p99. */
async function measureWindow(ctx: Ctx, send: (sentAt: number) => Promise<void>, rate: number, seconds: number): Promise<LatencyWindow> {
  const total = Math.max(1, Math.round(rate * seconds));
  const start = wallMs();
  await ctx.agents.request('beginWindow', { since: start });
  const sends: Promise<void>[] = [];
  const stamps: number[] = [];
  let sent = 0;
  while (sent < total) {
    const due = Math.min(total, Math.floor(((wallMs() - start) / 1000) * rate) + 1);
    while (sent < due) {
      const sentAt = wallMs();
      stamps.push(sentAt);
      sends.push(send(sentAt));
      sent++;
    }
    if (sent < total) await sleep(Math.max(1, Math.min(20, 1000 / rate / 2)));
  }
  const failures = (await Promise.allSettled(sends)).filter((r) => r.status === 'rejected').length;
  if (failures) ctx.log(`latency: ${failures} sends failed`);
  const { handled } = await ctx.agents.request<{ handled: number }>('waitHandled', { target: total, deadline: Date.now() + DRAIN_MS }, DRAIN_MS + 30_000);
  const samples = await ctx.agents.request<[number, number][]>('takeLatencies');
  const cutoff = start + WARMUP * seconds * 1000;
  const counted = samples.filter(([sentAt]) => sentAt >= cutoff).map(([, ms]) => ms);
  const expected = stamps.filter((t) => t >= cutoff).length;
  while (counted.length < expected) counted.push(Number.POSITIVE_INFINITY);
  return { rate, sent: total, handled, p50: percentile(counted, 50), p99: percentile(counted, 99) };
}

async function natsFloor(ctx: Ctx, subjectPrefix: string, requests: number): Promise<{ p50: number; p99: number }> {
  const payload = JSON.stringify({ taskId: 'tsk_0123456789abcdef0123456789abcdef', projectId: 'bench', taskType: 'BENCH_NOOP', input: {}, attempt: 1, fencingToken: 1 });
  const subject = `${subjectPrefix}.bench.echo`;
  for (let i = 0; i < 50; i++) await ctx.infra.nc.request(subject, payload, { timeout: 2_000 });
  const rtts: number[] = [];
  for (let i = 0; i < requests; i++) {
    const t = wallMs();
    await ctx.infra.nc.request(subject, payload, { timeout: 2_000 });
    rtts.push(wallMs() - t);
  }
  return { p50: percentile(rtts, 50), p99: percentile(rtts, 99) };
}
