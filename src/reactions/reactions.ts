import type { Logger } from 'pino';
import { noMetrics, type Metrics } from '../ports/metrics.js';

/**
 * The follow-ups of committed changes (statuses, budget, retries, raised events,
 * dependents), run per project: in order within a project, side by side across projects.
 * A reaction that fails is logged and changes nothing else: it never fails the message
 * whose commit it follows, nor another project's reaction. What it left undone is found
 * again in the durable state by the sweeps (`Orchestrator.sweepReactions`): the outbox of
 * raised events, PENDING tasks whose dependencies are done, failed attempts not yet
 * retried, approval requests not yet announced, READY tasks missing from the queue.
 */
export class Reactions {
  private readonly chains = new Map<string, Promise<void>>();
  /** Per project, the last reaction queued by `runMerged`, while it still waits for its turn. */
  private readonly tails = new Map<string, { what: string; value: unknown; promise: Promise<void> }>();

  constructor(
    private readonly logger: Logger,
    private readonly metrics: Metrics = noMetrics,
  ) {}

  /** Runs `fn` after the project's earlier reactions; resolves when it has run, never rejects. */
  run(projectId: string, what: string, fn: () => Promise<void>): Promise<void> {
    // Queued behind the project's last reaction: nothing queued later merges into that one.
    this.tails.delete(projectId);
    const previous = this.chains.get(projectId) ?? Promise.resolve();
    const next = previous.then(fn).then(
      () => this.metrics.reaction(what, false),
      (err: unknown) => {
        this.metrics.reaction(what, true);
        this.logger.warn({ err, projectId, reaction: what }, 'reaction failed; the sweep finishes it');
      },
    );
    this.chains.set(projectId, next);
    void next.then(() => {
      if (this.chains.get(projectId) === next) this.chains.delete(projectId);
    });
    return next;
  }

  /**
   * Like `run`, for reactions that can be done together: when the project's last queued
   * reaction is one of `what` that has not started yet, `value` is folded into it
   * (`merge(waiting, value)`) and its promise returned — consecutive reactions of the same
   * kind run as one, at the first one's place, so the order of the project's reactions
   * is kept. Otherwise `fn(value)` is queued as `run` does.
   */
  runMerged<T>(projectId: string, what: string, value: T, merge: (waiting: T, value: T) => void, fn: (value: T) => Promise<void>): Promise<void> {
    const tail = this.tails.get(projectId);
    if (tail && tail.what === what) {
      merge(tail.value as T, value);
      return tail.promise;
    }
    const entry = { what, value: value as unknown, promise: Promise.resolve() };
    entry.promise = this.run(projectId, what, () => {
      // Its turn: from now on, what comes is queued after it.
      if (this.tails.get(projectId) === entry) this.tails.delete(projectId);
      return fn(entry.value as T);
    });
    this.tails.set(projectId, entry);
    return entry.promise;
  }

  /** Projects with reactions queued or running. */
  get pending(): number {
    return this.chains.size;
  }

  /** Resolves once every reaction started so far has run. */
  async idle(): Promise<void> {
    while (this.chains.size) await Promise.all([...this.chains.values()]);
  }
}
