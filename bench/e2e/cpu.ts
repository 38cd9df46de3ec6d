/**
 * CPU time per process group over a measured window, from /proc (Linux; elsewhere the
 * meter reports nothing). Every piece of a throughput round runs on the same cores, so the
 * rate is bounded by the CPU each task costs in all of them; this says where it goes.
 *
 * Groups: the orchestrator process, the agents process (NATS agents or the BullMQ worker),
 * the bench process itself (the status watcher, or BullMQ's producer), PostgreSQL (the
 * postmaster, its background processes and the backends of this run's connections — after
 * `refresh()`; other clients' backends are not this run's), the NATS server and Redis.
 * Whatever else the machine ran in the window (other jobs on the shared cores, other
 * clients' backends) is `CpuMeter.other`, from /proc/stat.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import type { Infra } from './infra.js';

export type CpuGroup = 'orchestrator' | 'agents' | 'bench' | 'postgres' | 'nats' | 'redis';

/** CPU seconds per group over a window. */
export type CpuUsage = Partial<Record<CpuGroup, number>>;

/** USER_HZ: 100 on every Linux ABI Node runs on. */
const TICKS_PER_SECOND = 100;

interface ProcStat {
  ppid: number;
  /** utime + stime, in ticks. */
  ticks: number;
}

function readStat(pid: number): ProcStat | null {
  try {
    const text = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // "pid (comm) state ppid … utime stime …": comm may hold spaces and parentheses.
    const f = text.slice(text.lastIndexOf(')') + 2).split(' ');
    return { ppid: Number(f[1]), ticks: Number(f[11]) + Number(f[12]) };
  } catch {
    return null;
  }
}

function comm(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/comm`, 'utf8').trim();
  } catch {
    return '';
  }
}

function allPids(): number[] {
  return readdirSync('/proc').filter((d) => /^\d+$/.test(d)).map(Number);
}

/** `group` null: a PostgreSQL backend of another client (read so that it can be placed later). */
interface Reading {
  procs: Map<number, { group: CpuGroup | null; ticks: number }>;
  /** Busy ticks of the whole machine (all cores: user, nice, system, irq, softirq), null without /proc/stat. */
  machine: number | null;
}

function machineTicks(): number | null {
  try {
    const line = readFileSync('/proc/stat', 'utf8').split('\n', 1)[0]!;
    const f = line.trim().split(/\s+/).slice(1).map(Number);
    // user nice system idle iowait irq softirq steal …
    return f[0]! + f[1]! + f[2]! + f[5]! + f[6]!;
  } catch {
    return null;
  }
}

/**
 * CPU ticks per thread of one process (/proc/<pid>/task/*): `main` is the JS thread (the
 * process's own id); Node 20 names every other thread `node` as well — V8's platform
 * workers (parallel scavenge, concurrent marking, background compilation), libuv's pool,
 * the inspector — counted together as `helpers`.
 */
export function threadTicks(pid: number): Map<string, number> {
  const out = new Map<string, number>();
  try {
    for (const tid of readdirSync(`/proc/${pid}/task`)) {
      try {
        const text = readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8');
        const name = text.slice(text.indexOf('(') + 1, text.lastIndexOf(')'));
        const f = text.slice(text.lastIndexOf(')') + 2).split(' ');
        const key = Number(tid) === pid ? 'main' : name === 'node' ? 'helpers' : name;
        out.set(key, (out.get(key) ?? 0) + Number(f[11]) + Number(f[12]));
      } catch {
        // the thread ended
      }
    }
  } catch {
    // the process ended, or no /proc
  }
  return out;
}

/** CPU seconds per thread name between two `threadTicks` readings (threads that ended in between are missed). */
export function threadUsage(before: Map<string, number>, after: Map<string, number>): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [name, ticks] of after) out[name] = (ticks - (before.get(name) ?? 0)) / TICKS_PER_SECOND;
  return out;
}

export class CpuMeter {
  /** PostgreSQL backends of this run (and the server's background processes); null: every backend. */
  private ours: Set<number> | null = null;

  private constructor(
    private readonly fixed: Map<number, CpuGroup>,
    private readonly postmaster: number | null,
    private readonly infra: Infra,
  ) {}

  /**
   * Finds the servers' processes: PostgreSQL through a backend's parent, Redis through
   * INFO, NATS by its process name (every nats-server on the machine). Null without /proc.
   */
  static async find(infra: Infra, agentsPid: number | undefined): Promise<CpuMeter | null> {
    if (readStat(process.pid) === null) return null;
    const fixed = new Map<number, CpuGroup>([[process.pid, 'bench']]);
    if (agentsPid !== undefined) fixed.set(agentsPid, 'agents');
    const backend = (await infra.pg.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0]?.pid;
    const postmaster = backend === undefined ? null : (readStat(backend)?.ppid ?? null);
    const info = await infra.redis.info('server');
    const redisPid = /process_id:(\d+)/.exec(info)?.[1];
    if (redisPid) fixed.set(Number(redisPid), 'redis');
    for (const pid of allPids()) if (comm(pid) === 'nats-server') fixed.set(pid, 'nats');
    return new CpuMeter(fixed, postmaster, infra);
  }

  /** Counts another process in a group from now on (a private server of a peer: its Redis), or no longer (null). */
  track(pid: number, group: CpuGroup | null): void {
    if (group) this.fixed.set(pid, group);
    else this.fixed.delete(pid);
  }

  /**
   * Finds this run's PostgreSQL backends: the server's background processes, the
   * benchmark's pool (`bench-e2e-<run>`), the orchestrators' (`orchestrator-bench-<run>-…`,
   * from their INSTANCE_ID) and the peers' (`bench-peer-<run>-…`, producers and workers).
   * Call before each reading; until then every backend counts.
   */
  async refresh(): Promise<void> {
    const run = this.infra.config.runId;
    const { rows } = await this.infra.pg.query<{ pid: number }>(
      `SELECT pid FROM pg_stat_activity
        WHERE backend_type <> 'client backend' OR application_name = $1 OR starts_with(application_name, $2)
           OR starts_with(application_name, $3)`,
      [`bench-e2e-${run}`, `orchestrator-bench-${run}-`, `bench-peer-${run}-`],
    );
    const ours = this.ours ?? new Set<number>();
    for (const r of rows) ours.add(r.pid);
    this.ours = ours;
  }

  /** A reading; `orchestratorPid` is the round's orchestrator process, if any. */
  read(orchestratorPid?: number): Reading {
    const machine = machineTicks();
    const procs: Reading['procs'] = new Map();
    const groups = new Map(this.fixed);
    if (orchestratorPid !== undefined) groups.set(orchestratorPid, 'orchestrator');
    for (const [pid, group] of groups) {
      const s = readStat(pid);
      if (s) procs.set(pid, { group, ticks: s.ticks });
    }
    if (this.postmaster !== null) {
      for (const pid of allPids()) {
        if (pid !== this.postmaster && procs.has(pid)) continue;
        const s = readStat(pid);
        if (!s || (pid !== this.postmaster && s.ppid !== this.postmaster)) continue;
        const ours = pid === this.postmaster || this.ours === null || this.ours.has(pid);
        procs.set(pid, { group: ours ? 'postgres' : null, ticks: s.ticks });
      }
    }
    return { procs, machine };
  }

  /**
   * CPU seconds per group between two readings. A process that started in between counts
   * from zero; one that ended in between is missed (the pools keep their connections).
   */
  static usage(before: Reading, after: Reading): CpuUsage {
    const usage: CpuUsage = {};
    for (const [pid, { group, ticks }] of after.procs) {
      if (group === null) continue;
      const start = before.procs.get(pid)?.ticks ?? 0;
      usage[group] = (usage[group] ?? 0) + (ticks - start) / TICKS_PER_SECOND;
    }
    return usage;
  }

  /**
   * CPU seconds the rest of the machine spent between two readings (other jobs, other
   * clients' PostgreSQL backends): the machine's busy time less `usage`. Null without /proc/stat.
   */
  static other(before: Reading, after: Reading, usage: CpuUsage): number | null {
    if (before.machine === null || after.machine === null) return null;
    const ours = Object.values(usage).reduce((a, b) => a + (b ?? 0), 0);
    return Math.max(0, (after.machine - before.machine) / TICKS_PER_SECOND - ours);
  }

  /** Cores the machine keeps busy over `ms` (nothing of this run should be running then). */
  static async busyCores(ms: number): Promise<number | null> {
    const a = machineTicks();
    const t = performance.now();
    await new Promise((resolve) => setTimeout(resolve, ms));
    const b = machineTicks();
    if (a === null || b === null) return null;
    return (b - a) / TICKS_PER_SECOND / ((performance.now() - t) / 1000);
  }
}
