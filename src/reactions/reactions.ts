import type { Logger } from 'pino';

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

  constructor(private readonly logger: Logger) {}

  /** Runs `fn` after the project's earlier reactions; resolves when it has run, never rejects. */
  run(projectId: string, what: string, fn: () => Promise<void>): Promise<void> {
    const previous = this.chains.get(projectId) ?? Promise.resolve();
    const next = previous.then(fn).catch((err: unknown) => {
      this.logger.warn({ err, projectId, reaction: what }, 'reaction failed; the sweep finishes it');
    });
    this.chains.set(projectId, next);
    void next.then(() => {
      if (this.chains.get(projectId) === next) this.chains.delete(projectId);
    });
    return next;
  }

  /** Resolves once every reaction started so far has run. */
  async idle(): Promise<void> {
    while (this.chains.size) await Promise.all([...this.chains.values()]);
  }
}
