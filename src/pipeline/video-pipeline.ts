import type { PipelineInput } from '../domain/pipeline.js';

/**
 * The default AI video pipeline.
 *
 *   PROJECT_CREATED ──▶ WRITE_SCRIPT ──▶ SCENE_WRITTEN ✋ ──▶ PLAN_SHOTS ──▶ SHOT_PLANNED ✋
 *   SHOT_PLANNED ──▶ per shot: GENERATE_KEYFRAME ──▶ RUN_VISUAL_QA ─┐
 *                    CHARACTER/voice/music work in parallel          ├─▶ CHECK_CONSISTENCY ──▶ GENERATE_PREVIEW_VIDEO
 *   PREVIEW_VIDEO_READY ✋ ──▶ voice-over, music, effects ──▶ MIX_AUDIO ──▶ GENERATE_FINAL_VIDEO
 *   FINAL_VIDEO_READY ✋ ──▶ project completed
 *
 * ✋ = approval checkpoint. A failed visual QA (output `passed: false`) raises
 * VISUAL_QA_FAILED: EDIT_IMAGE for that shot, then a new QA that takes the old one's place.
 */
export const VIDEO_PIPELINE: PipelineInput = {
  name: 'video',
  checkpoints: ['SCENE_WRITTEN', 'SHOT_PLANNED', 'PREVIEW_VIDEO_READY', 'FINAL_VIDEO_READY'],
  rules: [
    {
      on: 'PROJECT_CREATED',
      create: [{ key: 'script', type: 'WRITE_SCRIPT', input: { title: '$payload.title', brief: '$payload.brief' } }],
    },
    {
      on: 'SCENE_WRITTEN',
      create: [{ key: 'plan', type: 'PLAN_SHOTS', input: { script: '$payload.script' } }],
    },
    {
      on: 'SHOT_PLANNED',
      create: [
        { key: 'keyframe', type: 'GENERATE_KEYFRAME', forEach: '$payload.shots', input: { shot: '$item', shotIndex: '$index' } },
        { key: 'qa', type: 'RUN_VISUAL_QA', forEach: '$payload.shots', dependsOn: ['keyframe'], input: { shot: '$item', shotIndex: '$index' } },
        { key: 'consistency', type: 'CHECK_CONSISTENCY', dependsOn: ['qa'], input: { shots: '$payload.shots' } },
        { key: 'preview', type: 'GENERATE_PREVIEW_VIDEO', dependsOn: ['consistency'], input: { shots: '$payload.shots' } },
      ],
    },
    {
      on: 'VISUAL_QA_FAILED',
      create: [
        { key: 'edit', type: 'EDIT_IMAGE', input: { shotIndex: '$payload.shotIndex', shot: '$payload.shot', issues: '$payload.issues' } },
        {
          key: 'qa',
          type: 'RUN_VISUAL_QA',
          dependsOn: ['edit'],
          input: { shotIndex: '$payload.shotIndex', shot: '$payload.shot' },
          supersedes: '$payload.qaTaskId',
        },
      ],
    },
    {
      on: 'PREVIEW_VIDEO_READY',
      create: [
        { key: 'narration', type: 'GENERATE_VOICEOVER', input: { preview: '$payload.preview' } },
        { key: 'music', type: 'COMPOSE_MUSIC', input: { preview: '$payload.preview' } },
        { key: 'sfx', type: 'GENERATE_SOUND_EFFECTS', input: { preview: '$payload.preview' } },
        { key: 'mix', type: 'MIX_AUDIO', dependsOn: ['narration', 'music', 'sfx'] },
        { key: 'final', type: 'GENERATE_FINAL_VIDEO', dependsOn: ['mix'], input: { preview: '$payload.preview' } },
      ],
    },
    { on: 'FINAL_VIDEO_READY', completesProject: true },
  ],
  emits: [
    { taskTypes: ['WRITE_SCRIPT', 'REVISE_SCRIPT'], event: 'SCENE_WRITTEN', payload: { script: '$output.script' } },
    { taskTypes: ['PLAN_SHOTS', 'REVISE_SHOTS'], event: 'SHOT_PLANNED', payload: { shots: '$output.shots' } },
    {
      taskTypes: ['RUN_VISUAL_QA'],
      event: 'VISUAL_QA_FAILED',
      when: { path: '$output.passed', equals: false },
      payload: { qaTaskId: '$task.id', shotIndex: '$task.input.shotIndex', shot: '$task.input.shot', issues: '$output.issues' },
    },
    { taskTypes: ['GENERATE_PREVIEW_VIDEO'], event: 'PREVIEW_VIDEO_READY', payload: { preview: '$output.video', shots: '$task.input.shots' } },
    { taskTypes: ['GENERATE_FINAL_VIDEO'], event: 'FINAL_VIDEO_READY', payload: { video: '$output.video' } },
  ],
  onReject: {
    SCENE_WRITTEN: [{ key: 'revise', type: 'REVISE_SCRIPT', input: { script: '$payload.script', comment: '$comment' } }],
    SHOT_PLANNED: [{ key: 'revise', type: 'REVISE_SHOTS', input: { shots: '$payload.shots', comment: '$comment' } }],
    PREVIEW_VIDEO_READY: [
      { key: 'edit', type: 'EDIT_IMAGE', forEach: '$decision.shots', input: { shotIndex: '$item', comment: '$comment' } },
      { key: 'preview', type: 'GENERATE_PREVIEW_VIDEO', dependsOn: ['edit'], input: { shots: '$payload.shots', comment: '$comment' } },
    ],
    FINAL_VIDEO_READY: [{ key: 'final', type: 'GENERATE_FINAL_VIDEO', input: { previous: '$payload.video', comment: '$comment' } }],
  },
  // A preview rejection names the shots to edit by index; naming none, it redoes them all.
  rejectionShots: { PREVIEW_VIDEO_READY: '$payload.shots' },
};
