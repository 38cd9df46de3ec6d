import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';

/**
 * Separate processes for the end-to-end tests: `orchestrator start`, the agents example,
 * one-shot CLI commands. Scripts run as `node --import tsx <script>` (one process, no
 * wrapper), so a signal reaches the process itself. Only the processes started here are
 * ever signalled, by their own pid; whatever is still running when the test process
 * exits is killed then.
 */
export const ROOT = fileURLToPath(new URL('../..', import.meta.url));
export const CLI = 'src/cli/entry.ts';

const live = new Set<ChildProcess>();
let exitHookInstalled = false;

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.once('exit', () => {
    for (const child of live) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  });
}

export interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export class ManagedProcess {
  stdout = '';
  stderr = '';
  readonly exited: Promise<Exit>;
  private readonly child: ChildProcess;

  private constructor(
    readonly name: string,
    script: string,
    args: readonly string[],
    env: Record<string, string>,
  ) {
    installExitHook();
    this.child = spawn(process.execPath, ['--import', 'tsx', script, ...args], {
      cwd: ROOT,
      // HTTP on a free port unless the test names one: processes side by side never clash on HTTP_ADDR's default.
      env: { ...process.env, HTTP_ADDR: '127.0.0.1:0', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    live.add(this.child);
    this.child.stdout?.on('data', (chunk: Buffer) => (this.stdout += chunk.toString()));
    this.child.stderr?.on('data', (chunk: Buffer) => (this.stderr += chunk.toString()));
    this.exited = new Promise<Exit>((resolve) => {
      this.child.once('exit', (code, signal) => {
        live.delete(this.child);
        resolve({ code, signal });
      });
      this.child.once('error', (err) => {
        live.delete(this.child);
        this.stderr += `spawn error: ${err.message}\n`;
        resolve({ code: null, signal: null });
      });
    });
  }

  /** Starts `script` (relative to the repository root) with `env` on top of this process's. */
  static start(name: string, script: string, args: readonly string[], env: Record<string, string>): ManagedProcess {
    return new ManagedProcess(name, script, args, env);
  }

  get pid(): number | undefined {
    return this.child.pid;
  }

  get running(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  /** Waits until stdout contains `text`; fails early when the process exits first. */
  async waitForOutput(text: string, timeoutMs = 60_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!this.stdout.includes(text)) {
      if (!this.running) throw new Error(`${this.name} exited before printing "${text}"\n${this.describe()}`);
      if (Date.now() > deadline) throw new Error(`${this.name} did not print "${text}" within ${timeoutMs} ms\n${this.describe()}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  /** Sends `signal` and waits for the exit; SIGKILL when it has not exited after `graceMs`. */
  async stop(signal: NodeJS.Signals = 'SIGTERM', graceMs = 30_000): Promise<Exit> {
    if (this.running) this.child.kill(signal);
    const timer = setTimeout(() => {
      if (this.running) this.child.kill('SIGKILL');
    }, graceMs);
    try {
      return await this.exited;
    } finally {
      clearTimeout(timer);
    }
  }

  /** The output so far, for failure messages (the end of each stream). */
  describe(): string {
    const tail = (s: string) => s.slice(-4_000);
    return `--- ${this.name} stdout ---\n${tail(this.stdout)}\n--- ${this.name} stderr ---\n${tail(this.stderr)}`;
  }
}

/** `orchestrator start` with `env`; resolves once it says it is running. */
export async function startService(env: Record<string, string>, name = 'orchestrator'): Promise<ManagedProcess> {
  const service = ManagedProcess.start(name, CLI, ['start'], env);
  await service.waitForOutput(' running (NATS prefix ', 90_000);
  return service;
}

/** `examples/agents.ts` with `env`; resolves once every worker is ready. */
export async function startAgents(env: Record<string, string>): Promise<ManagedProcess> {
  const agents = ManagedProcess.start('agents', 'examples/agents.ts', [], env);
  await agents.waitForOutput('agents ready: ', 90_000);
  return agents;
}

/** Runs one CLI command to its end (asynchronously: the test's own connections keep working). */
export async function runCli(args: readonly string[], env: Record<string, string>, timeoutMs = 60_000): Promise<Exit & { stdout: string; stderr: string }> {
  const p = ManagedProcess.start(`orchestrator ${args[0] ?? ''}`, CLI, args, env);
  const timer = setTimeout(() => void p.stop('SIGKILL'), timeoutMs);
  try {
    const exit = await p.exited;
    return { ...exit, stdout: p.stdout, stderr: p.stderr };
  } finally {
    clearTimeout(timer);
  }
}

/** Stops every process still running (SIGTERM, then SIGKILL): for afterAll. */
export async function stopAll(processes: readonly (ManagedProcess | undefined)[]): Promise<void> {
  await Promise.all(processes.filter((p): p is ManagedProcess => p !== undefined).map((p) => p.stop('SIGTERM', 15_000)));
}
