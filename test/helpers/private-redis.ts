import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/**
 * A private `redis-server` without persistence, for tests that make Redis lose its data
 * (never the shared one). `restartEmpty()` stops it without saving and starts it again on
 * the same port: every key is gone. Only the process started here is ever signalled.
 * With `user` the default user is off and that ACL user (every command and key) must
 * log in; with `tls` the port speaks TLS only (no plain port). Both go in a config file
 * of its own (never on the command line); `stop()` removes it.
 */
export interface PrivateRedisOptions {
  /** An ACL user clients must log in as (a redis.conf line: no blank or quote in the password). */
  user?: { name: string; password: string };
  /** The server's certificate and key: the port speaks TLS only; clients need no certificate. */
  tls?: { certFile: string; keyFile: string };
  /**
   * An ACL file (`aclfile`: its users, instead of `user`'s); with `user` too, `url` logs
   * in as that user, which the file must define with that password.
   */
  aclFile?: string;
}

export class PrivateRedis {
  private child: ChildProcess | null = null;
  private configDir: string | null = null;

  private constructor(
    readonly port: number,
    private readonly options: PrivateRedisOptions,
  ) {}

  static async start(options: PrivateRedisOptions = {}): Promise<PrivateRedis> {
    const server = new PrivateRedis(await freePort(), options);
    try {
      await server.launch();
    } catch (err) {
      await server.stop();
      throw err;
    }
    return server;
  }

  /** redis:// (rediss:// with TLS), with the user and password when set up so. */
  get url(): string {
    const { user, tls } = this.options;
    const auth = user === undefined ? '' : `${encodeURIComponent(user.name)}:${encodeURIComponent(user.password)}@`;
    return `${tls ? 'rediss' : 'redis'}://${auth}127.0.0.1:${this.port}`;
  }

  /** SIGKILL (nothing saved: persistence is off), then a fresh start on the same port. */
  async restartEmpty(downMs = 0): Promise<void> {
    await this.kill();
    if (downMs > 0) await new Promise((r) => setTimeout(r, downMs));
    await this.launch();
  }

  async stop(): Promise<void> {
    await this.kill();
    if (this.configDir !== null) await rm(this.configDir, { recursive: true, force: true });
    this.configDir = null;
  }

  private async kill(): Promise<void> {
    const child = this.child;
    this.child = null;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    child.kill('SIGKILL');
    await exited;
  }

  /** The config file of the ACL user and TLS (null without either). */
  private async configFile(): Promise<string | null> {
    const { user, tls, aclFile } = this.options;
    if (user === undefined && tls === undefined && aclFile === undefined) return null;
    this.configDir ??= await mkdtemp(join(tmpdir(), 'lap-redis-'));
    const lines: string[] = [];
    if (aclFile !== undefined) lines.push(`aclfile ${aclFile}`);
    else if (user !== undefined) lines.push('user default off', `user ${user.name} on >${user.password} ~* &* +@all`);
    if (tls !== undefined) lines.push(`tls-port ${this.port}`, 'port 0', `tls-cert-file ${tls.certFile}`, `tls-key-file ${tls.keyFile}`, 'tls-auth-clients no');
    const file = join(this.configDir, 'redis.conf');
    await writeFile(file, `${lines.join('\n')}\n`, { mode: 0o600 });
    return file;
  }

  private async launch(): Promise<void> {
    const file = await this.configFile();
    const port = this.options.tls === undefined ? ['--port', String(this.port)] : [];
    const child = spawn('redis-server', [...(file === null ? [] : [file]), ...port, '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    this.child = child;
    let out = '';
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`redis-server did not start:\n${out}`)), 15_000);
      const onData = (chunk: Buffer) => {
        out += chunk.toString();
        if (out.includes('Ready to accept connections')) {
          clearTimeout(timer);
          resolve();
        }
      };
      child.stdout?.on('data', onData);
      child.stderr?.on('data', onData);
      child.once('exit', (code) => {
        clearTimeout(timer);
        reject(new Error(`redis-server exited with ${code}:\n${out}`));
      });
    });
  }
}

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const address = srv.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      srv.close(() => resolve(port));
    });
  });
}
