import { readFileSync } from 'node:fs';
import { X509Certificate } from 'node:crypto';
import { connect as netConnect, isIP, type Socket } from 'node:net';
import { connect as tlsConnect, type ConnectionOptions } from 'node:tls';

/** The client's TLS files, as NATS_TLS_CA_FILE, NATS_TLS_CERT_FILE and NATS_TLS_KEY_FILE give them. */
export interface TlsFiles {
  caFile?: string;
  certFile?: string;
  keyFile?: string;
}

/**
 * Why a TLS connection to NATS failed, where the client can know it. A server that
 * requires client certificates (`tls { verify: true }`) refuses a missing or untrusted one
 * only after the TLS 1.3 handshake completed on the client's side, with an alert nats.js
 * does not pass on: its connect ends with `timeout`. This probe asks the server itself:
 * its INFO says whether it verifies client certificates (`tls_verify`), so a missing one
 * is named before any handshake; otherwise it makes the handshake with the same files,
 * sends CONNECT and PING, and reads the alert that answers (or PONG: TLS is not the cause).
 * Null when it finds nothing to say (not TLS, not reachable, or the handshake works).
 * Asks the servers in turn, `timeoutMs` in all.
 */
export async function diagnoseTls(servers: readonly string[], tls: TlsFiles | undefined, timeoutMs = 3_000): Promise<string | null> {
  const deadline = Date.now() + timeoutMs;
  for (const server of servers) {
    const target = hostPort(server);
    const left = deadline - Date.now();
    if (left <= 0) break;
    if (!target) continue;
    const found = await probe(target, tls ?? {}, left).catch(() => null);
    if (found) return found;
  }
  return null;
}

function hostPort(server: string): { host: string; port: number } | null {
  const s = server.trim();
  const withScheme = /^[a-z]+:\/\//i.test(s) ? s : `nats://${s}`;
  try {
    const url = new URL(withScheme);
    if (!['nats:', 'tls:'].includes(url.protocol) || url.hostname === '') return null;
    return { host: url.hostname.replace(/^\[(.*)\]$/, '$1'), port: url.port ? Number(url.port) : 4222 };
  } catch {
    return null;
  }
}

async function probe(target: { host: string; port: number }, tls: TlsFiles, timeoutMs: number): Promise<string | null> {
  const socket = netConnect(target.port, target.host);
  const timer = setTimeout(() => socket.destroy(), timeoutMs);
  try {
    const info = await firstLine(socket);
    const m = /^INFO\s+(\{.*\})\s*$/.exec(info);
    if (!m) return null;
    const serverInfo = JSON.parse(m[1]!) as { tls_required?: boolean; tls_verify?: boolean; tls_available?: boolean };
    const clientWantsTls = tls.caFile !== undefined || tls.certFile !== undefined;
    if (!serverInfo.tls_required && !(clientWantsTls && serverInfo.tls_available)) return null;
    if (serverInfo.tls_verify && tls.certFile === undefined) {
      return 'the server requires a client certificate (mutual TLS) and none is configured: set NATS_TLS_CERT_FILE and NATS_TLS_KEY_FILE';
    }
    return await handshake(socket, target.host, tls);
  } finally {
    clearTimeout(timer);
    socket.destroy();
  }
}

function firstLine(socket: Socket): Promise<string> {
  return new Promise((resolve, reject) => {
    let text = '';
    const onData = (chunk: Buffer): void => {
      text += chunk.toString('latin1');
      const end = text.indexOf('\r\n');
      if (end !== -1) {
        socket.off('data', onData);
        resolve(text.slice(0, end));
      } else if (text.length > 64 * 1024) {
        reject(new Error('no INFO line'));
      }
    };
    socket.on('data', onData);
    socket.once('error', reject);
    socket.once('close', () => reject(new Error('closed')));
  });
}

function handshake(socket: Socket, host: string, tls: TlsFiles): Promise<string | null> {
  const options: ConnectionOptions = { socket, rejectUnauthorized: true };
  if (isIP(host) === 0) options.servername = host;
  if (tls.caFile !== undefined) options.ca = readFileSync(tls.caFile);
  if (tls.certFile !== undefined) options.cert = readFileSync(tls.certFile);
  if (tls.keyFile !== undefined) options.key = readFileSync(tls.keyFile);
  return new Promise((resolve) => {
    const secure = tlsConnect(options);
    secure.once('secureConnect', () => secure.write('CONNECT {"verbose":false,"pedantic":false,"tls_required":true}\r\nPING\r\n'));
    secure.once('data', () => {
      secure.destroy();
      resolve(null);
    });
    secure.once('error', (err: NodeJS.ErrnoException) => {
      secure.destroy();
      resolve(describeFailure(err, tls));
    });
    secure.once('close', () => resolve(null));
  });
}

function describeFailure(err: NodeJS.ErrnoException, tls: TlsFiles): string {
  const alert = /ALERT_([A-Z_]+)$/.exec(err.code ?? '')?.[1];
  if (alert === undefined) return `the TLS handshake failed: ${err.message.trim()}`;
  const name = alert.toLowerCase().replaceAll('_', ' ');
  if (alert === 'CERTIFICATE_REQUIRED' || tls.certFile === undefined) {
    return `the server requires a client certificate (TLS alert: ${name}) and none is configured: set NATS_TLS_CERT_FILE and NATS_TLS_KEY_FILE`;
  }
  const expiry = certificateDates(tls.certFile);
  if (expiry && expiry.validTo.getTime() < Date.now()) {
    return `the server refused the client certificate ${tls.certFile} (TLS alert: ${name}): it expired on ${expiry.validTo.toISOString()}`;
  }
  if (expiry && expiry.validFrom.getTime() > Date.now()) {
    return `the server refused the client certificate ${tls.certFile} (TLS alert: ${name}): it is not valid before ${expiry.validFrom.toISOString()}`;
  }
  return `the server refused the client certificate ${tls.certFile} (TLS alert: ${name}): it is not signed by a CA the server trusts (unknown CA), or not meant for client authentication`;
}

function certificateDates(file: string): { validFrom: Date; validTo: Date } | null {
  try {
    const cert = new X509Certificate(readFileSync(file));
    return { validFrom: new Date(cert.validFrom), validTo: new Date(cert.validTo) };
  } catch {
    return null;
  }
}
