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
 */
export function createLogger(settings: LoggerSettings = {}): Logger {
  const options: LoggerOptions = {
    name: settings.name ?? 'orchestrator',
    level: settings.level ?? 'info',
    redact: {
      paths: ['password', '*.password', '*.*.password', 'token', '*.token', 'pass', '*.pass', 'authorization', '*.authorization'],
      censor: '***',
    },
    serializers: { err: pino.stdSerializers.err },
  };
  return settings.destination ? pino(options, settings.destination) : pino(options);
}

/** A logger that drops everything (library embedding and quiet tests). */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
