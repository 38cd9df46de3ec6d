/**
 * CPU time per process group over a measured window, from /proc (Linux; elsewhere the
 * meter reports nothing). Every piece of a throughput round runs on the same cores, so the
 * rate is bounded by the CPU each task costs in all of them; this says where it goes.
 *
 * Groups: the orchestrator process, the agents process (NATS agents or the BullMQ worker),
 * the bench process itself (the status watcher, or BullMQ's producer), PostgreSQL (the
 * postmaster and all its children), the NATS server and Redis.
 */
import { readdirSync, readFileSync } from 'node:fs';
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

type Reading = Map<number, { group: CpuGroup; ticks: number }>;

export class CpuMeter {
  private constructor(
    private readonly fixed: ReadonlyMap<number, CpuGroup>,
    private readonly postmaster: number | null,
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
    return new CpuMeter(fixed, postmaster);
  }

  /** A reading; `orchestratorPid` is the round's orchestrator process, if any. */
  read(orchestratorPid?: number): Reading {
    const reading: Reading = new Map();
    const groups = new Map(this.fixed);
    if (orchestratorPid !== undefined) groups.set(orchestratorPid, 'orchestrator');
    for (const [pid, group] of groups) {
      const s = readStat(pid);
      if (s) reading.set(pid, { group, ticks: s.ticks });
    }
    if (this.postmaster !== null) {
      for (const pid of allPids()) {
        if (pid !== this.postmaster && reading.has(pid)) continue;
        const s = readStat(pid);
        if (s && (pid === this.postmaster || s.ppid === this.postmaster)) reading.set(pid, { group: 'postgres', ticks: s.ticks });
      }
    }
    return reading;
  }

  /**
   * CPU seconds per group between two readings. A process that started in between counts
   * from zero; one that ended in between is missed (the pools keep their connections).
   */
  static usage(before: Reading, after: Reading): CpuUsage {
    const usage: CpuUsage = {};
    for (const [pid, { group, ticks }] of after) {
      const start = before.get(pid)?.ticks ?? 0;
      usage[group] = (usage[group] ?? 0) + (ticks - start) / TICKS_PER_SECOND;
    }
    return usage;
  }
}
