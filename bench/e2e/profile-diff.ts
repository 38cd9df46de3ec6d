/**
 * Two sets of CPU profiles side by side (the A and B orchestrator processes of
 * `BENCH_CPU_PROF=1 npm run bench:ab`): ms of CPU per 1 000 completed tasks by function,
 * self and inclusive (a sample counts once for every distinct function on its stack), the
 * largest differences first. Each side's profiles are summed; `--tasks` is the tasks
 * completed per profile (every round of a scenario completes the same number).
 *
 *   npx tsx bench/e2e/profile-diff.ts --tasks 12000 \
 *     --a bench/results/ab-…/profiles/orchestrator-A-deps-*.cpuprofile \
 *     --b bench/results/ab-…/profiles/orchestrator-B-deps-*.cpuprofile [--top 40] [--match src/]
 *
 * A profile with a `<name>.window.json` beside it (`{ "start": µs, "end": µs }`, written by
 * the benchmark: the measured window on the profile's clock) counts only the samples in
 * that window — not the process's start-up nor its stop.
 *
 * Function keys are `name file:line` with the file relative to its src/ or node_modules
 * package, so the same function of both checkouts matches when its line did not move, and
 * by name and file (`--by name`) when it did.
 */
import { existsSync, readFileSync } from 'node:fs';
import { pathToFileURL } from 'node:url';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}
interface CpuProfile {
  nodes: ProfileNode[];
  startTime: number;
  endTime: number;
  samples: number[];
  timeDeltas: number[];
}

export interface FunctionCost {
  /** ms of CPU: the function's own code, and with its callees. */
  self: number;
  total: number;
}

export interface ProfileCosts {
  /** Non-idle ms (GC and program included) over all profiles of the side. */
  busy: number;
  profiles: number;
  byFunction: Map<string, FunctionCost>;
}

function where(url: string): string {
  if (!url) return '';
  const nm = /node_modules\/((?:@[^/]+\/)?[^/]+)\/(.*)$/.exec(url);
  if (nm) return `${nm[1]}/${nm[2]!.replace(/^dist\//, '')}`;
  const src = /\/((?:src|bench)\/.+)$/.exec(url);
  if (src) return src[1]!;
  return url.replace(/^.*\//, '');
}

function key(frame: ProfileNode['callFrame'], byName: boolean): string {
  const name = frame.functionName || '(anonymous)';
  const file = where(frame.url);
  if (!file) return name;
  return byName ? `${name} ${file}` : `${name} ${file}:${frame.lineNumber + 1}`;
}

export function profileCosts(files: readonly string[], byName = false): ProfileCosts {
  const byFunction = new Map<string, FunctionCost>();
  let busy = 0;
  for (const file of files) {
    const p = JSON.parse(readFileSync(file, 'utf8')) as CpuProfile;
    const windowFile = file.replace(/\.cpuprofile$/, '.window.json');
    const win = existsSync(windowFile) ? (JSON.parse(readFileSync(windowFile, 'utf8')) as { start?: number; end?: number }) : {};
    let at = p.startTime;
    const parent = new Map<number, number>();
    const nodes = new Map<number, ProfileNode>();
    for (const n of p.nodes) {
      nodes.set(n.id, n);
      for (const c of n.children ?? []) parent.set(c, n.id);
    }
    const keys = new Map<number, string>();
    for (const n of p.nodes) keys.set(n.id, key(n.callFrame, byName));
    for (let i = 0; i < p.samples.length; i++) {
      // The delta after a sample is the time it stands for (the next one's timeDelta).
      at += p.timeDeltas[i] ?? 0;
      if ((win.start !== undefined && at < win.start) || (win.end !== undefined && at > win.end)) continue;
      const ms = (p.timeDeltas[i + 1] ?? 0) / 1000;
      const leaf = p.samples[i]!;
      const leafKey = keys.get(leaf)!;
      if (leafKey === '(idle)') continue;
      busy += ms;
      const seen = new Set<string>();
      for (let id: number | undefined = leaf; id !== undefined; id = parent.get(id)) {
        const k = keys.get(id)!;
        if (k === '(root)' || seen.has(k)) continue;
        seen.add(k);
        const c = byFunction.get(k) ?? { self: 0, total: 0 };
        c.total += ms;
        if (id === leaf) c.self += ms;
        byFunction.set(k, c);
      }
    }
  }
  return { busy, profiles: files.length, byFunction };
}

export function diffMarkdown(a: ProfileCosts, b: ProfileCosts, tasks: number, top = 40, match?: string): string {
  // ms per 1 000 tasks: per profile, then per task.
  const perK = (ms: number, side: ProfileCosts): number => (ms / side.profiles / tasks) * 1000;
  const names = new Set([...a.byFunction.keys(), ...b.byFunction.keys()].filter((k) => !match || k.includes(match)));
  const rows = [...names].map((k) => {
    const x = a.byFunction.get(k) ?? { self: 0, total: 0 };
    const y = b.byFunction.get(k) ?? { self: 0, total: 0 };
    return { k, aSelf: perK(x.self, a), bSelf: perK(y.self, b), aTotal: perK(x.total, a), bTotal: perK(y.total, b) };
  });
  const f = (n: number): string => n.toFixed(1);
  const section = (title: string, pick: (r: (typeof rows)[number]) => [number, number]): string[] => [
    '',
    `| ${title} | A | B | B − A |`,
    '| --- | ---: | ---: | ---: |',
    ...rows
      .map((r) => ({ r, v: pick(r) }))
      .sort((x, y) => Math.abs(y.v[1] - y.v[0]) - Math.abs(x.v[1] - x.v[0]))
      .slice(0, top)
      .map(({ r, v }) => `| \`${r.k.replaceAll('|', '\\|')}\` | ${f(v[0])} | ${f(v[1])} | ${v[1] - v[0] >= 0 ? '+' : ''}${f(v[1] - v[0])} |`),
  ];
  return [
    `CPU of the orchestrator process, ms per 1 000 completed tasks (A: ${a.profiles} profiles, B: ${b.profiles}; ${tasks} tasks each): ` +
      `busy A ${f(perK(a.busy, a))}, B ${f(perK(b.busy, b))}.`,
    ...section('inclusive (function and its callees), largest differences', (r) => [r.aTotal, r.bTotal]),
    ...section('self, largest differences', (r) => [r.aSelf, r.bSelf]),
  ].join('\n');
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const args = process.argv.slice(2);
  const a: string[] = [];
  const b: string[] = [];
  let tasks = 0;
  let top = 40;
  let match: string | undefined;
  let byName = false;
  let into: string[] | null = null;
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!;
    if (arg === '--a') into = a;
    else if (arg === '--b') into = b;
    else if (arg === '--tasks') tasks = Number(args[++i]);
    else if (arg === '--top') top = Number(args[++i]);
    else if (arg === '--match') match = args[++i];
    else if (arg === '--by') byName = args[++i] === 'name';
    else if (into) into.push(arg);
  }
  if (!a.length || !b.length || !(tasks > 0)) {
    console.error('usage: profile-diff.ts --tasks N --a A.cpuprofile… --b B.cpuprofile… [--top 40] [--match src/] [--by name]');
    process.exitCode = 2;
  } else {
    console.log(diffMarkdown(profileCosts(a, byName), profileCosts(b, byName), tasks, top, match));
  }
}
