import { createHash } from 'node:crypto';
import * as dagre from '@dagrejs/dagre';
import type { PipelineInput } from '../domain/pipeline.js';
import type { TaskStatus } from '../domain/task.js';
import type { GraphEdge, GraphNode, TaskGraph, TaskOrigin } from '../ports/console.js';

/**
 * The project page's task graph: the tasks laid out left to right by @dagrejs/dagre, each
 * dependency an edge to the task that waits for it. Pure: the same tasks in the same order
 * give the same layout.
 */

/** What the layout needs of a task. */
export interface GraphTask {
  taskId: string;
  taskType: string;
  status: TaskStatus;
  dependencies: readonly string[];
  attempts: number;
  shotIndex?: number;
  origin: TaskOrigin;
  /** The tasks whose raised event created this one (lineage.ts): drawn as event edges. */
  triggers?: readonly string[];
}

/** The most tasks one graph lays out (dagre's ordering grows faster than linearly). */
export const GRAPH_TASK_LIMIT = 400;

/** A node's size: room for its label (task type and shot) and a second line (status, attempts). */
const CHAR_WIDTH = 7.5;
const NODE_PADDING = 12;
const NODE_MIN_WIDTH = 120;
const NODE_HEIGHT = 48;

const LAYOUT = { rankdir: 'LR', nodesep: 16, ranksep: 56, edgesep: 8, marginx: 16, marginy: 16 } as const;

/**
 * The part of dagre's graph this module uses. @dagrejs/dagre 3.1's declarations import
 * their own files without extensions, which NodeNext resolution does not follow: its
 * exports type as `any` (hidden by skipLibCheck). These types put the checks back.
 */
interface Point {
  x: number;
  y: number;
}
interface LayoutGraph {
  setGraph(label: typeof LAYOUT): unknown;
  setDefaultEdgeLabel(label: () => object): unknown;
  setNode(id: string, label: { width: number; height: number }): unknown;
  setEdge(from: string, to: string): unknown;
  graph(): { width?: number; height?: number };
  node(id: string): { x?: number; y?: number; width: number; height: number };
  edge(from: string, to: string): { points?: Point[] };
}
const { Graph, layout } = dagre as unknown as {
  Graph: new () => LayoutGraph;
  layout: (graph: LayoutGraph, options: { constraints: { left: string; right: string }[] }) => void;
};

/** The node's label: the task type, and its shot when it has one (`GENERATE_KEYFRAME #2`, shots counted from 1). */
export function nodeLabel(task: Pick<GraphTask, 'taskType' | 'shotIndex'>): string {
  return task.shotIndex === undefined ? task.taskType : `${task.taskType} #${task.shotIndex + 1}`;
}

/**
 * Lays the tasks out, given in creation order (created_at, then task id, as the task
 * store lists them). Dependencies naming a task not in the list are left out; above
 * `limit` tasks, the first `limit` are laid out and `truncated` says how many were not.
 */
export function layoutTaskGraph(tasks: readonly GraphTask[], limit: number = GRAPH_TASK_LIMIT): TaskGraph {
  const kept = new Map<string, GraphTask>();
  for (const task of tasks) {
    if (kept.size >= limit) break;
    if (!kept.has(task.taskId)) kept.set(task.taskId, task);
  }
  const truncated = countLeftOut(tasks, kept);
  const laid = cachedLayout(kept);
  const nodes: GraphNode[] = [...kept.values()].map((task) => {
    const at = laid.nodes.get(task.taskId)!;
    return {
      taskId: task.taskId,
      taskType: task.taskType,
      status: task.status,
      origin: task.origin,
      ...(task.shotIndex === undefined ? {} : { shotIndex: task.shotIndex }),
      attempts: task.attempts,
      ...at,
    };
  });
  return {
    width: laid.width,
    height: laid.height,
    nodes,
    edges: laid.edges.map((e) => ({ ...e, points: e.points.map((p) => ({ ...p })) })),
    ...(truncated > 0 ? { truncated } : {}),
  };
}

/** Where the layout put each node and edge: what depends only on the graph's structure, not on the states. */
interface Layout {
  nodes: Map<string, { x: number; y: number; width: number; height: number }>;
  edges: GraphEdge[];
  width: number;
  height: number;
}

/** Layouts of the latest structures: a page re-read after a transition lays out nothing new (dagre takes ~100 ms for 400 tasks). */
const LAYOUTS = new Map<string, Layout>();
const LAYOUTS_KEPT = 64;

function cachedLayout(kept: ReadonlyMap<string, GraphTask>): Layout {
  const key = createHash('sha256');
  for (const t of kept.values()) key.update(`${t.taskId}\u0001${nodeLabel(t)}\u0001${t.dependencies.join(',')}\u0001${(t.triggers ?? []).join(',')}\u0002`);
  const digest = key.digest('base64');
  const hit = LAYOUTS.get(digest);
  if (hit) {
    // The most recently used last: the oldest is the one dropped.
    LAYOUTS.delete(digest);
    LAYOUTS.set(digest, hit);
    return hit;
  }
  const laid = computeLayout(kept);
  LAYOUTS.set(digest, laid);
  if (LAYOUTS.size > LAYOUTS_KEPT) LAYOUTS.delete(LAYOUTS.keys().next().value!);
  return laid;
}

function computeLayout(kept: ReadonlyMap<string, GraphTask>): Layout {
  const g = new Graph();
  g.setGraph({ ...LAYOUT });
  g.setDefaultEdgeLabel(() => ({}));
  for (const task of kept.values()) {
    g.setNode(task.taskId, { width: nodeWidth(task), height: NODE_HEIGHT });
  }
  const edges: { from: string; to: string; kind: GraphEdge['kind'] }[] = [];
  const linked = new Set<string>();
  const link = (from: string, to: string, kind: GraphEdge['kind']): void => {
    if (from === to || !kept.has(from) || linked.has(`${from}\u0000${to}`)) return;
    linked.add(`${from}\u0000${to}`);
    g.setEdge(from, to);
    edges.push({ from, to, kind });
  };
  for (const task of kept.values()) {
    for (const dep of task.dependencies) link(dep, task.taskId, 'dependency');
    for (const trigger of task.triggers ?? []) link(trigger, task.taskId, 'event');
  }
  if (kept.size > 0) layout(g, { constraints: shotOrder(kept.values()) });
  const nodes = new Map<string, { x: number; y: number; width: number; height: number }>();
  for (const task of kept.values()) {
    const at = g.node(task.taskId);
    nodes.set(task.taskId, { x: at.x ?? 0, y: at.y ?? 0, width: at.width, height: at.height });
  }
  const size = g.graph();
  return {
    nodes,
    edges: edges.map(({ from, to, kind }) => ({ from, to, kind, points: (g.edge(from, to).points ?? []).map(({ x, y }) => ({ x, y })) })),
    width: kept.size > 0 ? (size.width ?? 0) : 0,
    height: kept.size > 0 ? (size.height ?? 0) : 0,
  };
}

/**
 * Shots top to bottom: the tasks of one type with a shot, ordered by shot (then creation),
 * each placed above the next where dagre puts them in the same rank.
 */
function shotOrder(tasks: Iterable<GraphTask>): { left: string; right: string }[] {
  const byType = new Map<string, GraphTask[]>();
  for (const task of tasks) {
    if (task.shotIndex === undefined) continue;
    const group = byType.get(task.taskType) ?? [];
    group.push(task);
    byType.set(task.taskType, group);
  }
  const constraints: { left: string; right: string }[] = [];
  for (const group of byType.values()) {
    // A stable sort: tasks of the same shot stay in creation order.
    const sorted = [...group].sort((a, b) => (a.shotIndex ?? 0) - (b.shotIndex ?? 0));
    for (let i = 1; i < sorted.length; i++) constraints.push({ left: sorted[i - 1]!.taskId, right: sorted[i]!.taskId });
  }
  return constraints;
}

function nodeWidth(task: GraphTask): number {
  return Math.max(NODE_MIN_WIDTH, Math.ceil(nodeLabel(task).length * CHAR_WIDTH) + 2 * NODE_PADDING);
}

/** The tasks not laid out: the distinct ids beyond the kept ones. */
function countLeftOut(tasks: readonly GraphTask[], kept: ReadonlyMap<string, GraphTask>): number {
  const left = new Set<string>();
  for (const task of tasks) if (!kept.has(task.taskId)) left.add(task.taskId);
  return left.size;
}

/**
 * How tasks of a type come to be, read from the pipeline:
 * - 'revision': only a rejection creates it (it is in `onReject` and in no rule);
 * - 'repair': every rule creating it is on an event that is only raised conditionally
 *   (each `emits` entry raising it has a `when`, as VISUAL_QA_FAILED), whether or not a
 *   rejection creates it as well;
 * - 'work': otherwise (a rule on an event raised unconditionally or from outside, such as
 *   PROJECT_CREATED; or a type the pipeline does not create).
 *
 * A type-level answer: a RUN_VISUAL_QA created by the repair rule (after EDIT_IMAGE) is
 * 'work' here, as is a GENERATE_PREVIEW_VIDEO created by a preview rejection.
 */
export function taskOrigin(taskType: string, pipeline: Pick<PipelineInput, 'rules' | 'emits' | 'onReject'>): TaskOrigin {
  const creators = pipeline.rules.filter((rule) => (rule.create ?? []).some((t) => t.type === taskType));
  if (creators.length === 0) {
    const onReject = Object.values(pipeline.onReject ?? {});
    return onReject.some((templates) => templates.some((t) => t.type === taskType)) ? 'revision' : 'work';
  }
  const conditional = (event: string): boolean => {
    const raising = pipeline.emits.filter((emit) => emit.event === event);
    return raising.length > 0 && raising.every((emit) => emit.when !== undefined);
  };
  return creators.every((rule) => conditional(rule.on)) ? 'repair' : 'work';
}
