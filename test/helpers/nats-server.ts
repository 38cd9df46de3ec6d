import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/**
 * A private `nats-server -js` for tests that must stop or restart a server (never the
 * shared one). It listens on 127.0.0.1 on a free port, keeps its JetStream store in a
 * temporary directory (so a restart keeps the streams), and only ever signals the
 * process it started itself.
 */
export const NATS_SERVER_BIN = process.env.NATS_SERVER_BIN ?? '/usr/sbin/nats-server';

export interface NatsServerOptions {
  user?: string;
  pass?: string;
  /** The server's certificate and key: every client must use TLS (`--tls`). */
  tls?: { certFile: string; keyFile: string };
  /**
   * The server's certificate and key, and the CA that client certificates must chain to:
   * every client must use TLS and present a certificate (`tls { verify: true }`).
   */
  mutualTls?: { certFile: string; keyFile: string; caFile: string };
  /** A configuration file (`-c`: users and permissions…); the port, address and store stay the helper's. */
  configFile?: string;
  /** Or the configuration's text, written to a file in the store directory (the same `-c`). */
  config?: string;
  /** Environment of the server, beside this process's (the `$VARIABLES` a configuration file reads). */
  env?: Record<string, string>;
}

export class TestNatsServer {
  private child: ChildProcess | null = null;
  private log = '';

  private constructor(
    readonly port: number,
    readonly storeDir: string,
    private readonly options: NatsServerOptions,
  ) {}

  static async start(options: NatsServerOptions = {}): Promise<TestNatsServer> {
    const port = await freePort();
    const storeDir = await mkdtemp(join(tmpdir(), 'lap-nats-'));
    const server = new TestNatsServer(port, storeDir, options);
    try {
      await server.launch();
    } catch (err) {
      await server.dispose();
      throw err;
    }
    return server;
  }

  get url(): string {
    return `nats://127.0.0.1:${this.port}`;
  }

  /** What a client of this server needs beside the URL: the user and password, and the certificate as CA. */
  get clientOptions(): { user?: string; pass?: string; tls?: { caFile: string } } {
    const { user, pass, tls, mutualTls } = this.options;
    return {
      ...(user === undefined ? {} : { user }),
      ...(pass === undefined ? {} : { pass }),
      ...(tls === undefined ? {} : { tls: { caFile: tls.certFile } }),
      ...(mutualTls === undefined ? {} : { tls: { caFile: mutualTls.caFile } }),
    };
  }

  /** What the server printed so far (for failure messages). */
  get output(): string {
    return this.log;
  }

  /** Stops the server (SIGTERM, then SIGKILL if it lingers) and waits for it to exit. */
  stop(): Promise<void> {
    return this.end('SIGTERM');
  }

  /** `kill -9`: the server dies at once (its store stays). */
  kill(): Promise<void> {
    return this.end('SIGKILL');
  }

  private async end(signal: NodeJS.Signals): Promise<void> {
    const child = this.child;
    this.child = null;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    child.kill(signal);
    const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
    await exited;
    clearTimeout(timer);
  }

  /** Starts it again after `stop()` or `kill()`: same port, same store. */
  async startAgain(): Promise<void> {
    await this.launch();
  }

  /** Stops and starts again on the same port with the same store. */
  async restart(): Promise<void> {
    await this.stop();
    await this.launch();
  }

  /** Stops the server and removes its store. */
  async dispose(): Promise<void> {
    await this.stop();
    await rm(this.storeDir, { recursive: true, force: true });
  }

  private async launch(): Promise<void> {
    const args = ['-js', '-a', '127.0.0.1', '-p', String(this.port), '-sd', this.storeDir, '-n', `test-${this.port}`];
    let configFile = this.options.configFile;
    if (this.options.config !== undefined) {
      configFile = join(this.storeDir, 'server.conf');
      await writeFile(configFile, this.options.config);
    }
    if (this.options.user !== undefined) args.push('--user', this.options.user);
    if (this.options.pass !== undefined) args.push('--pass', this.options.pass);
    if (this.options.tls !== undefined) args.push('--tls', '--tlscert', this.options.tls.certFile, '--tlskey', this.options.tls.keyFile);
    const mtls = this.options.mutualTls;
    if (mtls !== undefined) args.push('--tlsverify', '--tlscert', mtls.certFile, '--tlskey', mtls.keyFile, '--tlscacert', mtls.caFile);
    if (configFile !== undefined) args.push('-c', configFile);
    const env = this.options.env === undefined ? process.env : { ...process.env, ...this.options.env };
    const child = spawn(NATS_SERVER_BIN, args, { stdio: ['ignore', 'pipe', 'pipe'], env });
    this.child = child;
    let out = '';
    return new Promise<void>((resolve, reject) => {
      let settled = false;
      const timer = setTimeout(() => fail(new Error(`nats-server did not become ready:\n${out}`)), 20_000);
      const onData = (chunk: Buffer): void => {
        this.log += chunk.toString();
        out += chunk.toString();
        if (!settled && out.includes('Server is ready')) {
          settled = true;
          clearTimeout(timer);
          resolve();
        }
      };
      const fail = (err: Error): void => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
        reject(err);
      };
      child.stdout?.on('data', onData);
      child.stderr?.on('data', onData);
      child.once('error', fail);
      child.once('exit', (code) => fail(new Error(`nats-server exited with ${code}:\n${out}`)));
    });
  }
}

function freePort(): Promise<number> {
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
