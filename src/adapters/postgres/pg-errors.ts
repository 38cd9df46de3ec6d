import { ValidationError } from '../../errors.js';

/** PostgreSQL error codes the adapters map to typed errors. */
export const UNIQUE_VIOLATION = '23505';
/** Not-null and check violations. */
const INVALID_INPUT = new Set(['23502', '23514']);
/**
 * SQLSTATE classes that depend only on the values sent, so the same statement fails again on
 * every try: 22 (data exception: numeric overflow 22003, NUL 22021, bad JSON text 22P02,
 * unsupported Unicode escape 22P05, too long 22001, bad datetime 22007/22008…) and 54
 * (program limit exceeded: statement too complex or stack depth 54001, a value too big 54000).
 */
const INVALID_INPUT_CLASSES = new Set(['22', '54']);
const SQLSTATE = /^[0-9A-Z]{5}$/;

/** Whether a SQLSTATE is the caller's input (permanent), not the server's state (transient). */
export function isInputError(code: string): boolean {
  return SQLSTATE.test(code) && (INVALID_INPUT.has(code) || INVALID_INPUT_CLASSES.has(code.slice(0, 2)));
}

/** The SQLSTATE of a driver error (pg and PGlite both expose it as `code`). */
export function pgCode(err: unknown): string | undefined {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : undefined;
}

/**
 * Constraint violations, data exceptions and program limits (isInputError) are the caller's
 * input: a ValidationError (not retryable, so the message that carried it is dead-lettered at
 * once with the reason), the driver's error as its cause. Anything else passes through.
 */
export function invalidInput(err: unknown, message: string): unknown {
  const code = pgCode(err);
  if (code !== undefined && isInputError(code)) {
    return new ValidationError(message, [err instanceof Error ? err.message : String(err)], { cause: err });
  }
  return err;
}

/** Refuses NaN, infinities and (unless allowed) negative amounts before they reach SQL. */
export function requireAmount(what: string, value: number, { min = 0, max = Infinity } = {}): void {
  if (!Number.isFinite(value) || value < min || value > max) {
    throw new ValidationError(`${what} must be a finite number in [${min}, ${max}]`, [`${what}: ${value}`]);
  }
}
