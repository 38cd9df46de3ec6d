import { waitFor } from 'xstate';
import { VersionConflictError, isOrchestratorError } from '../errors.js';
import type { SchedulerActorRef } from '../actors/system.js';
import type { Dispatcher } from '../dispatch/dispatcher.js';
import type { Core } from './core.js';

/** A periodic step the scheduler runs between passes (each use case registers its own). */
interface Sweep {
  name: string;
  run: (now: number) => Promise<void>;
  /** At most once per this many ms (at least once per scheduler interval). */
  everyMs: number;
  lastAt: number;
}

/**
 * The scheduler: the loop of the scheduler actor. It runs every SCHEDULER_INTERVAL and at
 * once when woken. Once per interval it sweeps — the dispatcher's reconcile, timeouts,
 * due retries, expired approvals, reactions left undone — and on every pass the
 * dispatcher dispatches while there is room (see dispatch/dispatcher.ts: the one home of
 * dispatch).
 */
export class TaskScheduler {
  /** The pass in flight; passes never overlap (the loop's and `tick()` calls). */
  private inflight: Promise<unknown> = Promise.resolve();
  private readonly actor: SchedulerActorRef;
  private failuresLogged = 0;
  /** The error of the last failed pass, for the log (the actor's context keeps only its text). */
  private lastFailure: unknown = undefined;
  private lastSweep = Number.NEGATIVE_INFINITY;
  private readonly sweeps: Sweep[] = [];

  constructor(
    private readonly core: Core,
    readonly dispatcher: Dispatcher,
  ) {
    // A child of the actor system's root (systemId `scheduler`), on the system's clock.
    this.actor = core.system.spawnScheduler(
      {
        tick: () =>
          this.tick().catch((err: unknown) => {
            this.lastFailure = err;
            throw err;
          }),
        drain: () => this.inflight.then(() => undefined),
      },
      core.config.scheduler.intervalMs,
    );
    this.actor.subscribe({
      next: (s) => {
        if (s.context.lastError && s.context.failures > this.failuresLogged) {
          this.failuresLogged = s.context.failures;
          core.logger.error({ err: this.lastFailure ?? s.context.lastError }, 'scheduler pass failed');
          this.lastFailure = undefined;
        }
      },
      error: (err) => core.logger.error({ err }, 'scheduler actor error'),
    });
  }

  get runningCount(): number {
    return this.dispatcher.runningCount;
  }

  /** The scheduler actor (for inspection). */
  get ref(): SchedulerActorRef {
    return this.actor;
  }

  start(): void {
    this.dispatcher.start();
    this.actor.send({ type: 'START' });
  }

  /** Stops the loop; resolves once a pass in flight has finished and the dispatcher has stopped. */
  async stop(): Promise<void> {
    this.dispatcher.halt();
    this.actor.send({ type: 'STOP' });
    await waitFor(this.actor, (s) => s.matches('stopped'), { timeout: Infinity });
    await this.dispatcher.stop();
  }

  /**
   * Registers a sweep: what a use case finds in the durable state and finishes (timeouts,
   * due retries, expired approvals, reactions left undone). Sweeps run in the order
   * registered, once per interval (or `everyMs`); one that fails is logged.
   */
  addSweep(name: string, run: (now: number) => Promise<void>, everyMs = 0): void {
    this.sweeps.push({ name, run, everyMs, lastAt: Number.NEGATIVE_INFINITY });
  }

  /** Tasks left RUNNING: their slots and leases are freed, and a pass runs if that made room. */
  async settled(taskIds: readonly string[]): Promise<void> {
    if (await this.dispatcher.settled(taskIds)) this.wake();
  }

  /** Asks for a pass as soon as possible (coalesced with one in flight). */
  wake(): void {
    this.actor.send({ type: 'WAKE' });
  }

  /** Runs one pass now (after one in flight); returns how many tasks it dispatched. */
  tick(): Promise<number> {
    const run = this.inflight.then(() => this.runTick());
    this.inflight = run.catch(() => undefined);
    return run;
  }

  private async runTick(): Promise<number> {
    // The sweeps run once per interval, not on every wake: under load a pass runs for every
    // batch of results, and the dispatching must not pay for the sweeping queries each time.
    const now = this.core.clock.now();
    if (now - this.lastSweep >= this.core.config.scheduler.intervalMs) {
      this.lastSweep = now;
      await this.guard('reconcile', () => this.dispatcher.reconcile());
      for (const sweep of this.sweeps) {
        if (now - sweep.lastAt < sweep.everyMs) continue;
        sweep.lastAt = now;
        await this.guard(sweep.name, () => sweep.run(now));
      }
    }
    return this.dispatcher.pass();
  }

  /** Runs one step; a failure is logged and does not stop the pass. */
  private async guard<T>(what: string, fn: () => Promise<T>): Promise<T | 'failed'> {
    try {
      return await fn();
    } catch (err) {
      const level = err instanceof VersionConflictError || (isOrchestratorError(err) && err.retryable) ? 'warn' : 'error';
      this.core.logger[level]({ err, step: what }, 'scheduler step failed');
      return 'failed';
    }
  }
}
