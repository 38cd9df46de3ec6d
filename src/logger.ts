import { pino, type DestinationStream, type Logger, type LoggerOptions } from 'pino';

export type { Logger };

export interface LoggerSettings {
  level?: LoggerOptions['level'];
  name?: string;
  /** Where lines go (default stdout); tests pass a stream to read them back. */
  destination?: DestinationStream;
}

/**
 * The one logger of a process: structured JSON lines (pino), passed down to every
 * component. Fields that may hold secrets are redacted wherever they appear.
 *
 * Errors go under `err` (`logger.error({ err }, 'what failed')`), never as a string: the
 * standard serializer with causes writes an object with `type`, `message`, `stack`, the
 * error's own fields (`code`, `retryable`…) and its `cause` as an object of the same form.
 * The arguments of a failed command (ioredis puts them on its errors: an AUTH carries the
 * password) are redacted.
 */
export function createLogger(settings: LoggerSettings = {}): Logger {
  const options: LoggerOptions = {
    name: settings.name ?? 'orchestrator',
    level: settings.level ?? 'info',
    redact: {
      paths: [
        'password', '*.password', '*.*.password', 'token', '*.token', 'pass', '*.pass', 'authorization', '*.authorization',
        'err.command.args', 'err.cause.command.args', 'err.previousErrors[*].command.args',
      ],
      censor: '***',
    },
    serializers: { err: pino.stdSerializers.errWithCause },
  };
  return settings.destination ? pino(options, settings.destination) : pino(options);
}

/** A logger that drops everything (library embedding and quiet tests). */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
