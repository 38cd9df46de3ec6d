import { isOrchestratorError } from '../errors.js';
import type { OutboxEvent } from '../ports/task-store.js';
import type { Core } from '../orchestrator/core.js';
import type { ProjectLifecycle } from '../control/lifecycle.js';
import type { Ingest } from './ingest.js';
import { raisedBy, tracingOn } from '../tracing/tracing.js';

/** A raised event whose handling keeps failing is dead-lettered after this many tries. */
export const RAISED_EVENT_TRIES = 5;
/** How long a sweep waits, after the first failure, before it tries an event again (doubling). */
const RETRY_BASE_MS = 2_000;

/**
 * Events raised by completed tasks (a script written, a shot plan made). The completing
 * commit puts them in the outbox; they are ingested in their project's reaction, and the
 * sweep ingests what a failure or a crash left there. Each on its own: one that fails is
 * tried again with back-off, and one that keeps failing, or fails for good, is
 * dead-lettered with its reason and its project reported failed (the stage it would have
 * started never comes) — it never holds up another event or project.
 */
export class RaisedEvents {
  /** Raised events whose handling failed here: tries so far, and when to try again. */
  private readonly failures = new Map<string, { tries: number; nextAt: number }>();

  constructor(
    private readonly core: Core,
    private readonly ingest: Ingest,
    private readonly lifecycle: ProjectLifecycle,
  ) {}

  /**
   * Ingests raised events, in order (within their project's reaction). One refused for good
   * (a payload against the contract, a fan-out over MAX_TASKS_PER_EVENT) is dead-lettered
   * with its reason at once, and the next is handled; a retryable failure is left to the sweep.
   */
  async handle(events: readonly OutboxEvent[]): Promise<void> {
    for (const e of events) {
      try {
        await this.ingestOne(e);
      } catch (err) {
        if (!(isOrchestratorError(err) && !err.retryable)) throw err;
        this.failures.delete(e.eventId);
        await this.deadLetter(e, err, 1);
      }
    }
  }

  /** Every event in the outbox (at start); a failure is left to the sweep. */
  async replay(): Promise<void> {
    for (const event of await this.core.tasks.listOutbox(10_000)) {
      await this.ingestOne(event).catch((err) =>
        this.core.logger.warn({ err, eventId: event.eventId }, 'raised event failed at start; the sweep tries again'),
      );
    }
  }

  /** The events still in the outbox older than `before`. */
  async sweep(before: Date): Promise<void> {
    const { core } = this;
    const now = core.clock.now();
    for (const e of await core.tasks.listOutbox(500, before)) {
      const failed = this.failures.get(e.eventId);
      if (failed && failed.nextAt > now) continue;
      try {
        await this.ingestOne(e);
        this.failures.delete(e.eventId);
      } catch (err) {
        const tries = (failed?.tries ?? 0) + 1;
        const permanent = isOrchestratorError(err) && !err.retryable;
        if (permanent || tries >= RAISED_EVENT_TRIES) {
          this.failures.delete(e.eventId);
          await this.deadLetter(e, err, tries);
        } else {
          this.failures.set(e.eventId, { tries, nextAt: now + RETRY_BASE_MS * 2 ** tries });
          core.logger.warn({ err, eventId: e.eventId, projectId: e.projectId, tries }, 'raised event failed; tried again later');
        }
      }
    }
  }

  /**
   * Traced (tracing on): the event's ingest starts a trace of its own, linked to the raising
   * task's (its traceparent, in memory from the completing commit, or read from the task).
   */
  private async ingestOne(e: OutboxEvent): Promise<void> {
    if (!tracingOn()) return this.ingestEvent(e);
    const traceParent = e.traceParent !== undefined ? e.traceParent : ((await this.core.tasks.getTask(e.taskId).catch(() => null))?.traceParent ?? null);
    return raisedBy(traceParent, () => this.ingestEvent(e));
  }

  private async ingestEvent(e: OutboxEvent): Promise<void> {
    await this.ingest.event({ id: e.eventId, type: e.eventType, projectId: e.projectId, payload: e.payload, occurredAt: e.at });
  }

  /** A raised event that cannot be handled: out of the outbox, into the dead letters with its reason, its project failed. */
  private async deadLetter(e: OutboxEvent, err: unknown, tries: number): Promise<void> {
    const reason = `raised event ${e.eventType} (${e.eventId}) could not be handled: ${err instanceof Error ? err.message : String(err)}`;
    this.core.logger.error({ err, eventId: e.eventId, projectId: e.projectId, tries }, 'raised event dead-lettered');
    await this.core.deadLetters.record({ taskId: e.taskId, projectId: e.projectId, reason, lastError: reason, attempts: tries, at: new Date(this.core.clock.now()) });
    this.core.metrics.deadLetter('task', isOrchestratorError(err) ? err.code : 'ERR_RAISED_EVENT');
    await this.core.tasks.removeOutbox(e.eventId);
    // A project that is over (the likely reason for the refusal) stays as it is.
    await this.lifecycle.fail(e.projectId, reason);
  }
}
