import { MAX_PRIORITY, MIN_PRIORITY } from '../domain/task.js';
import { ValidationError } from '../errors.js';
import type { QueueEntry } from '../ports/task-queue.js';

/** Argument checks shared by the Redis adapters and their in-memory twins. */

export function checkEntry(entry: QueueEntry): void {
  if (typeof entry.taskId !== 'string' || entry.taskId.length === 0) {
    throw new ValidationError('queue entry needs a non-empty taskId', [`taskId=${String(entry.taskId)}`]);
  }
  const p = entry.priority;
  if (!Number.isInteger(p) || p < MIN_PRIORITY || p > MAX_PRIORITY) {
    throw new ValidationError(`priority of ${entry.taskId} must be an integer in ${MIN_PRIORITY}..${MAX_PRIORITY}`, [
      `priority=${String(p)}`,
    ]);
  }
}

export function checkEntries(entries: readonly QueueEntry[]): void {
  for (const entry of entries) checkEntry(entry);
}

/** Keeps the first occurrence of each task id, in order. */
export function firstOccurrences(entries: readonly QueueEntry[]): QueueEntry[] {
  const seen = new Set<string>();
  const out: QueueEntry[] = [];
  for (const entry of entries) {
    if (seen.has(entry.taskId)) continue;
    seen.add(entry.taskId);
    out.push(entry);
  }
  return out;
}

export function checkCount(count: number): void {
  if (!Number.isSafeInteger(count) || count < 0) {
    throw new ValidationError('count must be a non-negative integer', [`count=${String(count)}`]);
  }
}

export function checkTtl(ttlMs: number): void {
  if (!Number.isSafeInteger(ttlMs) || ttlMs <= 0) {
    throw new ValidationError('lease ttlMs must be a positive integer', [`ttlMs=${String(ttlMs)}`]);
  }
}

export function checkResource(resource: string): void {
  if (typeof resource !== 'string' || resource.length === 0) {
    throw new ValidationError('lock resource must be a non-empty string');
  }
}

/** Every resource non-empty, none twice (a batch of leases takes each resource once). */
export function checkDistinctResources(resources: readonly string[]): void {
  if (!Array.isArray(resources)) throw new ValidationError('lock resources must be an array');
  const seen = new Set<string>();
  const repeated = new Set<string>();
  for (const resource of resources) {
    checkResource(resource);
    if (seen.has(resource)) repeated.add(resource);
    seen.add(resource);
  }
  if (repeated.size > 0) {
    throw new ValidationError('lock resources must be distinct', [...repeated].slice(0, 10).map((r) => `repeated=${r}`));
  }
}

export function checkFencingValue(value: number): void {
  if (!Number.isSafeInteger(value) || value < 0) {
    throw new ValidationError('fencing value must be a non-negative safe integer', [`value=${String(value)}`]);
  }
}
