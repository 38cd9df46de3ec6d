import type { Logger } from 'pino';
import type { Clock } from '../ports/clock.js';

/**
 * Steps deferred on the injected clock: a retried task's back-off, a promotion whose
 * `notBefore` is still ahead. Only a shortcut: the deadline is in the task's row, and the
 * scheduler's sweeps find what a stop or a crash left undone.
 */
export class Timers {
  private readonly handles = new Set<unknown>();
  private stopped = false;

  constructor(
    private readonly clock: Clock,
    private readonly logger: Logger,
  ) {}

  /** Runs `fn` after `ms`; an error is logged. Nothing runs after `stop()`. */
  later(ms: number, fn: () => Promise<unknown>): void {
    if (this.stopped) return;
    const handle = this.clock.setTimeout(() => {
      this.handles.delete(handle);
      if (this.stopped) return;
      fn().catch((err) => this.logger.error({ err }, 'deferred task step failed'));
    }, Math.max(0, ms));
    this.handles.add(handle);
  }

  stop(): void {
    this.stopped = true;
    for (const h of this.handles) this.clock.clearTimeout(h);
    this.handles.clear();
  }
}
