/**
 * Figures 1 and 2: throughput from the first event / add to the last durable completion,
 * the orchestrator against each peer (bench/e2e/peers/: BullMQ on Redis, on Redis with
 * `appendfsync always`, on PostgreSQL; graphile-worker; pg-boss).
 *
 * - flat: N independent tasks with random priorities (BENCH_FLAT events of eventSize
 *   tasks) against the same N jobs added in the same chunks, same priorities;
 * - deps (the report's `fanin`): `parents` parents each waiting on `children` children
 *   (BENCH_FANIN events of parentsPerEvent parents) against the same flows (BullMQ's
 *   FlowProducer.addBulk, pg-boss's flow()); a peer without dependencies has no round.
 *
 * Rounds rotate the order (round r starts with the r-th of orchestrator, peer 1, peer 2, …).
 * Every orchestrator round runs on a fresh environment (empty schema, Redis prefix, streams)
 * with a fresh orchestrator process, and stops at phaseLimitMs: then the rate is what
 * completed divided by the time taken, marked as capped. Every peer round has its own
 * queue, keys or schema, removed after it, and stops at bullLimitMs.
 */
import type { PeerName } from '../e2e/config.js';
import type { Ctx } from '../e2e/context.js';
import { CpuMeter, threadTicks, threadUsage, type CpuUsage } from '../e2e/cpu.js';
import { OrchestratorProc, StatusWatch } from '../e2e/context.js';
import type { BenchEnv } from '../e2e/infra.js';
import type { IoStats } from '../e2e/io-stats.js';
import type { PeerDriver } from '../e2e/peers/index.js';
import type { ProbeStats } from '../e2e/probe.js';
import { pairedRatios, percentile, sleep, summarize, wallMs, type Summary } from '../e2e/stats.js';
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
  /** Orchestrator: COMPLETED messages of a task already seen COMPLETED (not counted as completions). */
  repeatedCompleted?: number;
  /** Peers only: seconds the adds took. */
  addSeconds?: number;
  /** Peers counted in the database: COUNT queries made while the round ran. */
  countQueries?: number;
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

export type Side = Summary & { rounds: ThroughputSample[]; capped: number };

export interface ThroughputResult {
  kind: ThroughputKind;
  total: number;
  orchestrator: Side;
  /** Each peer's rounds and rates, in the order of BENCH_PEERS. */
  peers: Partial<Record<PeerName, Side>>;
  /** Peers without a round of this kind, and why. */
  unsupported: Partial<Record<PeerName, string>>;
  /** Peers whose round failed (the first error); they run no further rounds of this figure. */
  errors: Partial<Record<PeerName, string>>;
  /** Orchestrator ÷ peer, per round (the rounds are paired: the same round number), summarised. */
  ratio: Partial<Record<PeerName, Summary>>;
  /** The `bullmq-redis` peer (the JSON's field before the peers came). */
  bullmq?: Side;
  /**
   * Intake, per second: tasks written by the orchestrator (event published → rows
   * created, seen as `from: null` status messages) against jobs added by each peer.
   */
  ingest: { orchestrator: Summary; peers: Partial<Record<PeerName, Summary>>; ratio: Partial<Record<PeerName, Summary>> };
}

/** The fan-in figure as the JSON's `deps` had it before the peers: the orchestrator against `bullmq-redis`. */
export function legacyDeps(r: ThroughputResult): Record<string, unknown> {
  const strip = (x: Side | undefined): Summary | undefined => (x ? { median: x.median, min: x.min, max: x.max, samples: x.samples } : undefined);
  return {
    kind: r.kind,
    total: r.total,
    see: 'scenarios.fanin (every round, every peer)',
    orchestrator: strip(r.orchestrator),
    bullmq: strip(r.bullmq),
    ratio: r.ratio['bullmq-redis'],
    ingest: { orchestrator: r.ingest.orchestrator, bullmq: r.ingest.peers['bullmq-redis'], ratio: r.ingest.ratio['bullmq-redis'] },
  };
}

function side(samples: ThroughputSample[]): Side {
  return { ...summarize(samples.map((s) => s.rate)), rounds: samples, capped: samples.filter((s) => s.capped).length };
}

export async function runThroughput(ctx: Ctx, kind: ThroughputKind, drivers: ReadonlyMap<PeerName, PeerDriver>): Promise<ThroughputResult> {
  const unsupported: ThroughputResult['unsupported'] = {};
  const errors: ThroughputResult['errors'] = {};
  const peers = [...drivers.values()].filter((d) => {
    if (kind === 'deps' && d.noFanIn) unsupported[d.name] = d.noFanIn;
    return !(kind === 'deps' && d.noFanIn);
  });
  const sides: ('orchestrator' | PeerDriver)[] = ['orchestrator', ...peers];
  const orch: ThroughputSample[] = [];
  const bySide = new Map<PeerName, ThroughputSample[]>(peers.map((p) => [p.name, []]));
  for (let round = 0; round < ctx.config.rounds; round++) {
    const order = sides.map((_, i) => sides[(i + round) % sides.length]!);
    for (const one of order) {
      const name = one === 'orchestrator' ? one : one.name;
      if (one !== 'orchestrator' && errors[one.name]) continue;
      let sample: ThroughputSample;
      try {
        sample = one === 'orchestrator' ? await orchestratorRound(ctx, kind, round) : await peerRound(ctx, one, kind, round);
      } catch (err) {
        if (one === 'orchestrator') throw err;
        // One peer failing leaves the figure to the others.
        errors[one.name] = err instanceof Error ? err.message : String(err);
        ctx.log(`${kind} round ${round + 1}/${ctx.config.rounds} ${name}: FAILED ${err instanceof Error ? err.stack ?? err.message : String(err)}`);
        continue;
      }
      if (one === 'orchestrator') orch.push(sample);
      else bySide.get(one.name)!.push(sample);
      const extra =
        sample.readied === undefined ? '' : `; READY ${sample.readied} (last at ${sample.readySeconds?.toFixed(1)} s), dispatched ${sample.dispatched}`;
      ctx.log(
        `${kind} round ${round + 1}/${ctx.config.rounds} ${name}: ${sample.completed}/${sample.total} completed in ${sample.seconds.toFixed(1)} s = ` +
          `${sample.rate.toFixed(1)}/s${sample.capped ? ' (capped)' : ''}${extra}`,
      );
    }
  }
  const total = orch[0]?.total ?? [...bySide.values()][0]?.[0]?.total ?? 0;
  const orchIngest = orch.map((s) => (s.created ?? 0) / (s.createdSeconds ?? Number.NaN));
  const orchRates = orch.map((s) => s.rate);
  const result: ThroughputResult = {
    kind,
    total,
    orchestrator: side(orch),
    peers: {},
    unsupported,
    errors,
    ratio: {},
    ingest: { orchestrator: summarize(orchIngest), peers: {}, ratio: {} },
  };
  for (const [name, samples] of bySide) {
    if (!samples.length) continue;
    const intake = samples.map((s) => s.total / (s.addSeconds ?? Number.NaN));
    result.peers[name] = side(samples);
    result.ratio[name] = pairedRatios(orchRates, samples.map((s) => s.rate));
    result.ingest.peers[name] = summarize(intake);
    result.ingest.ratio[name] = pairedRatios(orchIngest, intake);
  }
  if (result.peers['bullmq-redis']) result.bullmq = result.peers['bullmq-redis'];
  return result;
}

/**
 * One orchestrator round on a fresh environment. `side` (bench/ab.ts): a label for the
 * environment and the process, and another checkout whose orchestrator runs (its src/).
 */
export async function orchestratorRound(
  ctx: Ctx,
  kind: ThroughputKind,
  round: number,
  side: { label: string; srcRoot?: string; nodeArgs?: readonly string[] } = { label: '' },
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
    ({ proc: orchestrator } = await OrchestratorProc.start(ctx, env, `${side.label ? `${side.label}-` : ''}${kind}-${round}`, undefined, side.srcRoot, side.nodeArgs));
    await ctx.agents.request('startNats', { subjectPrefix: env.subjectPrefix, concurrency: c.agentConcurrency });
    agentsUp = true;
    watch = new StatusWatch(ctx.infra.nc, env.subjectPrefix);
    watch.recordTasks = c.probe && kind === 'deps';
    await watch.ready();
    await ctx.infra.publishEvent(env, projectId, 'PROJECT_CREATED', `${env.id}_created`, { title: `bench ${kind}` });
    await ctx.infra.waitForProject(env, projectId);
    await warmUp(ctx, env, kind, watch);
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
    const statusCounts = await ctx.infra.countByStatus(env, projectId);
    if (done && (statusCounts.COMPLETED ?? 0) !== completed) {
      ctx.log(`${kind} ${round}: the status subject showed ${completed} COMPLETED, PostgreSQL has ${statusCounts.COMPLETED ?? 0}`);
    }
    if (w.repeatedCompleted) ctx.log(`${kind} ${round}: ${w.repeatedCompleted} COMPLETED status messages repeated a task's (not counted)`);
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
      ...(w.repeatedCompleted ? { repeatedCompleted: w.repeatedCompleted } : {}),
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

/**
 * The warm-up of a fresh orchestrator process (BENCH_WARMUP_TASKS): the same kind of work,
 * smaller, in a project of its own, run to its last completion before the measured window;
 * then the watcher forgets it.
 */
async function warmUp(ctx: Ctx, env: BenchEnv, kind: ThroughputKind, watch: StatusWatch): Promise<void> {
  const c = ctx.config;
  if (c.warmupTasks <= 0) return;
  const projectId = `bench_${kind}_warmup`;
  const work =
    kind === 'flat'
      ? { type: 'BENCH_FLAT', ...flatWork(c.warmupTasks, c.eventSize, c.priorityLevels, c.seed - 1) }
      : { type: 'BENCH_FANIN', ...fanInWork(Math.max(1, Math.round(c.warmupTasks / (c.children + 1))), c.children, c.parentsPerEvent, 'unused') };
  await ctx.infra.publishEvent(env, projectId, 'PROJECT_CREATED', `${env.id}_warmup_created`, { title: `bench ${kind} warm-up` });
  await ctx.infra.waitForProject(env, projectId);
  for (const [i, payload] of work.events.entries()) await ctx.infra.publishEvent(env, projectId, work.type, `${env.id}_w${i}`, payload);
  const done = await watch.until(() => watch.completed >= work.total, Date.now() + c.phaseLimitMs);
  if (!done) ctx.log(`${kind}: warm-up of ${work.total} tasks not done in ${c.phaseLimitMs / 1000} s (${watch.completed} completed); measuring all the same`);
  watch.reset();
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

/** How often a peer counted in the database is asked how many of its jobs completed. */
const COUNT_INTERVAL_MS = 50;

/**
 * One round of a peer: its producer here, its worker in the agents process. The clock
 * runs from the first add to the last completion the worker saw (BullMQ: durable when
 * seen), or, for the peers whose worker reports a job done before it is durable, to the
 * first COUNT (one every 50 ms) that finds every job's completion committed.
 */
async function peerRound(ctx: Ctx, driver: PeerDriver, kind: ThroughputKind, round: number): Promise<ThroughputSample> {
  const c = ctx.config;
  const r = await driver.open(kind, round);
  let workerUp = false;
  try {
    await ctx.agents.request('startPeer', r.worker, 120_000);
    workerUp = true;
    await ctx.cpu?.refresh();
    const cpuBefore = ctx.cpu?.read();
    const t0 = wallMs();
    const deadline = Date.now() + c.bullLimitMs;
    const counting = r.countDurable ? countUntil(r.countDurable, r.total, deadline) : null;
    let addError: unknown = null;
    try {
      for (let i = 0; i < r.chunks; i++) await r.add(i);
    } catch (err) {
      addError = err;
    }
    const added = wallMs();
    let completed: number;
    let end: number;
    let countQueries: number | undefined;
    if (counting) {
      if (addError) counting.stop();
      const seen = await counting.done;
      ({ completed, countQueries } = seen);
      end = seen.at;
    } else {
      const w = addError
        ? { completed: 0, lastCompletedAt: 0 }
        : await ctx.agents.request<{ completed: number; lastCompletedAt: number }>('waitPeer', { target: r.total, deadline }, c.bullLimitMs + 30_000);
      completed = w.completed;
      end = w.completed >= r.total ? w.lastCompletedAt : wallMs();
    }
    if (addError) throw addError;
    await ctx.cpu?.refresh();
    const cpuAfter = ctx.cpu?.read();
    const cpu = cpuBefore && cpuAfter ? CpuMeter.usage(cpuBefore, cpuAfter) : undefined;
    const otherCpu = cpuBefore && cpuAfter && cpu ? CpuMeter.other(cpuBefore, cpuAfter, cpu) : null;
    const done = completed >= r.total;
    const seconds = (end - t0) / 1000;
    return {
      rate: completed / seconds,
      total: r.total,
      completed,
      seconds,
      capped: !done,
      addSeconds: (added - t0) / 1000,
      ...(countQueries !== undefined ? { countQueries } : {}),
      ...(cpu ? { cpu } : {}),
      ...(otherCpu !== null ? { otherCpu } : {}),
    };
  } finally {
    if (workerUp) await ctx.agents.request('stopPeer', undefined, 60_000).catch((err: unknown) => ctx.log(`${driver.name}: worker stop: ${String(err)}`));
    await r.close();
  }
}

/** Counts durable completions every COUNT_INTERVAL_MS until `total` (the time of that count) or `deadline`. */
function countUntil(
  count: () => Promise<number>,
  total: number,
  deadline: number,
): { done: Promise<{ completed: number; at: number; countQueries: number }>; stop(): void } {
  let stopped = false;
  const done = (async () => {
    let completed = 0;
    let countQueries = 0;
    for (;;) {
      const started = wallMs();
      completed = await count();
      countQueries++;
      const at = wallMs();
      if (completed >= total || stopped || Date.now() >= deadline) return { completed, at, countQueries };
      const wait = COUNT_INTERVAL_MS - (at - started);
      if (wait > 0) await sleep(wait);
    }
  })();
  return { done, stop: () => void (stopped = true) };
}
