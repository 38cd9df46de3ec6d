import { ValidationError } from '../../errors.js';

/** PostgreSQL error codes the adapters map to typed errors. */
export const UNIQUE_VIOLATION = '23505';
/** Not-null, check, too long, out of range, bad datetime, bad text representation. */
const INVALID_INPUT = new Set(['23502', '23514', '22001', '22003', '22007', '22008', '22P02']);

/** The SQLSTATE of a driver error (pg and PGlite both expose it as `code`). */
export function pgCode(err: unknown): string | undefined {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : undefined;
}

/** Constraint and type violations are the caller's input (ValidationError); anything else passes through. */
export function invalidInput(err: unknown, message: string): unknown {
  const code = pgCode(err);
  if (code !== undefined && INVALID_INPUT.has(code)) {
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
