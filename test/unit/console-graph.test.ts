import { describe, expect, it } from 'vitest';
import { GRAPH_TASK_LIMIT, layoutTaskGraph, nodeLabel, taskOrigin, type GraphTask } from '../../src/console/graph.js';
import { Pipeline } from '../../src/domain/pipeline.js';
import type { TaskGraph } from '../../src/ports/console.js';
import { VIDEO_PIPELINE } from '../../src/pipeline/video-pipeline.js';

/** The review console's task graph (src/console/graph.ts): dagre's layout of the tasks, and where a task type comes from. */
const task = (taskId: string, taskType: string, dependencies: string[] = [], extra: Partial<GraphTask> = {}): GraphTask => ({
  taskId,
  taskType,
  status: 'PENDING',
  dependencies,
  attempts: 0,
  origin: 'work',
  ...extra,
});

/** SHOT_PLANNED's tasks for `shots` shots: a keyframe and a QA per shot, the consistency check over every QA, the preview. */
function shotTasks(shots: number): GraphTask[] {
  const tasks: GraphTask[] = [];
  for (let i = 0; i < shots; i++) tasks.push(task(`key_${i}`, 'GENERATE_KEYFRAME', [], { shotIndex: i }));
  for (let i = 0; i < shots; i++) tasks.push(task(`qa_${i}`, 'RUN_VISUAL_QA', [`key_${i}`], { shotIndex: i }));
  tasks.push(task('consistency', 'CHECK_CONSISTENCY', Array.from({ length: shots }, (_, i) => `qa_${i}`)));
  tasks.push(task('preview', 'GENERATE_PREVIEW_VIDEO', ['consistency']));
  return tasks;
}

/** The point is on the node's rectangle (to a rounding). */
function onBorder(point: { x: number; y: number }, node: { x: number; y: number; width: number; height: number }): boolean {
  const dx = Math.abs(point.x - node.x) - node.width / 2;
  const dy = Math.abs(point.y - node.y) - node.height / 2;
  const near = (d: number) => Math.abs(d) < 1e-6;
  return (near(dx) && dy <= 1e-6) || (near(dy) && dx <= 1e-6);
}

const byId = (graph: TaskGraph) => new Map(graph.nodes.map((node) => [node.taskId, node]));

/** Every node's box and every edge point are finite numbers inside the graph's width and height. */
function expectInside(graph: TaskGraph): void {
  expect(Number.isFinite(graph.width) && graph.width > 0).toBe(true);
  expect(Number.isFinite(graph.height) && graph.height > 0).toBe(true);
  for (const node of graph.nodes) {
    for (const value of [node.x, node.y, node.width, node.height]) expect(Number.isFinite(value)).toBe(true);
    expect(node.x - node.width / 2).toBeGreaterThanOrEqual(0);
    expect(node.x + node.width / 2).toBeLessThanOrEqual(graph.width);
    expect(node.y - node.height / 2).toBeGreaterThanOrEqual(0);
    expect(node.y + node.height / 2).toBeLessThanOrEqual(graph.height);
  }
  for (const edge of graph.edges) {
    expect(edge.points.length).toBeGreaterThanOrEqual(2);
    for (const { x, y } of edge.points) {
      expect(Number.isFinite(x) && Number.isFinite(y)).toBe(true);
      expect(x).toBeGreaterThanOrEqual(0);
      expect(x).toBeLessThanOrEqual(graph.width);
      expect(y).toBeGreaterThanOrEqual(0);
      expect(y).toBeLessThanOrEqual(graph.height);
    }
  }
}

describe('layoutTaskGraph', () => {
  it('lays a per-shot fan-out out in one rank (one x, left to right), the shots top to bottom in order', () => {
    const graph = layoutTaskGraph(shotTasks(4));
    const nodes = byId(graph);
    const keys = [0, 1, 2, 3].map((i) => nodes.get(`key_${i}`)!);
    const qas = [0, 1, 2, 3].map((i) => nodes.get(`qa_${i}`)!);
    expect(new Set(keys.map((n) => n.x)).size).toBe(1);
    expect(new Set(qas.map((n) => n.x)).size).toBe(1);
    expect(qas[0]!.x).toBeGreaterThan(keys[0]!.x);
    expect(nodes.get('consistency')!.x).toBeGreaterThan(qas[0]!.x);
    expect(nodes.get('preview')!.x).toBeGreaterThan(nodes.get('consistency')!.x);
    for (const column of [keys, qas]) {
      const ys = column.map((n) => n.y);
      expect(ys).toEqual([...ys].sort((a, b) => a - b));
      expect(new Set(ys).size).toBe(4);
    }
    // Each keyframe sits level with its QA.
    keys.forEach((key, i) => expect(qas[i]!.y).toBe(key.y));
    expect(keys[2]).toMatchObject({ taskType: 'GENERATE_KEYFRAME', shotIndex: 2, status: 'PENDING', origin: 'work', attempts: 0 });
    expect(nodes.get('consistency')).not.toHaveProperty('shotIndex');
    expectInside(graph);
  });

  it('draws a fan-in as one edge from each dependency to the task that waits for them, along dagre\'s route', () => {
    const graph = layoutTaskGraph(shotTasks(3));
    const nodes = byId(graph);
    const into = graph.edges.filter((edge) => edge.to === 'consistency');
    expect(into.map((edge) => edge.from).sort()).toEqual(['qa_0', 'qa_1', 'qa_2']);
    expect(graph.edges).toHaveLength(3 + 3 + 1);
    const target = nodes.get('consistency')!;
    for (const edge of into) {
      const source = nodes.get(edge.from)!;
      const first = edge.points[0]!;
      const last = edge.points[edge.points.length - 1]!;
      // From the dependency's border (its right half) to the dependent's (its left half).
      expect(onBorder(first, source) && first.x > source.x).toBe(true);
      expect(onBorder(last, target) && last.x < target.x).toBe(true);
    }
    expectInside(graph);
  });

  it('ignores dependencies naming a task not in the list, a task itself, or one twice', () => {
    const graph = layoutTaskGraph([
      task('script', 'WRITE_SCRIPT'),
      task('plan', 'PLAN_SHOTS', ['script', 'script', 'task_gone', 'plan']),
      task('alone', 'COMPOSE_MUSIC', ['task_elsewhere']),
    ]);
    expect(graph.nodes.map((node) => node.taskId)).toEqual(['script', 'plan', 'alone']);
    expect(graph.edges.map(({ from, to }) => ({ from, to }))).toEqual([{ from: 'script', to: 'plan' }]);
    expectInside(graph);
  });

  it('keeps coordinates finite and inside the graph through a repair (EDIT_IMAGE, a new QA in the old one\'s place)', () => {
    const tasks = shotTasks(3);
    tasks.push(task('edit_1', 'EDIT_IMAGE', [], { shotIndex: 1, origin: 'repair' }));
    tasks.push(task('qa_1b', 'RUN_VISUAL_QA', ['edit_1'], { shotIndex: 1 }));
    // The consistency check now waits for the new QA instead of the old one (supersedes).
    const consistency = tasks.find((t) => t.taskId === 'consistency')!;
    consistency.dependencies = ['qa_0', 'qa_1b', 'qa_2'];
    tasks.push(task('preview_2', 'GENERATE_PREVIEW_VIDEO', ['consistency'], { origin: 'revision', attempts: 2, status: 'RUNNING' }));
    const graph = layoutTaskGraph(tasks);
    const nodes = byId(graph);
    expect(nodes.get('qa_1b')!.x).toBeGreaterThan(nodes.get('edit_1')!.x);
    expect(nodes.get('consistency')!.x).toBeGreaterThan(nodes.get('qa_1b')!.x);
    expect(nodes.get('preview_2')).toMatchObject({ origin: 'revision', attempts: 2, status: 'RUNNING' });
    expectInside(graph);
  });

  it('lays out a cycle all the same (the store cannot hold one), each route from its dependency', () => {
    const graph = layoutTaskGraph([task('a', 'X', ['b']), task('b', 'Y', ['a']), task('c', 'Z', ['b'])]);
    const nodes = byId(graph);
    for (const edge of graph.edges) {
      expect(onBorder(edge.points[0]!, nodes.get(edge.from)!)).toBe(true);
      expect(onBorder(edge.points[edge.points.length - 1]!, nodes.get(edge.to)!)).toBe(true);
    }
    expectInside(graph);
  });

  it('is deterministic: the same tasks in the same order give the same layout', () => {
    const tasks = shotTasks(12);
    expect(layoutTaskGraph(tasks)).toEqual(layoutTaskGraph(structuredClone(tasks)));
  });

  it('sizes a node for its label, the task type and the shot', () => {
    expect(nodeLabel({ taskType: 'GENERATE_KEYFRAME', shotIndex: 0 })).toBe('GENERATE_KEYFRAME #1');
    expect(nodeLabel({ taskType: 'MIX_AUDIO' })).toBe('MIX_AUDIO');
    const graph = layoutTaskGraph([
      task('short', 'MIX_AUDIO'),
      task('long', 'GENERATE_SOUND_EFFECTS_FOR_EVERY_SCENE_OF_THE_FILM', [], { shotIndex: 11 }),
    ]);
    const nodes = byId(graph);
    expect(nodes.get('long')!.width).toBeGreaterThan(nodes.get('short')!.width);
    expect(nodes.get('long')!.height).toBe(nodes.get('short')!.height);
  });

  it(`lays out the first ${GRAPH_TASK_LIMIT} tasks by creation above that, and says how many it left out`, () => {
    const tasks = shotTasks(225); // 452 tasks
    const graph = layoutTaskGraph(tasks);
    expect(graph.nodes).toHaveLength(GRAPH_TASK_LIMIT);
    expect(graph.truncated).toBe(tasks.length - GRAPH_TASK_LIMIT);
    expect(graph.nodes.map((node) => node.taskId)).toEqual(tasks.slice(0, GRAPH_TASK_LIMIT).map((t) => t.taskId));
    const laid = new Set(graph.nodes.map((node) => node.taskId));
    for (const edge of graph.edges) expect(laid.has(edge.from) && laid.has(edge.to)).toBe(true);
    expectInside(graph);

    const whole = layoutTaskGraph(shotTasks(3));
    expect(whole).not.toHaveProperty('truncated');
    expect(layoutTaskGraph(shotTasks(3), 4)).toMatchObject({ truncated: 4 });
  });

  it('answers an empty graph for no tasks', () => {
    expect(layoutTaskGraph([])).toEqual({ width: 0, height: 0, nodes: [], edges: [] });
  });
});

describe('taskOrigin', () => {
  const parsed = Pipeline.parse(VIDEO_PIPELINE);

  it.each([
    ['REVISE_SCRIPT', 'revision'], // created by SCENE_WRITTEN's onReject only
    ['REVISE_SHOTS', 'revision'],
    ['EDIT_IMAGE', 'repair'], // VISUAL_QA_FAILED (raised only when passed is false), and a preview rejection
    ['GENERATE_KEYFRAME', 'work'],
    ['WRITE_SCRIPT', 'work'], // PROJECT_CREATED: raised from outside
    ['RUN_VISUAL_QA', 'work'], // SHOT_PLANNED's too, not only the repair's
    ['GENERATE_PREVIEW_VIDEO', 'work'], // SHOT_PLANNED's too, not only a rejection's
    ['GENERATE_FINAL_VIDEO', 'work'],
    ['NOT_IN_THE_PIPELINE', 'work'],
  ] as const)('%s is %s', (taskType, origin) => {
    expect(taskOrigin(taskType, VIDEO_PIPELINE)).toBe(origin);
    expect(taskOrigin(taskType, parsed)).toBe(origin);
  });

  it('is repair only when every emits entry raising the rule\'s event has a when', () => {
    const pipeline = {
      rules: [{ on: 'CHECKED', create: [{ key: 'fix', type: 'FIX_IT' }] }],
      emits: [
        { taskTypes: ['CHECK'], event: 'CHECKED', when: { path: '$output.ok', equals: false } },
        { taskTypes: ['OTHER_CHECK'], event: 'CHECKED' },
      ],
    };
    expect(taskOrigin('FIX_IT', pipeline)).toBe('work');
    expect(taskOrigin('FIX_IT', { ...pipeline, emits: pipeline.emits.slice(0, 1) })).toBe('repair');
  });
});

describe('layoutTaskGraph of a graph whose states changed', () => {
  it('keeps the layout of the same structure, with the states now', () => {
    const base = (status: 'PENDING' | 'COMPLETED') => [
      { taskId: 'a', taskType: 'WRITE_SCRIPT', status, dependencies: [], attempts: 1, origin: 'work' as const },
      { taskId: 'b', taskType: 'PLAN_SHOTS', status: 'PENDING' as const, dependencies: ['a'], attempts: 0, origin: 'work' as const },
    ];
    const before = layoutTaskGraph(base('PENDING'));
    const after = layoutTaskGraph(base('COMPLETED'));
    expect(after.nodes.map((n) => [n.x, n.y])).toEqual(before.nodes.map((n) => [n.x, n.y]));
    expect(after.nodes[0]!.status).toBe('COMPLETED');
    expect(before.nodes[0]!.status).toBe('PENDING');
    // A new task is a new structure: laid out again, with it.
    const grown = layoutTaskGraph([...base('COMPLETED'), { taskId: 'c', taskType: 'GENERATE_KEYFRAME', status: 'READY', dependencies: ['b'], attempts: 0, origin: 'work', shotIndex: 0 }]);
    expect(grown.nodes).toHaveLength(3);
    expect(grown.edges.map((e) => `${e.from}>${e.to}`)).toEqual(['a>b', 'b>c']);
    // What one caller does to its graph does not reach the next one's.
    after.edges[0]!.points[0]!.x = -1;
    expect(layoutTaskGraph(base('COMPLETED')).edges[0]!.points[0]!.x).not.toBe(-1);
  });
});
