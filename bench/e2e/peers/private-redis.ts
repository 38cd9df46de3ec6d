/**
 * The private redis-server of the `bullmq-redis-aof` peer: `--appendonly yes
 * --appendfsync always` (every write fsynced before its reply), on a free port, its data
 * directory under the run's results directory. Started on first use, stopped by
 * `stop()` — bench/run.ts calls it at the end, also after a failure — and killed if the
 * benchmark process exits without it.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { Redis } from 'ioredis';
import { sleep } from '../stats.js';

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => (typeof address === 'object' && address ? resolve(address.port) : reject(new Error('no port'))));
    });
  });
}

export class PrivateRedis {
  private constructor(
    readonly port: number,
    readonly dir: string,
    private readonly proc: ChildProcess,
    private readonly exited: Promise<void>,
  ) {}

  get pid(): number | undefined {
    return this.proc.pid;
  }

  get url(): string {
    return `redis://127.0.0.1:${this.port}`;
  }

  static async start(dir: string, extraArgs: string[]): Promise<PrivateRedis> {
    mkdirSync(dir, { recursive: true });
    const port = await freePort();
    const args = ['--port', String(port), '--bind', '127.0.0.1', '--dir', dir, '--save', '', '--logfile', 'redis.log', ...extraArgs];
    const proc = spawn('redis-server', args, { stdio: 'ignore' });
    const exited = new Promise<void>((resolve) => proc.once('exit', () => resolve()));
    const kill = (): void => void proc.kill('SIGKILL');
    process.once('exit', kill);
    void exited.then(() => process.removeListener('exit', kill));
    const server = new PrivateRedis(port, dir, proc, exited);
    const probe = new Redis({ port, host: '127.0.0.1', lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
    probe.on('error', () => undefined); // refused until the server listens: retried below
    try {
      for (let i = 0; ; i++) {
        try {
          await probe.connect();
          await probe.ping();
          // What the peer promises: every write fsynced before its reply.
          const fsync = (await probe.config('GET', 'appendfsync')) as string[];
          if (extraArgs.includes('always') && fsync[1] !== 'always') throw new Error(`appendfsync is ${fsync[1]}, not always`);
          break;
        } catch (err) {
          if (proc.exitCode !== null || i > 100) throw new Error(`redis-server ${args.join(' ')} did not start: ${String(err)}`);
          probe.disconnect();
          await sleep(50);
        }
      }
    } catch (err) {
      await server.stop();
      throw err;
    } finally {
      probe.disconnect();
    }
    return server;
  }

  /** Removes every key (the server is this run's own). */
  async flush(): Promise<void> {
    const r = new Redis({ port: this.port, host: '127.0.0.1', maxRetriesPerRequest: 1 });
    try {
      await r.flushall();
    } finally {
      r.disconnect();
    }
  }

  /** Stops the server (SIGTERM, SIGKILL after 10 s) and removes its data directory. */
  async stop(): Promise<void> {
    if (this.proc.exitCode === null && this.proc.signalCode === null) {
      this.proc.kill('SIGTERM');
      const late = await Promise.race([this.exited.then(() => false), sleep(10_000).then(() => true)]);
      if (late) {
        this.proc.kill('SIGKILL');
        await this.exited;
      }
    }
    rmSync(this.dir, { recursive: true, force: true });
  }
}
