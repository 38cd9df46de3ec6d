/**
 * The benchmark's child processes (the orchestrator, the agents) and a tiny request /
 * reply protocol over the Node IPC channel. Children are started as
 * `node --import tsx <script>` and only ever signalled by their own pid; any still alive
 * when the benchmark process exits are killed then.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { closeSync, mkdirSync, openSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT } from './config.js';

interface Request {
  id: number;
  cmd: string;
  args?: unknown;
}
interface Reply {
  id: number;
  ok: boolean;
  result?: unknown;
  error?: string;
}
export interface Notice {
  type: string;
  [k: string]: unknown;
}

const live = new Set<ChildProcess>();
let hooked = false;
function hookExit(): void {
  if (hooked) return;
  hooked = true;
  process.once('exit', () => {
    for (const c of live) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  });
}

export interface SpawnOptions {
  env: Record<string, string>;
  logFile: string;
  /** Extra node flags (--cpu-prof …). */
  nodeArgs?: string[];
}

export class Child {
  readonly spawnedAt = Date.now();
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  private nextId = 1;
  private readonly pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();
  private readonly notices: Notice[] = [];
  private readonly noticeWaiters: { type: string; resolve: (n: Notice) => void }[] = [];

  private constructor(readonly name: string, private readonly proc: ChildProcess) {
    proc.on('message', (raw) => this.onMessage(raw as Reply | Notice));
    this.exited = new Promise((resolve) => {
      proc.once('exit', (code, signal) => {
        live.delete(proc);
        for (const p of this.pending.values()) p.reject(new Error(`${name} exited (${code ?? signal}) during a request`));
        this.pending.clear();
        resolve({ code, signal });
      });
    });
  }

  static spawn(name: string, script: string, options: SpawnOptions): Child {
    hookExit();
    mkdirSync(join(options.logFile, '..'), { recursive: true });
    const fd = openSync(options.logFile, 'a');
    const proc = fork(join(ROOT, script), [], {
      cwd: ROOT,
      execArgv: ['--import', 'tsx', '--expose-gc', ...(options.nodeArgs ?? [])],
      env: { ...process.env, ...options.env },
      stdio: ['ignore', fd, fd, 'ipc'],
    });
    closeSync(fd);
    live.add(proc);
    return new Child(name, proc);
  }

  get pid(): number | undefined {
    return this.proc.pid;
  }

  /** Resolves with the first notice of this type (already received or to come); rejects if the child exits first. */
  notice(type: string, timeoutMs = 120_000): Promise<Notice> {
    const seen = this.notices.find((n) => n.type === type);
    if (seen) return Promise.resolve(seen);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`${this.name}: no "${type}" within ${timeoutMs} ms`)), timeoutMs);
      this.noticeWaiters.push({
        type,
        resolve: (n) => {
          clearTimeout(timer);
          resolve(n);
        },
      });
      void this.exited.then(({ code, signal }) => {
        clearTimeout(timer);
        reject(new Error(`${this.name} exited (${code ?? signal}) before "${type}"; see its log`));
      });
    });
  }

  request<T>(cmd: string, args?: unknown, timeoutMs = 120_000): Promise<T> {
    const id = this.nextId++;
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new Error(`${this.name}: ${cmd} timed out after ${timeoutMs} ms`));
      }, timeoutMs);
      this.pending.set(id, {
        resolve: (v) => {
          clearTimeout(timer);
          resolve(v as T);
        },
        reject: (e) => {
          clearTimeout(timer);
          reject(e);
        },
      });
      this.proc.send({ id, cmd, args } satisfies Request);
    });
  }

  /** Asks the child to stop (it exits by itself); SIGKILL if it has not exited within the limit. */
  async stop(limitMs = 20_000): Promise<{ graceful: boolean }> {
    if (this.proc.exitCode !== null || this.proc.signalCode !== null) return { graceful: true };
    this.request('stop', undefined, limitMs).catch(() => undefined);
    const timer = new Promise<'late'>((resolve) => setTimeout(() => resolve('late'), limitMs));
    const outcome = await Promise.race([this.exited.then(() => 'exited' as const), timer]);
    if (outcome === 'late') {
      this.proc.kill('SIGKILL');
      await this.exited;
      return { graceful: false };
    }
    return { graceful: true };
  }

  private onMessage(msg: Reply | Notice): void {
    if ('id' in msg && typeof msg.id === 'number') {
      const p = this.pending.get(msg.id);
      if (!p) return;
      this.pending.delete(msg.id);
      if (msg.ok) p.resolve(msg.result);
      else p.reject(new Error(`${this.name}: ${msg.error ?? 'failed'}`));
      return;
    }
    const notice = msg as Notice;
    this.notices.push(notice);
    for (const w of [...this.noticeWaiters]) {
      if (w.type === notice.type) {
        this.noticeWaiters.splice(this.noticeWaiters.indexOf(w), 1);
        w.resolve(notice);
      }
    }
  }
}

// ---------------------------------------------------------------------------------------
// Child side

export type Handlers = Record<string, (args: unknown) => Promise<unknown>>;

/** Serves the parent's requests; the process exits when the parent goes away. */
export function serve(handlers: Handlers): void {
  if (!process.send) throw new Error('not started with an IPC channel (run through bench/run.ts)');
  process.on('disconnect', () => process.exit(2));
  process.on('message', (raw) => {
    const req = raw as Request;
    const handler = handlers[req.cmd];
    const reply = (r: Reply): void => {
      if (process.connected) process.send!(r);
    };
    if (!handler) return reply({ id: req.id, ok: false, error: `unknown command ${req.cmd}` });
    handler(req.args).then(
      (result) => reply({ id: req.id, ok: true, result }),
      (err: unknown) => reply({ id: req.id, ok: false, error: err instanceof Error ? err.stack ?? err.message : String(err) }),
    );
  });
}

export function notify(notice: Notice): void {
  if (process.connected) process.send!(notice);
}
