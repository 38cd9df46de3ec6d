import { describe, expect, it } from 'vitest';
import { onFailure } from '../../src/adapters/inbound-order.js';
import { invalidInput } from '../../src/adapters/postgres/pg-errors.js';
import { ValidationError } from '../../src/errors.js';

/**
 * Data errors (SQLSTATE class 22) and program limits (class 54: statement too complex,
 * stack depth) depend only on the values sent: the same statement fails again on every
 * delivery. They are ValidationErrors (permanent, dead-lettered at once with the reason);
 * anything else, such as a lost connection, passes through (retried).
 */

const pgError = (code: string, message = `error ${code}`) => Object.assign(new Error(message), { code, severity: 'ERROR' });
const POLICY = { maxDeliveries: 5, baseMs: 100, maxMs: 1_000 };

describe('invalidInput: the PostgreSQL errors that are the input', () => {
  it.each([
    ['22003', 'numeric field overflow'],
    ['22021', 'invalid byte sequence for encoding "UTF8": 0x00'],
    ['22P05', 'unsupported Unicode escape sequence'],
    ['22P02', 'invalid input syntax for type json'],
    ['22001', 'value too long for type character varying(50)'],
    ['22007', 'invalid datetime format'],
    ['22008', 'date/time field value out of range'],
    ['2200N', 'invalid XML content'],
    ['22012', 'division by zero'],
    ['54001', 'stack depth limit exceeded'],
    ['54000', 'total size of jsonb array elements exceeds the maximum'],
    ['23502', 'null value in column "title" violates not-null constraint'],
    ['23514', 'new row violates check constraint'],
  ])('%s (%s) is a permanent ValidationError with the reason and the cause', (code, message) => {
    const err = pgError(code, message);
    const mapped = invalidInput(err, 'cannot ingest event');
    expect(mapped).toBeInstanceOf(ValidationError);
    expect(mapped).toMatchObject({ code: 'ERR_VALIDATION', retryable: false, cause: err });
    expect((mapped as Error).message).toBe(`cannot ingest event: ${message}`);
    expect(onFailure(mapped, 1, POLICY)).toEqual({ retry: false, reason: `ERR_VALIDATION: cannot ingest event: ${message}` });
  });

  it.each(['08006', '08001', '57P01', '40001', '40P01', '53300', '55P03', '57014', 'LA001'])('%s passes through (transient or handled by its caller)', (code) => {
    const err = pgError(code);
    expect(invalidInput(err, 'x')).toBe(err);
    expect(onFailure(invalidInput(err, 'x'), 1, POLICY)).toMatchObject({ retry: true });
  });

  it('leaves errors without an SQLSTATE alone', () => {
    const plain = new Error('connection terminated unexpectedly');
    expect(invalidInput(plain, 'x')).toBe(plain);
    const typed = new ValidationError('already typed');
    expect(invalidInput(typed, 'x')).toBe(typed);
    const node = Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' });
    expect(invalidInput(node, 'x')).toBe(node);
  });
});
