/**
 * A first look at the orchestrator's CPU profiles (BENCH_CPU_PROF=1): how busy the
 * process was, self time per package / source file, and the top functions.
 *
 *   npx tsx bench/e2e/profile.ts bench/results/<run>/profiles/orchestrator-flat-0.cpuprofile
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { pathToFileURL } from 'node:url';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  hitCount?: number;
}
interface CpuProfile {
  nodes: ProfileNode[];
  startTime: number;
  endTime: number;
  samples?: number[];
}

export interface ProfileSummary {
  file: string;
  seconds: number;
  /** Share of samples not idle. */
  busy: number;
  /** Self time share of all samples, per group (package, src file, GC, …). */
  groups: [string, number][];
  functions: [string, number][];
}

function group(url: string, fn: string): string {
  if (fn === '(idle)' || fn === '(garbage collector)' || fn === '(program)') return fn;
  if (!url) return '(native)';
  const nm = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url);
  if (nm) return nm[1]!;
  const src = /\/(src|bench)\/(.+)$/.exec(url);
  if (src) return `${src[1]}/${src[2]}`;
  if (url.startsWith('node:')) return url;
  return url.replace(/^.*\//, '');
}

export function summarizeProfile(file: string, top = 15): ProfileSummary {
  const p = JSON.parse(readFileSync(file, 'utf8')) as CpuProfile;
  let total = 0;
  const groups = new Map<string, number>();
  const fns = new Map<string, number>();
  for (const n of p.nodes) {
    const hits = n.hitCount ?? 0;
    if (!hits) continue;
    total += hits;
    const { functionName, url, lineNumber } = n.callFrame;
    const g = group(url, functionName);
    groups.set(g, (groups.get(g) ?? 0) + hits);
    const name = `${functionName || '(anonymous)'} ${g}${url ? `:${lineNumber + 1}` : ''}`;
    fns.set(name, (fns.get(name) ?? 0) + hits);
  }
  const idle = groups.get('(idle)') ?? 0;
  const share = (m: Map<string, number>): [string, number][] =>
    [...m].sort((a, b) => b[1] - a[1]).slice(0, top).map(([k, v]) => [k, total ? v / total : 0]);
  return {
    file: basename(file),
    seconds: (p.endTime - p.startTime) / 1e6,
    busy: total ? 1 - idle / total : 0,
    groups: share(groups),
    functions: share(new Map([...fns].filter(([k]) => !k.startsWith('(idle)')))),
  };
}

export function summarizeProfiles(dir: string): ProfileSummary[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir)
    .filter((f) => f.endsWith('.cpuprofile'))
    .sort()
    .map((f) => summarizeProfile(join(dir, f)));
}

export function profileMarkdown(s: ProfileSummary): string {
  const pct = (x: number): string => `${(x * 100).toFixed(1)} %`;
  return [
    `**${s.file}**: ${s.seconds.toFixed(1)} s, busy ${pct(s.busy)} of the time (the rest idle, waiting on I/O)`,
    '',
    '| self time by package / file | share |',
    '| --- | ---: |',
    ...s.groups.map(([g, v]) => `| ${g} | ${pct(v)} |`),
    '',
    '| top functions (self time) | share |',
    '| --- | ---: |',
    ...s.functions.slice(0, 12).map(([f, v]) => `| \`${f}\` | ${pct(v)} |`),
  ].join('\n');
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  for (const f of process.argv.slice(2)) console.log(`${profileMarkdown(summarizeProfile(f))}\n`);
}
