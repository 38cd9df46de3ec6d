import { execFile } from 'node:child_process';
import { chmod, copyFile, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { freePort } from './private-redis.js';

const run = promisify(execFile);

/**
 * A private PostgreSQL 15 cluster (initdb + pg_ctl from `pg_config --bindir`), for tests
 * that crash or restart the server (never the shared one). It listens on 127.0.0.1 on a
 * free port with its socket in its own directory, user postgres; trust auth unless
 * `password` is given (then TCP connections need it: scram-sha-256), and TLS when `tls`
 * is given (then TCP connections must use it: `hostssl` only). initdb refuses root, so as
 * root the commands run as the `postgres` user (`su postgres -c`). `dispose()` stops it
 * and removes its directory.
 */
export interface PrivatePostgresOptions {
  /** The postgres user's password; TCP clients must give it (scram-sha-256). */
  password?: string;
  /** The server's certificate and key (copied into the data directory); TCP clients must use TLS. */
  tls?: { certFile: string; keyFile: string };
  /** Server settings (`-c name=value`), such as `authentication_timeout`. */
  settings?: Record<string, string>;
}

export class PrivatePostgres {
  private constructor(
    readonly dir: string,
    readonly port: number,
    private readonly bindir: string,
    private readonly options: PrivatePostgresOptions,
  ) {}

  static async start(options: PrivatePostgresOptions = {}): Promise<PrivatePostgres> {
    const { stdout } = await run('pg_config', ['--bindir']);
    const bindir = stdout.trim();
    const dir = await mkdtemp(join(tmpdir(), 'lap-pg-'));
    await chmod(dir, 0o777);
    const server = new PrivatePostgres(dir, await freePort(), bindir, options);
    try {
      if (options.password === undefined && options.tls === undefined) {
        await server.sh(`${bindir}/initdb -D ${server.dataDir} -U postgres --auth=trust -E UTF8 --no-sync >/dev/null`);
      } else {
        await server.initSecured(options);
      }
      await server.pgCtl('start -w');
    } catch (err) {
      await server.dispose();
      throw err;
    }
    return server;
  }

  get dataDir(): string {
    return join(this.dir, 'data');
  }

  /** A connection string as the superuser: with the password and `sslmode=verify-full` (the certificate as CA) when set up so. */
  get url(): string {
    const { password, tls } = this.options;
    const auth = password === undefined ? 'postgres' : `postgres:${encodeURIComponent(password)}`;
    const ssl = tls === undefined ? '' : `?sslmode=verify-full&sslrootcert=${encodeURIComponent(tls.certFile)}`;
    return `postgres://${auth}@127.0.0.1:${this.port}/postgres${ssl}`;
  }

  /** Over the Unix socket in its directory, which trusts the postgres user whatever `password` and `tls` say. */
  get socketUrl(): string {
    return `postgres://postgres@localhost:${this.port}/postgres?host=${encodeURIComponent(this.dir)}`;
  }

  /** initdb with the password (from a file, removed after) and a pg_hba.conf asking TCP clients for it, over TLS when set. */
  private async initSecured(options: PrivatePostgresOptions): Promise<void> {
    const pwfile = join(this.dir, 'pwfile');
    await writeFile(pwfile, `${options.password ?? ''}\n`, { mode: 0o644 });
    const hostAuth = options.password === undefined ? 'trust' : 'scram-sha-256';
    try {
      await this.sh(
        `${this.bindir}/initdb -D ${this.dataDir} -U postgres --auth-local=trust --auth-host=${hostAuth} ${options.password === undefined ? '' : `--pwfile=${pwfile}`} -E UTF8 --no-sync >/dev/null`,
      );
    } finally {
      await rm(pwfile, { force: true });
    }
    const lines = ['local all all trust', `${options.tls ? 'hostssl' : 'host'} all all 127.0.0.1/32 ${hostAuth}`];
    await writeFile(join(this.dir, 'pg_hba.conf'), `${lines.join('\n')}\n`, { mode: 0o644 });
    let copy = `cp ${this.dir}/pg_hba.conf ${this.dataDir}/pg_hba.conf`;
    if (options.tls) {
      // The key must belong to the server's user with mode 0600: copied by that user.
      await copyFile(options.tls.certFile, join(this.dir, 'server.crt'));
      await copyFile(options.tls.keyFile, join(this.dir, 'server.key'));
      await chmod(join(this.dir, 'server.key'), 0o644);
      copy += ` && cp ${this.dir}/server.crt ${this.dataDir}/server.crt && cp ${this.dir}/server.key ${this.dataDir}/server.key && chmod 600 ${this.dataDir}/server.key`;
      copy += ` && printf "ssl = on\\nssl_cert_file = 'server.crt'\\nssl_key_file = 'server.key'\\n" >> ${this.dataDir}/postgresql.conf`;
    }
    try {
      await this.sh(copy);
    } finally {
      await rm(join(this.dir, 'server.key'), { force: true });
    }
  }

  /** `pg_ctl restart -m immediate`: a crash (no checkpoint, connections cut), then recovery. */
  async crashRestart(): Promise<void> {
    await this.pgCtl('restart -w -m immediate');
  }

  /** Starts it again after `stop()` (same data, same port). */
  async startAgain(): Promise<void> {
    try {
      await this.pgCtl('start -w');
    } catch (err) {
      const log = await readFile(join(this.dir, 'server.log'), 'utf8').catch(() => '');
      throw new Error(`${(err as Error).message}\n${log.slice(-2_000)}`);
    }
  }

  /** `pg_ctl stop -m immediate`: the server dies at once (no checkpoint; connections cut). */
  async stop(): Promise<void> {
    await this.pgCtl('stop -w -m immediate').catch(() => undefined);
  }

  async dispose(): Promise<void> {
    await this.stop();
    await rm(this.dir, { recursive: true, force: true });
  }

  private pgCtl(action: string): Promise<unknown> {
    const settings = Object.entries(this.options.settings ?? {})
      .map(([name, value]) => ` -c ${name}=${value}`)
      .join('');
    return this.sh(
      `${this.bindir}/pg_ctl -D ${this.dataDir} -o "-p ${this.port} -k ${this.dir} -c listen_addresses=127.0.0.1 -c fsync=off${settings}" -l ${this.dir}/server.log ${action} >/dev/null`,
    );
  }

  private sh(command: string): Promise<unknown> {
    const asRoot = typeof process.getuid === 'function' && process.getuid() === 0;
    return asRoot ? run('su', ['postgres', '-c', command], { timeout: 60_000 }) : run('sh', ['-c', command], { timeout: 60_000 });
  }
}
