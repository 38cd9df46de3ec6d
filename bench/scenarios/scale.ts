/**
 * Figure 4a: the dispatch rate with a small and with a huge READY backlog.
 *
 * One orchestrator (and the no-op agent) runs on a fresh environment, with
 * MAX_CONCURRENT_TASKS = the workers' concurrency (50), so the dispatches of a window are
 * paced by completions over many passes. `scaleBig` READY
 * tasks are seeded in PostgreSQL and ZADDed (queue-put.lua's scores) into an aside key,
 * and per round `scaleSmall` fresh READY tasks into another aside key. A window RENAMEs
 * one aside key over the live queue (O(1)), times the READY → RUNNING transitions seen on
 * the status subject — rate = (n − 1) / (last − first), at most scaleDispatches + 1 of
 * them or scaleWindowMs — and RENAMEs the rest back. Small and big windows alternate;
 * PostgreSQL holds the same rows in both, so only the queue's size differs.
 *
 * The big backlog is spread over projects of scaleSmall tasks each (contiguous blocks in
 * dispatch order), so that per-project work (the budget forecast aggregates a project's
 * tasks) is the same in both windows; BENCH_SCALE_PER_PROJECT=1000000 puts it all in one
 * project instead. Seeded tasks share one priority: ZPOPMIN is O(log n) whatever the
 * scores, and a single priority keeps the dispatch order within a project block.
 */
import type { Ctx } from '../e2e/context.js';
import { OrchestratorProc, StatusWatch } from '../e2e/context.js';
import { seedQueue, seedTasks } from '../e2e/seed.js';
import { pairedRatios, sleep, summarize, type Summary } from '../e2e/stats.js';

export interface ScaleWindow {
  queued: number;
  dispatched: number;
  rate: number;
  /** SQL statements and SQL wait (ms) of the orchestrator per dispatch in the window, and the 3 costliest. */
  sql?: { perDispatch: number; msPerDispatch: number; top: [string, number][] };
}

export interface ScaleResult {
  small: Summary & { queued: number; windows: ScaleWindow[] };
  big: Summary & { queued: number; windows: ScaleWindow[] };
  /** big ÷ small, per round: 1 means the pop does not get slower with the queue. */
  ratio: Summary;
  seeding: { rows: number; sqlSeconds: number; zaddSeconds: number };
}

export async function runScale(ctx: Ctx): Promise<ScaleResult> {
  const c = ctx.config;
  const env = ctx.infra.newEnv('scale');
  const projectId = 'bench_scale';
  const bigKey = `${env.queueKey}:aside:big`;
  const smallKey = `${env.queueKey}:aside:small`;
  let orchestrator: OrchestratorProc | null = null;
  let watch: StatusWatch | null = null;
  let natsUp = false;
  try {
    // MAX_CONCURRENT_TASKS at the workers' concurrency: dispatches are paced by completions,
    // pass after pass, so the window times many pops, not one batch popped at once.
    ({ proc: orchestrator } = await OrchestratorProc.start(ctx, env, 'scale', c.concurrency));
    await ctx.agents.request('startNats', { subjectPrefix: env.subjectPrefix, concurrency: c.agentConcurrency });
    natsUp = true;
    watch = new StatusWatch(ctx.infra.nc, env.subjectPrefix);
    await watch.ready();
    await ctx.infra.publishEvent(env, projectId, 'PROJECT_CREATED', `${env.id}_created`, { title: 'bench scale' });
    await ctx.infra.waitForProject(env, projectId);

    const sqlSeconds = await seedTasks(ctx.infra, env, {
      idPrefix: 'big_',
      count: c.scaleBig,
      status: 'READY',
      projectId: 'bench_big_',
      perProject: c.scalePerProject,
      levels: 1,
    });
    const zaddSeconds = await seedQueue(ctx.infra, bigKey, { idPrefix: 'big_', count: c.scaleBig, levels: 1 });
    ctx.log(`scale: seeded ${c.scaleBig} READY tasks: SQL ${sqlSeconds.toFixed(1)} s, ZADD ${zaddSeconds.toFixed(1)} s`);

    const small: ScaleWindow[] = [];
    const big: ScaleWindow[] = [];
    for (let round = 0; round < c.scaleRounds; round++) {
      const prefix = `small${round}_`;
      await seedTasks(ctx.infra, env, { idPrefix: prefix, count: c.scaleSmall, status: 'READY', projectId: `bench_${prefix}`, perProject: c.scaleSmall, levels: 1 });
      await ctx.infra.redis.unlink(smallKey);
      await seedQueue(ctx.infra, smallKey, { idPrefix: prefix, count: c.scaleSmall, levels: 1 });
      const order = round % 2 === 0 ? ([['small', smallKey], ['big', bigKey]] as const) : ([['big', bigKey], ['small', smallKey]] as const);
      for (const [name, key] of order) {
        const w = await dispatchWindow(ctx, orchestrator, watch, env.queueKey, key);
        (name === 'small' ? small : big).push(w);
        ctx.log(`scale round ${round + 1}/${c.scaleRounds} ${name} (${w.queued} queued): ${w.dispatched} dispatches at ${w.rate.toFixed(1)}/s`);
      }
    }
    const rates = (ws: ScaleWindow[]): number[] => ws.map((w) => w.rate);
    return {
      small: { ...summarize(rates(small)), queued: c.scaleSmall, windows: small },
      big: { ...summarize(rates(big)), queued: c.scaleBig, windows: big },
      ratio: pairedRatios(rates(big), rates(small)),
      seeding: { rows: c.scaleBig, sqlSeconds, zaddSeconds },
    };
  } finally {
    watch?.close();
    if (orchestrator) await orchestrator.stop();
    if (natsUp) await ctx.agents.request('stopNats');
    await ctx.infra.dropEnv(env);
  }
}

async function dispatchWindow(ctx: Ctx, orchestrator: OrchestratorProc, watch: StatusWatch, queueKey: string, asideKey: string): Promise<ScaleWindow> {
  const c = ctx.config;
  // Let the previous window's tasks finish, so each window starts with free slots.
  await watch.until(() => watch.completed >= watch.dispatched, Date.now() + 10_000);
  const queued = await ctx.infra.redis.zcard(asideKey);
  if (c.ioStats) await orchestrator.io(); // reset
  watch.dispatchTimes = [];
  watch.recordDispatches = true;
  await ctx.infra.redis.rename(asideKey, queueKey);
  const started = Date.now();
  // The first dispatch comes with the scheduler's next tick (≤ SCHEDULER_INTERVAL).
  await watch.until(() => watch.dispatchTimes.length > 0, started + 5_000);
  const first = Date.now();
  await watch.until(() => watch.dispatchTimes.length > c.scaleDispatches, first + c.scaleWindowMs);
  watch.recordDispatches = false;
  try {
    await ctx.infra.redis.rename(queueKey, asideKey);
  } catch {
    // the window emptied the queue
  }
  await sleep(100);
  const t = watch.dispatchTimes;
  const n = Math.min(t.length, c.scaleDispatches + 1);
  const rate = n >= 2 ? ((n - 1) * 1000) / (t[n - 1]! - t[0]!) : Number.NaN;
  if (!c.ioStats || n === 0) return { queued, dispatched: n, rate };
  const io = await orchestrator.io();
  const entries = Object.entries(io.sql);
  const count = entries.reduce((sum, [, v]) => sum + v.count, 0);
  const ms = entries.reduce((sum, [, v]) => sum + v.ms, 0);
  const top = entries.sort((a, b) => b[1].ms - a[1].ms).slice(0, 3).map(([k, v]): [string, number] => [k, Number((v.ms / t.length).toFixed(2))]);
  return { queued, dispatched: n, rate, sql: { perDispatch: count / t.length, msPerDispatch: ms / t.length, top } };
}
