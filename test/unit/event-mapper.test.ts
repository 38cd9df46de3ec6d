import { describe, expect, it } from 'vitest';
import { TaskTypeCatalog } from '../../src/domain/task-types.js';
import { EventMapper } from '../../src/pipeline/event-mapper.js';
import { VIDEO_PIPELINE } from '../../src/pipeline/video-pipeline.js';
import { FanOutLimitError, ValidationError } from '../../src/errors.js';
import type { PipelineEvent } from '../../src/domain/pipeline.js';

const catalog = new TaskTypeCatalog();
const mapper = new EventMapper(VIDEO_PIPELINE, catalog);
const event = (type: string, payload: Record<string, unknown>): PipelineEvent => ({
  id: `evt-${type}`,
  type,
  projectId: 'prj_1',
  payload,
  occurredAt: new Date(0),
});

describe('EventMapper with the video pipeline', () => {
  it('PROJECT_CREATED creates WRITE_SCRIPT from the brief', () => {
    const tasks = mapper.mapEventToTasks(event('PROJECT_CREATED', { title: 'Tide', brief: 'a lighthouse keeper', budget: 50 }));
    expect(tasks).toHaveLength(1);
    expect(tasks[0]).toMatchObject({ taskType: 'WRITE_SCRIPT', projectId: 'prj_1', input: { title: 'Tide', brief: 'a lighthouse keeper' }, dependencies: [] });
  });

  it('SHOT_PLANNED fans out per shot and fans in to consistency and preview', () => {
    const shots = [{ prompt: 'a' }, { prompt: 'b' }, { prompt: 'c' }];
    const tasks = mapper.mapEventToTasks(event('SHOT_PLANNED', { shots }));
    const of = (type: string) => tasks.filter((t) => t.taskType === type);
    const keyframes = of('GENERATE_KEYFRAME');
    const qas = of('RUN_VISUAL_QA');
    expect(keyframes.map((k) => k.input)).toEqual(shots.map((shot, shotIndex) => ({ shot, shotIndex })));
    expect(qas.map((q) => q.dependencies)).toEqual(keyframes.map((k) => [k.taskId]));
    const [consistency] = of('CHECK_CONSISTENCY');
    expect(consistency!.dependencies).toEqual(qas.map((q) => q.taskId));
    expect(of('GENERATE_PREVIEW_VIDEO')[0]!.dependencies).toEqual([consistency!.taskId]);
    expect(new Set(tasks.map((t) => t.taskId)).size).toBe(tasks.length);
  });

  it('refuses an event whose payload breaks the data contract', () => {
    expect(() => mapper.mapEventToTasks(event('SHOT_PLANNED', { shots: 'three' }))).toThrow(ValidationError);
  });

  it('knows the four default checkpoints and which event completes the project', () => {
    expect(['SCENE_WRITTEN', 'SHOT_PLANNED', 'PREVIEW_VIDEO_READY', 'FINAL_VIDEO_READY'].every((e) => mapper.isCheckpoint(e))).toBe(true);
    expect(mapper.isCheckpoint('PROJECT_CREATED')).toBe(false);
    expect(mapper.completesProject('FINAL_VIDEO_READY')).toBe(true);
  });

  it('completed tasks raise the next events, a failed QA its repair', () => {
    const done = (taskType: string, output: Record<string, unknown>, input: Record<string, unknown> = {}) =>
      mapper.eventsForCompletion({ taskId: 't1', projectId: 'prj_1', taskType, input, output });
    expect(done('REVISE_SCRIPT', { script: 'S' })).toEqual([{ type: 'SCENE_WRITTEN', payload: { script: 'S' } }]);
    expect(done('PLAN_SHOTS', { shots: [1, 2] })).toEqual([{ type: 'SHOT_PLANNED', payload: { shots: [1, 2] } }]);
    expect(done('RUN_VISUAL_QA', { passed: true })).toEqual([]);
    const [failed] = done('RUN_VISUAL_QA', { passed: false, issues: ['extra finger'] }, { shotIndex: 2, shot: { p: 1 } });
    expect(failed).toEqual({ type: 'VISUAL_QA_FAILED', payload: { qaTaskId: 't1', shotIndex: 2, shot: { p: 1 }, issues: ['extra finger'] } });
    const repair = mapper.mapEventToTasks(event('VISUAL_QA_FAILED', failed!.payload));
    expect(repair.map((t) => t.taskType)).toEqual(['EDIT_IMAGE', 'RUN_VISUAL_QA']);
    expect(repair[1]).toMatchObject({ supersedes: 't1', dependencies: [repair[0]!.taskId] });
  });

  it('a rejection creates the revision carrying the comment', () => {
    const [revise] = mapper.mapRejection(event('SCENE_WRITTEN', { script: 'S1' }), { comment: 'darker ending' });
    expect(revise).toMatchObject({ taskType: 'REVISE_SCRIPT', input: { script: 'S1', comment: 'darker ending' } });
    const preview = mapper.mapRejection(event('PREVIEW_VIDEO_READY', { shots: [0, 1, 2] }), { comment: 'fix 0 and 2', shots: [0, 2] });
    expect(preview.map((t) => t.taskType)).toEqual(['EDIT_IMAGE', 'EDIT_IMAGE', 'GENERATE_PREVIEW_VIDEO']);
    expect(preview[2]!.dependencies).toEqual([preview[0]!.taskId, preview[1]!.taskId]);
  });

  it('refuses an invalid pipeline with the reasons', () => {
    expect(() => new EventMapper({ ...VIDEO_PIPELINE, rules: [{ on: 'X', create: [{ key: 'a', type: 'NOT_A_TYPE' }] }] }, catalog)).toThrow(/unknown task type NOT_A_TYPE/);
    expect(() => new EventMapper({ ...VIDEO_PIPELINE, rules: [{ on: 'X', create: [{ key: 'a', type: 'WRITE_SCRIPT', dependsOn: ['b'] }] }] }, catalog)).toThrow(/b is not an earlier key/);
  });
});

describe('EventMapper: a preview rejection and the fan-out limit', () => {
  const preview = event('PREVIEW_VIDEO_READY', { preview: 'p.mp4', shots: [{ p: 'a' }, { p: 'b' }, { p: 'c' }] });

  it('a preview rejection without shots redoes every shot, then the preview', () => {
    const tasks = mapper.mapRejection(preview, { comment: 'warmer' });
    expect(tasks.map((t) => t.taskType)).toEqual(['EDIT_IMAGE', 'EDIT_IMAGE', 'EDIT_IMAGE', 'GENERATE_PREVIEW_VIDEO']);
    expect(tasks.slice(0, 3).map((t) => t.input)).toEqual([0, 1, 2].map((shotIndex) => ({ shotIndex, comment: 'warmer' })));
    expect(mapper.shotCount(preview)).toBe(3);
    expect(mapper.shotCount(event('SCENE_WRITTEN', { script: 'S' }))).toBeNull();
  });

  it('refuses shots a preview does not have, a shot named twice, and shots at a checkpoint that names none', () => {
    expect(() => mapper.mapRejection(preview, { shots: [3] })).toThrow(/no such shot: shots: 3 is not among the 3 shots \(indexes 0 to 2\)/);
    expect(() => mapper.mapRejection(preview, { shots: [1, 1] })).toThrow(/a shot named twice/);
    expect(() => mapper.mapRejection(event('SCENE_WRITTEN', { script: 'S' }), { shots: [0] })).toThrow(/names no shots.*only at PREVIEW_VIDEO_READY/);
    // A preview whose payload has no shot list: nothing to name, the preview is redone.
    expect(mapper.mapRejection(event('PREVIEW_VIDEO_READY', { preview: 'p.mp4' }), {}).map((t) => t.taskType)).toEqual(['GENERATE_PREVIEW_VIDEO']);
  });

  it('an event over MAX_TASKS_PER_EVENT is refused before any task is planned; one at the limit is planned', () => {
    const limited = new EventMapper(VIDEO_PIPELINE, catalog, { maxTasksPerEvent: 10 });
    const shots = (n: number) => event('SHOT_PLANNED', { shots: Array.from({ length: n }, (_, i) => i) });
    expect(limited.mapEventToTasks(shots(4))).toHaveLength(10);
    const refused = (() => {
      try {
        limited.mapEventToTasks(shots(5));
      } catch (err) {
        return err;
      }
    })();
    expect(refused).toBeInstanceOf(FanOutLimitError);
    expect(refused).toBeInstanceOf(ValidationError);
    expect(refused).toMatchObject({ tasks: 12, limit: 10, message: 'event SHOT_PLANNED (evt-SHOT_PLANNED) would create 12 tasks, more than MAX_TASKS_PER_EVENT (10): refused, nothing created' });
    expect(() => limited.mapRejection(event('PREVIEW_VIDEO_READY', { shots: Array.from({ length: 10 }, (_, i) => i) }), {})).toThrow(FanOutLimitError);
  });

  it('refuses rejectionShots at an event that is not a checkpoint', () => {
    expect(() => new EventMapper({ ...VIDEO_PIPELINE, rejectionShots: { SHOT_PLANNED: '$payload.shots', NOT_ONE: '$payload.x' } }, catalog)).toThrow(/rejectionShots.NOT_ONE: NOT_ONE is not a checkpoint/);
  });
});
