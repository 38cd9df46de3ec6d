import { execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

/** A self-signed certificate for 127.0.0.1 and localhost, made by openssl at run time. */
export interface SelfSignedCert {
  dir: string;
  /** The certificate (PEM); also the CA a client trusts, since it signs itself. */
  certFile: string;
  keyFile: string;
  /** Removes the directory. */
  dispose(): Promise<void>;
}

/** `openssl req -x509` in a temporary directory: an RSA key and a one-day certificate with IP and DNS SANs. */
export async function makeSelfSignedCert(): Promise<SelfSignedCert> {
  const dir = await mkdtemp(join(tmpdir(), 'lap-tls-'));
  const certFile = join(dir, 'server.crt');
  const keyFile = join(dir, 'server.key');
  try {
    await run(
      'openssl',
      [
        'req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '1',
        '-keyout', keyFile, '-out', certFile,
        '-subj', '/CN=localhost',
        '-addext', 'subjectAltName=IP:127.0.0.1,DNS:localhost',
      ],
      { timeout: 30_000 },
    );
  } catch (err) {
    await rm(dir, { recursive: true, force: true });
    throw err;
  }
  return { dir, certFile, keyFile, dispose: () => rm(dir, { recursive: true, force: true }) };
}
