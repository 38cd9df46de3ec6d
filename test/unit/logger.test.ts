import { describe, expect, it } from 'vitest';
import { createLogger } from '../../src/logger.js';
import { ValidationError } from '../../src/errors.js';

/** Errors reach the log as objects: type, message, `code`, and the `cause` as an object of its own; secrets redacted. */

function capture(): { logger: ReturnType<typeof createLogger>; lines: () => Record<string, unknown>[]; text: () => string } {
  const raw: string[] = [];
  const logger = createLogger({ level: 'debug', destination: { write: (s: string) => void raw.push(s) } });
  return { logger, lines: () => raw.map((l) => JSON.parse(l) as Record<string, unknown>), text: () => raw.join('') };
}

describe('logger: errors keep their shape', () => {
  it('logs an error under `err` with its code and its cause (with its own code)', () => {
    const { logger, lines } = capture();
    const cause = Object.assign(new Error('numeric field overflow'), { code: '22003', severity: 'ERROR' });
    logger.error({ err: new ValidationError('cannot ingest event', ['numeric field overflow'], { cause }) }, 'inbound message refused');
    const [line] = lines();
    expect(line!.err).toMatchObject({
      type: 'ValidationError',
      code: 'ERR_VALIDATION',
      retryable: false,
      message: 'cannot ingest event: numeric field overflow',
      cause: { type: 'Error', message: 'numeric field overflow', code: '22003' },
    });
  });

  it("redacts a failed command's arguments (a Redis AUTH carries the password)", () => {
    const { logger, text } = capture();
    const err = Object.assign(new Error('WRONGPASS invalid username-password pair'), { command: { name: 'auth', args: ['default', 's3cret-redis'] } });
    logger.warn({ err }, 'redis connection error');
    expect(text()).toContain('WRONGPASS');
    expect(text()).not.toContain('s3cret-redis');
  });
});
