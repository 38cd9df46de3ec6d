/**
 * Figures 1 and 2: throughput from the first event / add to the last COMPLETED / completed.
 *
 * - flat: N independent tasks with random priorities (BENCH_FLAT events of eventSize
 *   tasks) against BullMQ addBulk of the same N jobs, same priorities, same chunks;
 * - deps: `parents` parents each waiting on `children` children (BENCH_FANIN events of
 *   parentsPerEvent parents) against FlowProducer.addBulk of the same flows.
 *
 * Rounds alternate the order (orchestrator first, then BullMQ first, …). Every
 * orchestrator round runs on a fresh environment (empty schema, Redis prefix, streams)
 * with a fresh orchestrator process, and stops at phaseLimitMs: then the rate is what
 * completed divided by the time taken, marked as capped.
 */
import { FlowProducer, Queue } from 'bullmq';
import type { Ctx } from '../e2e/context.js';
import { CpuMeter, threadTicks, threadUsage, type CpuUsage } from '../e2e/cpu.js';
import { OrchestratorProc, StatusWatch } from '../e2e/context.js';
import { redisOptions } from '../e2e/infra.js';
import type { IoStats } from '../e2e/io-stats.js';
import type { ProbeStats } from '../e2e/probe.js';
import { pairedRatios, percentile, summarize, wallMs, type Summary } from '../e2e/stats.js';
import { fanInWork, flatWork } from '../e2e/workload.js';

export type ThroughputKind = 'flat' | 'deps';

export interface ThroughputSample {
  /** Tasks (jobs) per second, first publish / add → last COMPLETED / completed. */
  rate: number;
  total: number;
  completed: number;
  seconds: number;
  capped: boolean;
  /** Orchestrator only: seconds from the first publish to the last publish acknowledged, the first dispatch, the last task READY. */
  publishSeconds?: number;
  firstDispatchSeconds?: number;
  /** Tasks that became READY, and when the last did (all events ingested and their tasks promoted). */
  readied?: number;
  readySeconds?: number;
  dispatched?: number;
  /** Tasks created (written with their event), and when the last was. */
  created?: number;
  createdSeconds?: number;
  /** Status messages seen: durable transitions, creation included. */
  transitions?: number;
  /** BullMQ only: seconds the adds took. */
  addSeconds?: number;
  statusCounts?: Record<string, number>;
  io?: IoStats;
  /** BENCH_PROBE: hot-path counters of the orchestrator process. */
  probe?: ProbeStats;
  /** BENCH_PROBE, fan-in: ms from a parent's last child COMPLETED to the parent READY, and from READY to RUNNING (status arrivals). */
  delays?: { parents: number; promote: DelaySummary; dispatch: DelaySummary; childDispatch: DelaySummary };
  /** CPU seconds per process group over the measured window (Linux). */
  cpu?: CpuUsage;
  /** CPU seconds the rest of the machine (other jobs, other clients' backends) spent in the window. */
  otherCpu?: number;
  /** CPU seconds of the orchestrator process per thread (main: the JS thread; V8Worker: GC and compiler helpers; …). */
  orchestratorThreads?: Record<string, number>;
  gracefulStop?: boolean;
}

export interface DelaySummary {
  n: number;
  p50: number;
  p90: number;
  p99: number;
  max: number;
  mean: number;
}

function delaySummary(values: number[]): DelaySummary {
  const mean = values.length ? values.reduce((a, b) => a + b, 0) / values.length : Number.NaN;
  return { n: values.length, p50: percentile(values, 50), p90: percentile(values, 90), p99: percentile(values, 99), max: values.length ? Math.max(...values) : Number.NaN, mean };
}

export interface ThroughputResult {
  kind: ThroughputKind;
  total: number;
  orchestrator: Summary & { rounds: ThroughputSample[]; capped: number };
  bullmq: Summary & { rounds: ThroughputSample[]; capped: number };
  /** orchestrator ÷ BullMQ, per round. */
  ratio: Summary;
  /**
   * Intake, per second: tasks written by the orchestrator (event published → rows
   * created, seen as `from: null` status messages) against jobs added by addBulk.
   */
  ingest: { orchestrator: Summary; bullmq: Summary; ratio: Summary };
}

export async function runThroughput(ctx: Ctx, kind: ThroughputKind): Promise<ThroughputResult> {
  const orch: ThroughputSample[] = [];
  const bull: ThroughputSample[] = [];
  for (let round = 0; round < ctx.config.rounds; round++) {
    const order = round % 2 === 0 ? (['orchestrator', 'bullmq'] as const) : (['bullmq', 'orchestrator'] as const);
    for (const side of order) {
      const sample = side === 'orchestrator' ? await orchestratorRound(ctx, kind, round) : await bullRound(ctx, kind, round);
      (side === 'orchestrator' ? orch : bull).push(sample);
      const extra =
        sample.readied === undefined ? '' : `; READY ${sample.readied} (last at ${sample.readySeconds?.toFixed(1)} s), dispatched ${sample.dispatched}`;
      ctx.log(
        `${kind} round ${round + 1}/${ctx.config.rounds} ${side}: ${sample.completed}/${sample.total} completed in ${sample.seconds.toFixed(1)} s = ` +
          `${sample.rate.toFixed(1)}/s${sample.capped ? ' (capped)' : ''}${extra}`,
      );
    }
  }
  const total = orch[0]?.total ?? bull[0]?.total ?? 0;
  const orchIngest = orch.map((s) => (s.created ?? 0) / (s.createdSeconds ?? Number.NaN));
  const bullIngest = bull.map((s) => s.total / (s.addSeconds ?? Number.NaN));
  return {
    ingest: { orchestrator: summarize(orchIngest), bullmq: summarize(bullIngest), ratio: pairedRatios(orchIngest, bullIngest) },
    kind,
    total,
    orchestrator: { ...summarize(orch.map((s) => s.rate)), rounds: orch, capped: orch.filter((s) => s.capped).length },
    bullmq: { ...summarize(bull.map((s) => s.rate)), rounds: bull, capped: bull.filter((s) => s.capped).length },
    ratio: pairedRatios(orch.map((s) => s.rate), bull.map((s) => s.rate)),
  };
}

/**
 * One orchestrator round on a fresh environment. `side` (bench/ab.ts): a label for the
 * environment and the process, and another checkout whose orchestrator runs (its src/).
 */
export async function orchestratorRound(
  ctx: Ctx,
  kind: ThroughputKind,
  round: number,
  side: { label: string; srcRoot?: string } = { label: '' },
): Promise<ThroughputSample> {
  const c = ctx.config;
  const env = ctx.infra.newEnv(`${side.label}${kind}${round}`);
  const projectId = `bench_${kind}`;
  const work =
    kind === 'flat'
      ? { type: 'BENCH_FLAT', ...flatWork(c.n, c.eventSize, c.priorityLevels, c.seed + round) }
      : { type: 'BENCH_FANIN', ...fanInWork(c.parents, c.children, c.parentsPerEvent, 'unused') };
  let orchestrator: OrchestratorProc | null = null;
  let watch: StatusWatch | null = null;
  let agentsUp = false;
  try {
    ({ proc: orchestrator } = await OrchestratorProc.start(ctx, env, `${side.label ? `${side.label}-` : ''}${kind}-${round}`, undefined, side.srcRoot));
    await ctx.agents.request('startNats', { subjectPrefix: env.subjectPrefix, concurrency: c.agentConcurrency });
    agentsUp = true;
    watch = new StatusWatch(ctx.infra.nc, env.subjectPrefix);
    watch.recordTasks = c.probe && kind === 'deps';
    await watch.ready();
    await ctx.infra.publishEvent(env, projectId, 'PROJECT_CREATED', `${env.id}_created`, { title: `bench ${kind}` });
    await ctx.infra.waitForProject(env, projectId);
    if (c.ioStats) await orchestrator.io(); // reset: count only the measured work
    if (c.probe) await orchestrator.probe();

    await ctx.cpu?.refresh();
    await orchestrator.mark('start');
    const threadsBefore = ctx.cpu && orchestrator.child.pid ? threadTicks(orchestrator.child.pid) : null;
    const cpuBefore = ctx.cpu?.read(orchestrator.child.pid);
    const t0 = wallMs();
    const deadline = Date.now() + c.phaseLimitMs;
    for (const [i, payload] of work.events.entries()) {
      await ctx.infra.publishEvent(env, projectId, work.type, `${env.id}_e${i}`, payload);
    }
    const published = wallMs();
    const w = watch;
    const done = await w.until(() => w.completed >= work.total, deadline);
    const end = done ? w.lastCompletedAt : wallMs();
    await orchestrator.mark('end');
    const orchestratorThreads = threadsBefore && orchestrator.child.pid ? threadUsage(threadsBefore, threadTicks(orchestrator.child.pid)) : undefined;
    await ctx.cpu?.refresh();
    const cpuAfter = ctx.cpu?.read(orchestrator.child.pid);
    const cpu = cpuBefore && cpuAfter ? CpuMeter.usage(cpuBefore, cpuAfter) : undefined;
    const otherCpu = cpuBefore && cpuAfter && cpu ? CpuMeter.other(cpuBefore, cpuAfter, cpu) : null;
    const completed = w.completed;
    const io = c.ioStats ? await orchestrator.io() : undefined;
    const probe = c.probe ? (await orchestrator.probe()).stats : undefined;
    const delays = watch.recordTasks ? await promotionDelays(ctx, env.schema, w) : undefined;
    const statusCounts = await ctx.infra.countByStatus(env);
    if (done && (statusCounts.COMPLETED ?? 0) !== completed) {
      ctx.log(`${kind} ${round}: the status subject showed ${completed} COMPLETED, PostgreSQL has ${statusCounts.COMPLETED ?? 0}`);
    }
    const seconds = (end - t0) / 1000;
    return {
      rate: completed / seconds,
      total: work.total,
      completed,
      seconds,
      capped: !done,
      publishSeconds: (published - t0) / 1000,
      firstDispatchSeconds: w.firstDispatchAt ? (w.firstDispatchAt - t0) / 1000 : Number.NaN,
      readied: w.readied,
      readySeconds: w.lastReadyAt ? (w.lastReadyAt - t0) / 1000 : Number.NaN,
      dispatched: w.dispatched,
      created: w.created,
      createdSeconds: w.lastCreatedAt ? (w.lastCreatedAt - t0) / 1000 : Number.NaN,
      transitions: w.transitions,
      statusCounts,
      ...(io ? { io } : {}),
      ...(probe ? { probe } : {}),
      ...(delays ? { delays } : {}),
      ...(cpu ? { cpu } : {}),
      ...(otherCpu !== null ? { otherCpu } : {}),
      ...(orchestratorThreads ? { orchestratorThreads } : {}),
    };
  } finally {
    watch?.close();
    const stopped = orchestrator ? await orchestrator.stop() : { graceful: true };
    if (!stopped.graceful) ctx.log(`orchestrator ${orchestrator?.label ?? kind} did not stop in time: killed`);
    if (agentsUp) await ctx.agents.request('stopNats');
    await ctx.infra.dropEnv(env);
  }
}

/** Each parent's promotion delay (its last child COMPLETED → READY) and dispatch delay (READY → RUNNING), from the status arrivals. */
async function promotionDelays(ctx: Ctx, schema: string, w: StatusWatch): Promise<NonNullable<ThroughputSample['delays']>> {
  const { rows } = await ctx.infra.pg.query<{ task_id: string; dependencies: string[] }>(
    `SELECT task_id, dependencies FROM ${schema}.tasks WHERE jsonb_array_length(dependencies) > 0`,
  );
  const promote: number[] = [];
  const dispatch: number[] = [];
  const childDispatch: number[] = [];
  const children = new Set<string>();
  for (const r of rows) {
    const parent = w.tasks.get(r.task_id);
    const done = r.dependencies.map((d) => w.tasks.get(d)?.completed);
    for (const d of r.dependencies) children.add(d);
    if (!parent?.ready || done.some((t) => t === undefined)) continue; // a status message lost (core NATS)
    promote.push(parent.ready - Math.max(...(done as number[])));
    if (parent.running) dispatch.push(parent.running - parent.ready);
  }
  for (const id of children) {
    const t = w.tasks.get(id);
    const since = t?.ready ?? t?.created;
    if (t?.running && since) childDispatch.push(t.running - since);
  }
  return { parents: rows.length, promote: delaySummary(promote), dispatch: delaySummary(dispatch), childDispatch: delaySummary(childDispatch) };
}

async function bullRound(ctx: Ctx, kind: ThroughputKind, round: number): Promise<ThroughputSample> {
  const c = ctx.config;
  const queueName = `${kind}_${round}`;
  const prefix = ctx.infra.bullPrefix;
  const connection = redisOptions(c.redisUrl);
  const flat = kind === 'flat' ? flatWork(c.n, c.eventSize, c.priorityLevels, c.seed + round) : null;
  const fanIn = kind === 'deps' ? fanInWork(c.parents, c.children, c.parentsPerEvent, queueName) : null;
  const total = flat?.total ?? fanIn!.total;
  const queue = new Queue(queueName, { connection, prefix });
  const flows = fanIn ? new FlowProducer({ connection, prefix }) : null;
  let workerUp = false;
  try {
    await queue.waitUntilReady();
    await flows?.waitUntilReady();
    await ctx.agents.request('startBull', { queueName, prefix, concurrency: c.concurrency });
    workerUp = true;
    await ctx.cpu?.refresh();
    const cpuBefore = ctx.cpu?.read();
    const t0 = wallMs();
    const deadline = Date.now() + c.bullLimitMs;
    if (flat) for (const bulk of flat.jobs) await queue.addBulk(bulk);
    else for (const bulk of fanIn!.flows) await flows!.addBulk(bulk);
    const added = wallMs();
    const r = await ctx.agents.request<{ completed: number; lastCompletedAt: number }>(
      'waitBull',
      { target: total, deadline },
      c.bullLimitMs + 30_000,
    );
    await ctx.cpu?.refresh();
    const cpuAfter = ctx.cpu?.read();
    const cpu = cpuBefore && cpuAfter ? CpuMeter.usage(cpuBefore, cpuAfter) : undefined;
    const otherCpu = cpuBefore && cpuAfter && cpu ? CpuMeter.other(cpuBefore, cpuAfter, cpu) : null;
    const done = r.completed >= total;
    const seconds = ((done ? r.lastCompletedAt : wallMs()) - t0) / 1000;
    return {
      rate: r.completed / seconds,
      total,
      completed: r.completed,
      seconds,
      capped: !done,
      addSeconds: (added - t0) / 1000,
      ...(cpu ? { cpu } : {}),
      ...(otherCpu !== null ? { otherCpu } : {}),
    };
  } finally {
    if (workerUp) await ctx.agents.request('stopBull');
    await flows?.close();
    await queue.close();
    await ctx.infra.deleteRedisKeys(`${prefix}:${queueName}:*`);
  }
}
