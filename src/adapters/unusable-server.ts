import { ServiceRefusedError, ServiceUnavailableError } from '../errors.js';

/** What a refusal says, in the drivers' words (pg, ioredis, nats.js, Node's TLS): the server is up, these settings are not accepted. */
const REFUSAL = /password|authenticat|WRONGPASS|NOAUTH|NOPERM|authoriz|permission denied|pg_hba|certificate|self[- ]signed|\bSSL\b|\bTLS\b/i;

const HOW_TO_START = 'start it (for example `docker compose up -d`) or point the environment at it';

/**
 * The error of a server the service cannot use at start, naming it and where: refused
 * (ServiceRefusedError: check the credentials and TLS settings, which are named) or not
 * reached (ServiceUnavailableError: start it, or point the environment at it). `detail` is
 * the driver's message, with any secret already masked.
 */
export function unusableServer(service: string, name: string, where: string, detail: string, settings: string, cause: unknown): ServiceUnavailableError {
  if (REFUSAL.test(detail)) {
    return new ServiceRefusedError(service, `${name} at ${where} refused the connection: ${detail}; check the credentials and TLS settings (${settings})`, { cause });
  }
  return new ServiceUnavailableError(service, `cannot reach ${name} at ${where}: ${detail}; ${HOW_TO_START}`, { cause });
}
