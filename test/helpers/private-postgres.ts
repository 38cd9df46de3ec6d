import { execFile } from 'node:child_process';
import { chmod, mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { freePort } from './private-redis.js';

const run = promisify(execFile);

/**
 * A private PostgreSQL 15 cluster (initdb + pg_ctl from `pg_config --bindir`), for tests
 * that crash or restart the server (never the shared one). It listens on 127.0.0.1 on a
 * free port with its socket in its own directory, trust auth, user postgres. initdb
 * refuses root, so as root the commands run as the `postgres` user (`su postgres -c`).
 * `dispose()` stops it and removes its directory.
 */
export class PrivatePostgres {
  private constructor(
    readonly dir: string,
    readonly port: number,
    private readonly bindir: string,
  ) {}

  static async start(): Promise<PrivatePostgres> {
    const { stdout } = await run('pg_config', ['--bindir']);
    const bindir = stdout.trim();
    const dir = await mkdtemp(join(tmpdir(), 'lap-pg-'));
    await chmod(dir, 0o777);
    const server = new PrivatePostgres(dir, await freePort(), bindir);
    try {
      await server.sh(`${bindir}/initdb -D ${server.dataDir} -U postgres --auth=trust -E UTF8 --no-sync >/dev/null`);
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

  get url(): string {
    return `postgres://postgres@127.0.0.1:${this.port}/postgres`;
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
    return this.sh(
      `${this.bindir}/pg_ctl -D ${this.dataDir} -o "-p ${this.port} -k ${this.dir} -c listen_addresses=127.0.0.1 -c fsync=off" -l ${this.dir}/server.log ${action} >/dev/null`,
    );
  }

  private sh(command: string): Promise<unknown> {
    const asRoot = typeof process.getuid === 'function' && process.getuid() === 0;
    return asRoot ? run('su', ['postgres', '-c', command], { timeout: 60_000 }) : run('sh', ['-c', command], { timeout: 60_000 });
  }
}
