import { describe, expect, it } from 'vitest';
import { formatApproval, shotMedia, type ReviewedApproval } from '../../src/views/checkpoint.js';
import { formatTasks, graphOrder, progress } from '../../src/views/lists.js';
import { table } from '../../src/views/table.js';
import { artifactsOf } from '../../src/queries/queries.js';
import type { TaskView } from '../../src/domain/messages.js';

/** The operator's views (src/views: the CLI's human output), on the shapes the orchestrator answers with. */
const approval = (summary: unknown, extra: Partial<ReviewedApproval> = {}): ReviewedApproval => ({
  approvalId: 'apr_1',
  checkpoint: 'SHOT_PLANNED',
  requestedAt: '2026-12-03T07:00:00.000Z',
  expiresAt: null,
  summary,
  ...extra,
});

const task = (taskId: string, overrides: Partial<TaskView> = {}): TaskView => ({
  taskId,
  taskType: 'GENERATE_KEYFRAME',
  agent: 'image_generator',
  status: 'COMPLETED',
  priority: 600,
  dependencies: [],
  dependencyCount: 0,
  attempts: 1,
  maxAttempts: 3,
  estimatedCost: 0.08,
  actualCost: 0.07,
  lastError: null,
  artifacts: {},
  createdAt: '2026-12-03T07:00:00.000Z',
  startedAt: null,
  completedAt: null,
  ...overrides,
});

describe('review', () => {
  it('lays out a shot list whole or bounded ({ count, first }), with each shot\'s image', () => {
    const shots = [0, 1, 2].map((index) => ({ index, prompt: `shot ${index + 1}`, durationSeconds: 4 }));
    const media = { 0: { image: 's3://frames/a.png' }, 2: { image: 's3://frames/c.png' } };
    const whole = formatApproval('prj_1', approval({ shots }), media);
    expect(whole).toContain('  shots (3)\n    INDEX  PROMPT  DURATIONSECONDS  IMAGE\n        0  shot 1                4  s3://frames/a.png\n        1  shot 2                4  —\n        2  shot 3                4  s3://frames/c.png');
    // The bounded form another orchestrator version sends: the count, the first elements.
    const bounded = formatApproval('prj_1', approval({ shots: { count: 100, first: shots } }, { counts: { tasks: 200, shots: 100 } }), media);
    expect(bounded).toContain('  shots (100) — the first 3 shown\n    INDEX  PROMPT');
    expect(bounded).toContain('200 tasks wait for the decision');
    expect(formatApproval('prj_1', approval({ shots: { count: 100 } }), null)).toContain('  shots (100)');
    // A rejection names shots where the request counts them (or, from an older orchestrator, at the preview).
    expect(bounded).toContain('--comment "what to change" [--shots 0,2]  (shots 0 to 99; without --shots, every shot is redone)');
    expect(whole).not.toContain('--shots');
    expect(formatApproval('prj_1', approval({ shots }, { checkpoint: 'PREVIEW_VIDEO_READY' }), null)).toContain('(shots 0 to 2;');
    expect(formatApproval('prj_1', approval({ shots }, { checkpoint: 'PREVIEW_VIDEO_READY', counts: { tasks: 5 } }), null)).not.toContain('--shots');
  });

  it('shows a script as text, URIs as they are, and anything else without failing', () => {
    const text = formatApproval('prj_1', approval({ script: `${'word '.repeat(30)}end… (12000 characters)`, preview: 's3://renders/p.mp4', nested: { a: 1, deeper: { b: [1, 2] } }, flag: true, none: null }, { checkpoint: 'PREVIEW_VIDEO_READY' }), null);
    expect(text).toMatch(/^ {2}script\n {4}word word/m);
    expect(text).toContain('end… (12000 characters)');
    expect(text).toContain('  preview  s3://renders/p.mp4');
    expect(text).toContain('  nested\n    a  1\n    deeper\n      b (2): 1, 2');
    expect(text).toContain('  flag  true');
    expect(text).toContain('  none  —');
    expect(text).toContain('orchestrator approve prj_1 --approval apr_1');
    expect(formatApproval('prj_1', approval(undefined), null)).toContain('(the request carries nothing to show)');
  });

  it('takes the latest completed media per shot', () => {
    expect(
      shotMedia([
        task('t1', { shotIndex: 0, artifacts: { image: 's3://old.png' }, completedAt: '2026-12-03T07:00:01.000Z' }),
        task('t2', { shotIndex: 0, artifacts: { image: 's3://edited.png' }, completedAt: '2026-12-03T07:00:05.000Z' }),
        task('t3', { shotIndex: 1, artifacts: { image: 's3://running.png' }, status: 'RUNNING' }),
        task('t4', { artifacts: { video: 's3://v.mp4' } }),
      ]),
    ).toEqual({ 0: { image: 's3://edited.png' } });
  });
});

describe('tasks', () => {
  it('orders the graph so each task follows its dependencies, shots in order, and numbers them', () => {
    const page = [
      task('qa1', { taskType: 'RUN_VISUAL_QA', shotIndex: 1, dependencies: ['kf1'], dependencyCount: 1 }),
      task('kf1', { shotIndex: 1 }),
      task('cc', { taskType: 'CHECK_CONSISTENCY', dependencies: ['qa0', 'qa1', 'tsk_elsewhere'], dependencyCount: 4 }),
      task('kf0', { shotIndex: 0 }),
      task('qa0', { taskType: 'RUN_VISUAL_QA', shotIndex: 0, dependencies: ['kf0'], dependencyCount: 1 }),
    ];
    expect(graphOrder(page).map((t) => t.taskId)).toEqual(['kf0', 'qa0', 'kf1', 'qa1', 'cc']);
    const lines = formatTasks(page).split('\n');
    expect(lines[5]).toMatch(/^#5 {6}└ CHECK_CONSISTENCY +COMPLETED .* #2,#4,tsk_elsewhere,\+1 more +cc$/);
    expect(formatTasks([])).toBe('no tasks');
  });

  it('progress counts the completed tasks of all', () => {
    expect(progress({ COMPLETED: 3, RUNNING: 1, PENDING: 6 })).toBe('███░░░░░░░ 3/10');
    expect(progress({})).toBe('░░░░░░░░░░ 0/0');
  });
});

describe('table and artifacts', () => {
  it('aligns columns, right-aligns numbers, cuts long cells but the last', () => {
    expect(table([{ header: 'name', max: 5 }, { header: 'n', right: true }, { header: 'note' }], [['abcdefgh', '1', 'a long note that runs on'], ['x', '100', '']])).toBe(
      ['NAME     N  NOTE', 'abcd…    1  a long note that runs on', 'x      100'].join('\n'),
    );
  });

  it('finds the URIs among an output\'s top-level values', () => {
    expect(artifactsOf({ image: 's3://frames/a.png', shotIndex: 0, note: 'not a uri', video: 'https://cdn/x.mp4', nested: { image: 's3://deep.png' } })).toEqual({ image: 's3://frames/a.png', video: 'https://cdn/x.mp4' });
    expect(artifactsOf(null)).toEqual({});
  });
});
