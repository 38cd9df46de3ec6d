import { z } from 'zod';
import { AgentName, Money, Priority, TaskTypeName } from './task.js';
import { ValidationError } from '../errors.js';

/**
 * How a task type's cost is estimated before it runs:
 * `base + perUnit * units`, where `units` is read from the task input field `unitsFrom`
 * (a number, or an array whose length counts) and falls back to `defaultUnits`.
 */
export const CostModel = z.object({
  base: Money,
  perUnit: Money.default(0),
  unit: z.enum(['task', 'second', 'image', 'shot', 'kchar', 'ktoken']).default('task'),
  unitsFrom: z.string().optional(),
  defaultUnits: z.number().min(0).default(1),
});
export type CostModel = z.infer<typeof CostModel>;

export const TaskTypeSpec = z.object({
  name: TaskTypeName,
  description: z.string(),
  /** The agent that receives this type by default (`tasks.assigned_to`). */
  agent: AgentName,
  priority: Priority,
  /** Per-attempt timeout; absent means the configured TASK_TIMEOUT. */
  timeoutMs: z.number().int().positive().optional(),
  /** Attempts before the dead letter; absent means the configured TASK_MAX_ATTEMPTS. */
  maxAttempts: z.number().int().min(1).max(100).optional(),
  cost: CostModel,
});
export type TaskTypeSpec = z.infer<typeof TaskTypeSpec>;
export type TaskTypeSpecInput = z.input<typeof TaskTypeSpec>;

/** The largest per-attempt timeout a task row stores (`tasks.timeout_ms` is an INTEGER). */
export const MAX_TIMEOUT_MS = 2_147_483_647;

/**
 * What a deployment may change of a task type (TASK_TYPES_FILE, TASK_TIMEOUTS): each field
 * given replaces the type's own (the cost model as a whole).
 */
export const TaskTypeOverride = z.strictObject({
  timeoutMs: z.number().int().positive().max(MAX_TIMEOUT_MS).optional(),
  maxAttempts: z.number().int().min(1).max(100).optional(),
  priority: Priority.optional(),
  cost: CostModel.optional(),
});
export type TaskTypeOverride = z.infer<typeof TaskTypeOverride>;

const min = 60_000;
const t = (
  name: string,
  agent: string,
  priority: number,
  timeoutMinutes: number | null,
  cost: z.input<typeof CostModel>,
  description: string,
): TaskTypeSpecInput => ({
  name,
  agent,
  priority,
  ...(timeoutMinutes === null ? {} : { timeoutMs: timeoutMinutes * min }),
  cost,
  description,
});

/**
 * The default catalogue of an AI video pipeline. Priorities: work that unblocks a human
 * checkpoint or many downstream tasks runs first (script and planning high, final
 * delivery and extras lower). Costs are in the project's currency (USD by default), in
 * line with current hosted-model prices.
 */
export const DEFAULT_TASK_TYPES: readonly TaskTypeSpecInput[] = [
  // Writing
  t('ANALYZE_BRIEF', 'script_writer', 900, 5, { base: 0.02 }, 'Extract audience, tone, length and constraints from the brief'),
  t('WRITE_SCRIPT', 'script_writer', 900, 10, { base: 0.15, perUnit: 0.01, unit: 'kchar', unitsFrom: 'targetChars', defaultUnits: 6 }, 'Write the scene script from the brief'),
  t('REVISE_SCRIPT', 'script_writer', 950, 10, { base: 0.1, perUnit: 0.01, unit: 'kchar', unitsFrom: 'targetChars', defaultUnits: 6 }, 'Revise the script following reviewer comments'),
  t('WRITE_VOICEOVER_SCRIPT', 'script_writer', 700, 5, { base: 0.05 }, 'Write narration lines timed to the shots'),
  t('DESIGN_CHARACTERS', 'character_designer', 800, 10, { base: 0.1 }, 'Describe each character: look, wardrobe, voice'),
  t('GENERATE_CHARACTER_SHEET', 'image_generator', 780, 10, { base: 0.04, perUnit: 0.04, unit: 'image', unitsFrom: 'views', defaultUnits: 4 }, 'Render reference sheets for each character'),
  t('CREATE_STYLE_GUIDE', 'art_director', 800, 10, { base: 0.08 }, 'Fix palette, lighting and lens language for the project'),
  // Planning
  t('PLAN_SHOTS', 'storyboard_artist', 850, 10, { base: 0.12, perUnit: 0.01, unit: 'shot', unitsFrom: 'shotCount', defaultUnits: 8 }, 'Break the script into shots with framing and timing'),
  t('REVISE_SHOTS', 'storyboard_artist', 900, 10, { base: 0.08, perUnit: 0.01, unit: 'shot', unitsFrom: 'shotCount', defaultUnits: 8 }, 'Revise the shot plan following reviewer comments'),
  t('GENERATE_STORYBOARD', 'storyboard_artist', 750, 15, { base: 0.02, perUnit: 0.03, unit: 'shot', unitsFrom: 'shots', defaultUnits: 8 }, 'Sketch a storyboard frame per shot'),
  t('DESIGN_ENVIRONMENT', 'art_director', 700, 10, { base: 0.06 }, 'Design locations and set dressing'),
  // Images
  t('GENERATE_KEYFRAME', 'image_generator', 600, 10, { base: 0.04, perUnit: 0.04, unit: 'image', unitsFrom: 'variants', defaultUnits: 1 }, 'Render the keyframe of one shot'),
  t('EDIT_IMAGE', 'image_generator', 650, 10, { base: 0.05 }, 'Repair or restyle a keyframe (inpainting, consistency fixes)'),
  t('UPSCALE_IMAGE', 'image_generator', 400, 5, { base: 0.01 }, 'Upscale a keyframe to delivery resolution'),
  t('GENERATE_THUMBNAIL', 'image_generator', 300, 5, { base: 0.04 }, 'Render the video thumbnail'),
  // Video
  t('GENERATE_SHOT_VIDEO', 'video_generator', 550, 30, { base: 0, perUnit: 0.1, unit: 'second', unitsFrom: 'durationSeconds', defaultUnits: 5 }, 'Animate one shot from its keyframe'),
  t('GENERATE_PREVIEW_VIDEO', 'video_generator', 500, 30, { base: 0.05, perUnit: 0.05, unit: 'second', unitsFrom: 'durationSeconds', defaultUnits: 30 }, 'Render a low-resolution preview of the whole cut'),
  t('GENERATE_FINAL_VIDEO', 'video_generator', 450, 60, { base: 0.2, perUnit: 0.25, unit: 'second', unitsFrom: 'durationSeconds', defaultUnits: 30 }, 'Render the final cut at delivery quality'),
  t('INTERPOLATE_FRAMES', 'video_generator', 350, 20, { base: 0.02, perUnit: 0.01, unit: 'second', unitsFrom: 'durationSeconds', defaultUnits: 30 }, 'Raise the frame rate by interpolation'),
  t('UPSCALE_VIDEO', 'video_generator', 350, 30, { base: 0.05, perUnit: 0.02, unit: 'second', unitsFrom: 'durationSeconds', defaultUnits: 30 }, 'Upscale the final cut'),
  t('COLOR_GRADE', 'video_editor', 400, 15, { base: 0.05 }, 'Grade the cut to the style guide'),
  t('ASSEMBLE_EDIT', 'video_editor', 480, 15, { base: 0.03 }, 'Assemble shots, transitions and audio into a timeline'),
  // Audio
  t('CAST_VOICES', 'voice_actor', 600, 5, { base: 0.02 }, 'Pick synthetic voices for characters and narrator'),
  t('GENERATE_VOICEOVER', 'voice_actor', 520, 15, { base: 0.01, perUnit: 0.18, unit: 'kchar', unitsFrom: 'scriptChars', defaultUnits: 1 }, 'Synthesise narration and dialogue'),
  t('SYNC_LIPS', 'lip_sync', 460, 30, { base: 0.02, perUnit: 0.05, unit: 'second', unitsFrom: 'durationSeconds', defaultUnits: 10 }, 'Lip-sync speaking characters to the dialogue'),
  t('COMPOSE_MUSIC', 'music_composer', 520, 20, { base: 0.1, perUnit: 0.002, unit: 'second', unitsFrom: 'durationSeconds', defaultUnits: 30 }, 'Compose the score to the cut'),
  t('GENERATE_SOUND_EFFECTS', 'sound_designer', 510, 15, { base: 0.05 }, 'Generate foley and sound effects per shot'),
  t('MIX_AUDIO', 'audio_engineer', 470, 15, { base: 0.03 }, 'Mix voice, music and effects; loudness to broadcast norms'),
  // Text
  t('GENERATE_SUBTITLES', 'subtitler', 420, 10, { base: 0.02 }, 'Transcribe and time subtitles'),
  t('TRANSLATE_SUBTITLES', 'translator', 300, 10, { base: 0.01, perUnit: 0.02, unit: 'task', unitsFrom: 'languages', defaultUnits: 1 }, 'Translate subtitles into each target language'),
  // Quality
  t('RUN_VISUAL_QA', 'qa_agent', 620, 10, { base: 0.02 }, 'Check a keyframe for artefacts and prompt adherence'),
  t('CHECK_CONSISTENCY', 'qa_agent', 580, 10, { base: 0.04 }, 'Check characters and style across all shots'),
  t('RUN_AUDIO_QA', 'qa_agent', 440, 10, { base: 0.02 }, 'Check the mix for clipping, gaps and sync'),
  t('CHECK_COMPLIANCE', 'qa_agent', 430, 10, { base: 0.02 }, 'Check content policy, licences and brand safety'),
  // Delivery
  t('ENCODE_DELIVERABLES', 'encoder', 300, 30, { base: 0.02, perUnit: 0.01, unit: 'task', unitsFrom: 'formats', defaultUnits: 3 }, 'Encode the final video for each delivery format'),
];

/** A validated, indexed task-type catalogue. Users may extend or replace it. */
export class TaskTypeCatalog {
  private readonly byName: ReadonlyMap<string, TaskTypeSpec>;

  constructor(specs: readonly TaskTypeSpecInput[] = DEFAULT_TASK_TYPES) {
    const parsed = z.array(TaskTypeSpec).safeParse(specs);
    if (!parsed.success) {
      throw new ValidationError('invalid task-type catalogue', parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`));
    }
    const map = new Map<string, TaskTypeSpec>();
    for (const spec of parsed.data) {
      if (map.has(spec.name)) throw new ValidationError(`task type ${spec.name} is defined twice`);
      map.set(spec.name, spec);
    }
    this.byName = map;
  }

  get(name: string): TaskTypeSpec {
    const spec = this.byName.get(name);
    if (!spec) throw new ValidationError(`unknown task type ${name}`);
    return spec;
  }

  has(name: string): boolean {
    return this.byName.has(name);
  }

  list(): TaskTypeSpec[] {
    return [...this.byName.values()];
  }

  /**
   * This catalogue with some types' timeout, attempts, priority or cost model replaced
   * (the fields each override gives). Throws a ValidationError naming the overrides of
   * types it does not have, or an invalid value.
   */
  withOverrides(overrides: Readonly<Record<string, TaskTypeOverride>>): TaskTypeCatalog {
    const unknown = Object.keys(overrides).filter((name) => !this.byName.has(name));
    if (unknown.length) throw new ValidationError(`unknown task type${unknown.length > 1 ? 's' : ''} ${unknown.join(', ')}`);
    const problems: string[] = [];
    const specs = this.list().map((spec): TaskTypeSpecInput => {
      const given = overrides[spec.name];
      if (!given) return spec;
      const parsed = TaskTypeOverride.safeParse(given);
      if (!parsed.success) {
        problems.push(...parsed.error.issues.map((i) => `${[spec.name, ...i.path].join('.')}: ${i.message}`));
        return spec;
      }
      const o = parsed.data;
      return {
        ...spec,
        ...(o.timeoutMs === undefined ? {} : { timeoutMs: o.timeoutMs }),
        ...(o.maxAttempts === undefined ? {} : { maxAttempts: o.maxAttempts }),
        ...(o.priority === undefined ? {} : { priority: o.priority }),
        ...(o.cost === undefined ? {} : { cost: o.cost }),
      };
    });
    if (problems.length) throw new ValidationError('invalid task-type overrides', problems);
    return new TaskTypeCatalog(specs);
  }

  /** The estimate of the cost model, rounded to DECIMAL(10,4). */
  estimateCost(name: string, input: Record<string, unknown> = {}): number {
    const { cost } = this.get(name);
    const raw = cost.unitsFrom === undefined ? undefined : input[cost.unitsFrom];
    const units =
      typeof raw === 'number' && Number.isFinite(raw) && raw >= 0
        ? raw
        : Array.isArray(raw)
          ? raw.length
          : cost.defaultUnits;
    return roundMoney(cost.base + cost.perUnit * units);
  }
}

export function roundMoney(value: number): number {
  return Math.round(value * 10_000) / 10_000;
}
