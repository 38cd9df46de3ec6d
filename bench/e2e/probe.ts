/**
 * BENCH_PROBE=1: counters on the orchestrator's hot path, by wrapping class prototypes
 * of the checkout the process runs (bench code only; src is untouched): calls, items,
 * wall time and — for the per-project reactions — how long each waited for its turn.
 * Every method is optional: a revision that lacks one (the A side of bench/ab.ts) reports
 * what it has. The modules are imported by the same URL the orchestrator's own imports
 * resolve to, so the wrapped classes are the ones it uses.
 */
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { pathToFileURL } from 'node:url';

export interface ProbeCounter {
  calls: number;
  /** Items handed in (batch sizes summed), where the method takes a list. */
  items: number;
  /** What it returned, summed, where that is a count. */
  out: number;
  /** Wall ms from call to settle, summed (concurrent calls overlap). */
  ms: number;
  maxMs: number;
  /** Per-project reactions only: ms from `run()` to the reaction starting (its turn), summed and max. */
  waitMs?: number;
  maxWaitMs?: number;
}

export type ProbeStats = Record<string, ProbeCounter>;

const stats = new Map<string, ProbeCounter>();

function counter(name: string): ProbeCounter {
  let c = stats.get(name);
  if (!c) stats.set(name, (c = { calls: 0, items: 0, out: 0, ms: 0, maxMs: 0 }));
  return c;
}

function itemsOf(arg: unknown): number {
  return Array.isArray(arg) ? arg.length : 0;
}

function outOf(value: unknown): number {
  if (typeof value === 'number') return value;
  if (Array.isArray(value)) return value.length;
  if (value instanceof Map) return value.size;
  return 0;
}

type Proto = Record<string, (...args: unknown[]) => unknown>;

/** Wraps `cls.prototype[method]`: calls, items (first argument's length), result count, wall time. */
function wrap(cls: unknown, method: string, name: string, items: (args: unknown[]) => number = (a) => itemsOf(a[0])): boolean {
  const proto = (cls as { prototype?: Proto } | undefined)?.prototype;
  const original = proto?.[method];
  if (!proto || typeof original !== 'function') return false;
  proto[method] = function (this: unknown, ...args: unknown[]): unknown {
    const c = counter(name);
    c.calls++;
    c.items += items(args);
    const start = performance.now();
    const done = (value: unknown): void => {
      const ms = performance.now() - start;
      c.ms += ms;
      c.maxMs = Math.max(c.maxMs, ms);
      c.out += outOf(value);
    };
    const result = original.apply(this, args);
    if (result && typeof (result as Promise<unknown>).then === 'function') {
      (result as Promise<unknown>).then(done, () => done(undefined));
    } else done(result);
    return result;
  };
  return true;
}

async function load(root: string, file: string): Promise<Record<string, unknown> | null> {
  try {
    return (await import(pathToFileURL(join(root, 'src', file)).href)) as Record<string, unknown>;
  } catch {
    return null;
  }
}

/** Installs the probes on the checkout at `root` (its src/); returns the names wrapped. */
export async function installProbe(root: string): Promise<string[]> {
  const wrapped: string[] = [];
  const add = (ok: boolean, name: string): void => {
    if (ok) wrapped.push(name);
  };
  const batch = await load(root, 'orchestrator/batch-flow.ts');
  add(wrap(batch?.BatchFlow, 'completeMany', 'results.completeMany'), 'results.completeMany');
  add(wrap(batch?.BatchFlow, 'pushDependents', 'results.pushDependents'), 'results.pushDependents');
  add(wrap(batch?.BatchFlow, 'promoteMany', 'promoteMany'), 'promoteMany');
  const ingest = await load(root, 'orchestrator/ingest.ts');
  add(wrap(ingest?.Ingest, 'ingest', 'ingest (to the commit)', (a) => itemsOf(a[1])), 'ingest');
  add(wrap(ingest?.Ingest, 'afterCreated', 'ingest.afterCreated', (a) => itemsOf(a[1])), 'ingest.afterCreated');
  // Dispatch: B's one home, or A's scheduler and DirectDispatch.
  const dispatcher = await load(root, 'dispatch/dispatcher.ts');
  add(wrap(dispatcher?.Dispatcher, 'pass', 'dispatch.pass'), 'dispatch.pass');
  add(wrap(dispatcher?.Dispatcher, 'batch', 'dispatch.batch'), 'dispatch.batch');
  add(wrap(dispatcher?.Dispatcher, 'launch', 'dispatch.launch (extendMany + publishes)'), 'dispatch.launch');
  add(wrap(dispatcher?.Dispatcher, 'claim', 'dispatch.claim (at creation)'), 'dispatch.claim');
  add(wrap(dispatcher?.Dispatcher, 'reconcile', 'dispatch.reconcile'), 'dispatch.reconcile');
  const claimProto = (dispatcher?.Dispatcher as { prototype?: Proto } | undefined)?.prototype;
  if (claimProto?.claim) {
    // Why dispatch at creation said no before trying: the queue may hold tasks, or a pass holds popped ids.
    const claim = claimProto.claim;
    claimProto.claim = function (this: { queue?: { maybeWaiting?: boolean }; inHand?: number }, ...args: unknown[]): unknown {
      if (itemsOf(args[0]) > 0) {
        if (this.queue?.maybeWaiting) counter('dispatch.claim refused: queue maybe waiting').calls++;
        else if ((this.inHand ?? 0) > 0) counter('dispatch.claim refused: a pass holds popped ids').calls++;
      }
      return claim.apply(this, args);
    };
  }
  const scheduler = await load(root, 'orchestrator/scheduler.ts');
  add(wrap(scheduler?.TaskScheduler, 'dispatchReady', 'dispatch.pass'), 'scheduler.dispatchReady');
  add(wrap(scheduler?.TaskScheduler, 'dispatchBatch', 'dispatch.batch', (a) => itemsOf(a[0])), 'scheduler.dispatchBatch');
  add(wrap(scheduler?.TaskScheduler, 'runTick', 'scheduler.tick'), 'scheduler.runTick');
  const direct = await load(root, 'orchestrator/direct-dispatch.ts');
  add(wrap(direct?.DirectDispatch, 'claim', 'dispatch.claim (at creation)'), 'direct.claim');
  const directProto = (direct?.DirectDispatch as { prototype?: Proto } | undefined)?.prototype;
  if (directProto?.claim) {
    const claim = directProto.claim;
    directProto.claim = function (this: { queue?: { maybeWaiting?: boolean } }, ...args: unknown[]): unknown {
      if (itemsOf(args[0]) > 0 && this.queue?.maybeWaiting) counter('dispatch.claim refused: queue maybe waiting').calls++;
      return claim.apply(this, args);
    };
  }
  const orch = await load(root, 'orchestrator/orchestrator.ts');
  add(wrap(orch?.Orchestrator, 'sweepReactions', 'sweepReactions'), 'sweepReactions');
  const locks = await load(root, 'adapters/redis/lock-manager.ts');
  add(wrap(locks?.RedisLockManager, 'extendMany', 'redis.extendMany'), 'redis.extendMany');
  add(wrap(locks?.RedisLockManager, 'acquireMany', 'redis.acquireMany'), 'redis.acquireMany');
  add(wrap(locks?.RedisLockManager, 'releaseMany', 'redis.releaseMany'), 'redis.releaseMany');
  const queue = await load(root, 'adapters/redis/task-queue.ts');
  add(wrap(queue?.RedisTaskQueue, 'putMany', 'redis.queue.putMany'), 'redis.queue.putMany');
  add(wrap(queue?.RedisTaskQueue, 'getMany', 'redis.queue.getMany'), 'redis.queue.getMany');
  // Later layouts of main (use-case folders): the same methods where they moved.
  const results = await load(root, 'results/results.ts');
  add(wrap(results?.Results, 'completeMany', 'results.completeMany'), 'Results.completeMany');
  const promotion = await load(root, 'promotion/promotion.ts');
  add(wrap(promotion?.Promotion, 'promoteMany', 'promoteMany'), 'Promotion.promoteMany');
  add(wrap(promotion?.Promotion, 'pushDependents', 'results.pushDependents'), 'Promotion.pushDependents');
  add(wrap(promotion?.Promotion, 'sweep', 'sweep: promotable'), 'Promotion.sweep');
  const ingestNew = await load(root, 'ingest/ingest.ts');
  add(wrap(ingestNew?.Ingest, 'ingest', 'ingest (to the commit)', (a) => itemsOf(a[1])), 'Ingest.ingest');
  add(wrap(ingestNew?.Ingest, 'afterCreated', 'ingest.afterCreated', (a) => itemsOf(a[1])), 'Ingest.afterCreated');
  // The per-project reactions: their turn (waiting behind the project's earlier ones) and their run, by kind.
  for (const file of ['orchestrator/reactions.ts', 'reactions/reactions.ts']) {
    const reactions = await load(root, file);
    if (wrapReactions(reactions?.Reactions)) wrapped.push(`${file} Reactions.run`);
  }
  return wrapped;
}

function wrapReactions(cls: unknown): boolean {
  const rproto = (cls as { prototype?: Proto } | undefined)?.prototype;
  if (!rproto?.run) return false;
  const run = rproto.run;
  rproto.run = function (this: unknown, projectId: unknown, what: unknown, fn: unknown): unknown {
    const c = counter(`reaction: ${String(what)}`);
    c.calls++;
    const queued = performance.now();
    const timed = async (): Promise<void> => {
      const start = performance.now();
      const wait = start - queued;
      c.waitMs = (c.waitMs ?? 0) + wait;
      c.maxWaitMs = Math.max(c.maxWaitMs ?? 0, wait);
      try {
        await (fn as () => Promise<void>)();
      } finally {
        const ms = performance.now() - start;
        c.ms += ms;
        c.maxMs = Math.max(c.maxMs, ms);
      }
    };
    return run.call(this, projectId, what, timed);
  };
  return true;
}

/** The counters since the last call (then reset). */
export function takeProbe(): ProbeStats {
  const out = Object.fromEntries(
    [...stats].map(([k, v]) => [k, { ...v, ms: Math.round(v.ms), maxMs: Math.round(v.maxMs), ...(v.waitMs !== undefined ? { waitMs: Math.round(v.waitMs), maxWaitMs: Math.round(v.maxWaitMs ?? 0) } : {}) }]),
  );
  stats.clear();
  return out;
}
