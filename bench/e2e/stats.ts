/** Small statistics and formatting helpers of the end-to-end benchmark. */
import { performance } from 'node:perf_hooks';

/** Wall-clock milliseconds with sub-millisecond resolution, comparable between processes of one machine. */
export function wallMs(): number {
  return performance.timeOrigin + performance.now();
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

export function median(values: readonly number[]): number {
  if (values.length === 0) return Number.NaN;
  const s = [...values].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

/** Nearest-rank percentile (p in 0..100) of unsorted values. */
export function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) return Number.NaN;
  const s = [...values].sort((a, b) => a - b);
  const rank = Math.min(s.length, Math.max(1, Math.ceil((p / 100) * s.length)));
  return s[rank - 1]!;
}

export interface Summary {
  median: number;
  min: number;
  max: number;
  samples: number[];
}

/** NaN samples (nothing measured) are left out; infinite ones (never arrived) are kept. */
export function summarize(values: readonly number[]): Summary {
  const finite = values.filter((v) => !Number.isNaN(v));
  return {
    median: median(finite),
    min: finite.length ? Math.min(...finite) : Number.NaN,
    max: finite.length ? Math.max(...finite) : Number.NaN,
    samples: [...values],
  };
}

/** Per-round ratios a[i] / b[i] of paired samples, summarised. */
export function pairedRatios(a: readonly number[], b: readonly number[]): Summary {
  const ratios: number[] = [];
  for (let i = 0; i < Math.min(a.length, b.length); i++) ratios.push(a[i]! / b[i]!);
  return summarize(ratios);
}

/** Deterministic PRNG (mulberry32), so both sides of a comparison get the same "random" priorities. */
export { prng as rng } from '../../test/helpers/prng.js';

export function fmtInt(n: number): string {
  return Number.isFinite(n) ? Math.round(n).toLocaleString('en-US') : '–';
}

/** 3 significant digits, thousands separated. */
export function fmt(n: number): string {
  if (!Number.isFinite(n)) return '–';
  if (Math.abs(n) >= 100) return fmtInt(n);
  return Number(n.toPrecision(3)).toString();
}

export function fmtRatio(n: number): string {
  if (n === Number.POSITIVE_INFINITY) return '∞';
  if (!Number.isFinite(n)) return '–';
  return n >= 10 ? n.toFixed(0) : n >= 1 ? n.toFixed(1) : n.toFixed(3);
}

export function fmtMiB(bytes: number): string {
  return Number.isFinite(bytes) ? `${(bytes / 1_048_576).toFixed(0)} MiB` : '–';
}

/** "median (min–max)" */
export function fmtSummary(s: Summary, f: (n: number) => string = fmt): string {
  if (Number.isNaN(s.median)) return '–';
  if (s.samples.length <= 1 || s.min === s.max) return f(s.median);
  return `${f(s.median)} (${f(s.min)}–${f(s.max)})`;
}
