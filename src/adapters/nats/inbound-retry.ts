import { isOrchestratorError } from '../../errors.js';

/** How a handler's failure is told in logs and dead letters: `code: message` for the orchestrator's errors. */
export function describeError(err: unknown): string {
  if (isOrchestratorError(err)) return `${err.code}: ${err.message}`;
  return err instanceof Error ? err.message : String(err);
}

/** Whether a handler's failure may pass on a later delivery (anything but a non-retryable OrchestratorError). */
export function retryable(err: unknown): boolean {
  return !(isOrchestratorError(err) && !err.retryable);
}

/** Delay before the n-th redelivery (n = deliveries so far, 1-based): exponential, capped. */
export function retryDelay(deliveries: number, baseMs: number, maxMs: number): number {
  return Math.min(baseMs * 2 ** Math.min(Math.max(deliveries - 1, 0), 30), maxMs);
}

/** Runs `fn`, turning a synchronous throw into a rejection: resolves with the failure, or null. */
export function outcome(fn: () => Promise<void>): Promise<{ err: unknown } | null> {
  try {
    return fn().then(
      () => null,
      (err: unknown) => ({ err }),
    );
  } catch (err) {
    return Promise.resolve({ err });
  }
}
