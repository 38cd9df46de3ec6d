/**
 * The benchmark's work, built once per round from a seeded PRNG so that the orchestrator
 * and BullMQ get the same tasks with the same priorities:
 *
 * - the orchestrator's custom task type (BENCH_NOOP → agent bench_noop, cost 0) and its
 *   pipeline: BENCH_FLAT fans out one task per item, BENCH_FANIN creates per item
 *   `children` children and a parent depending on them, BENCH_ONE creates one task;
 * - the same work as BullMQ jobs (addBulk) and flows (FlowProducer.addBulk).
 *
 * A pipeline template's priority is a literal, so "random priorities" are
 * `priorityLevels` templates (one per level, each a forEach over its own payload array):
 * every item goes to the array of its random level. BullMQ gets the same level
 * (1 = highest there, 1000 = highest in the orchestrator).
 */
import type { FlowJob, JobsOptions } from 'bullmq';
import type { PipelineInput, TaskTypeSpecInput } from '../../src/index.js';
import { rng } from './stats.js';

export const NOOP_TYPE = 'BENCH_NOOP';
export const NOOP_AGENT = 'bench_noop';

export const BENCH_TASK_TYPES: TaskTypeSpecInput[] = [
  { name: NOOP_TYPE, description: 'No-op benchmark task', agent: NOOP_AGENT, priority: 500, cost: { base: 0 } },
];

/** Orchestrator priority (0..1000, higher first) of a level 0..levels-1. */
export function orchestratorPriority(level: number, levels: number): number {
  return levels <= 1 ? 500 : Math.round((level * 1000) / (levels - 1));
}

/** BullMQ priority (1 = highest) of the same level. */
export function bullPriority(level: number, levels: number): number {
  return levels - level;
}

export function benchPipeline(levels: number, children: number): PipelineInput {
  const flat = Array.from({ length: levels }, (_, l) => ({
    key: `p${l}`,
    type: NOOP_TYPE,
    forEach: `$payload.p${l}`,
    priority: orchestratorPriority(l, levels),
    input: { i: '$item' },
  }));
  const kids = Array.from({ length: children }, (_, c) => ({
    key: `c${c}`,
    type: NOOP_TYPE,
    forEach: '$payload.items',
    input: { parent: '$item', child: c },
  }));
  return {
    name: 'bench',
    checkpoints: [],
    emits: [],
    rules: [
      { on: 'BENCH_FLAT', create: flat },
      {
        on: 'BENCH_FANIN',
        // Fan-outs over the same array pair up element by element: parent i waits for its own children.
        create: [...kids, { key: 'parent', type: NOOP_TYPE, forEach: '$payload.items', dependsOn: kids.map((k) => k.key), input: { parent: '$item' } }],
      },
      { on: 'BENCH_ONE', create: [{ key: 'one', type: NOOP_TYPE, input: { sentAt: '$payload.sentAt' } }] },
    ],
  };
}

export interface FlatWork {
  total: number;
  /** One event payload per chunk: `p<level>` arrays of item numbers. */
  events: Record<string, number[]>[];
  /** The same chunks as BullMQ addBulk arguments. */
  jobs: { name: string; data: { i: number }; opts: JobsOptions }[][];
}

export function flatWork(n: number, chunk: number, levels: number, seed: number): FlatWork {
  const random = rng(seed);
  const events: FlatWork['events'] = [];
  const jobs: FlatWork['jobs'] = [];
  for (let start = 0; start < n; start += chunk) {
    const payload: Record<string, number[]> = {};
    for (let l = 0; l < levels; l++) payload[`p${l}`] = [];
    const bulk: FlatWork['jobs'][number] = [];
    for (let i = start; i < Math.min(n, start + chunk); i++) {
      const level = Math.floor(random() * levels);
      payload[`p${level}`]!.push(i);
      bulk.push({ name: 'noop', data: { i }, opts: { priority: bullPriority(level, levels) } });
    }
    events.push(payload);
    jobs.push(bulk);
  }
  return { total: n, events, jobs };
}

export interface FanInWork {
  /** Every task or job: parents × (children + 1). */
  total: number;
  events: { items: number[] }[];
  flows: FlowJob[][];
}

export function fanInWork(parents: number, children: number, chunk: number, queueName: string): FanInWork {
  const events: FanInWork['events'] = [];
  const flows: FanInWork['flows'] = [];
  for (let start = 0; start < parents; start += chunk) {
    const items: number[] = [];
    const bulk: FlowJob[] = [];
    for (let p = start; p < Math.min(parents, start + chunk); p++) {
      items.push(p);
      bulk.push({
        name: 'parent',
        queueName,
        data: { parent: p },
        children: Array.from({ length: children }, (_, c) => ({ name: 'child', queueName, data: { parent: p, child: c } })),
      });
    }
    events.push({ items });
    flows.push(bulk);
  }
  return { total: parents * (children + 1), events, flows };
}
