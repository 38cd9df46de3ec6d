import type { TaskDispatch } from '../domain/messages.js';
import type { TaskTypeCatalog } from '../domain/task-types.js';
import { roundMoney } from '../domain/task-types.js';
import { dataUri, keyframeSvg, previewSvg, storyboardSheetSvg } from './artwork.js';

/**
 * Simulated agents for the demo and the tests: each task type gets an output of the
 * shape the pipeline's data contract expects, and a cost near its estimate.
 */
export interface SimulationOptions {
  /** Shots PLAN_SHOTS returns (default 3). */
  shots?: number;
  /** Random source (tests pass a seeded one). */
  random?: () => number;
  /** Visual QA fails the first time for these shot indexes. */
  failQaOnce?: readonly number[];
  /**
   * Real things to look at (default false: the outputs name `s3://` URIs that do not exist):
   * a screenplay-style script, shots with descriptions, and SVG pictures drawn from them as
   * data: URIs — a storyboard sheet, keyframes, an animated preview and final — named in the
   * outputs' `artifacts` too (see artwork.ts).
   */
  artwork?: boolean;
}

export interface SimulatedResult {
  output: Record<string, unknown>;
  actualCost: number;
}

export class SimulatedAgents {
  private readonly qaFailed = new Set<number>();
  private readonly random: () => number;

  constructor(
    private readonly catalog: TaskTypeCatalog,
    private readonly options: SimulationOptions = {},
  ) {
    this.random = options.random ?? Math.random;
  }

  /** The agents (by name) the catalogue assigns work to. */
  agents(): string[] {
    return [...new Set(this.catalog.list().map((t) => t.agent))];
  }

  run(task: Pick<TaskDispatch, 'taskId' | 'taskType' | 'input' | 'attempt'>): SimulatedResult {
    const estimate = this.catalog.estimateCost(task.taskType, task.input);
    // Actual cost within ±20 % of the estimate.
    const actualCost = roundMoney(Math.max(0, estimate * (0.8 + 0.4 * this.random())));
    return { output: this.output(task), actualCost };
  }

  private output(task: Pick<TaskDispatch, 'taskId' | 'taskType' | 'input' | 'attempt'>): Record<string, unknown> {
    const shot = typeof task.input.shotIndex === 'number' ? task.input.shotIndex : 0;
    if (this.options.artwork) {
      const drawn = this.artwork(task, shot);
      if (drawn) return drawn;
    }
    switch (task.taskType) {
      case 'WRITE_SCRIPT':
      case 'REVISE_SCRIPT':
        return {
          script: `INT. LIGHTHOUSE - NIGHT. ${String(task.input.brief ?? task.input.comment ?? 'A story')}.`,
          revision: task.taskType === 'REVISE_SCRIPT',
        };
      case 'PLAN_SHOTS':
      case 'REVISE_SHOTS': {
        const count = this.options.shots ?? 3;
        return {
          shots: Array.from({ length: count }, (_, i) => ({ index: i, prompt: `shot ${i + 1}`, durationSeconds: 4 })),
        };
      }
      case 'GENERATE_KEYFRAME':
      case 'EDIT_IMAGE':
        return { image: `s3://frames/${task.taskId}.png`, shotIndex: shot };
      case 'RUN_VISUAL_QA': {
        const failFirst = this.options.failQaOnce?.includes(shot) && !this.qaFailed.has(shot);
        if (failFirst) {
          this.qaFailed.add(shot);
          return { passed: false, issues: ['extra fingers on the left hand'] };
        }
        return { passed: true, issues: [] };
      }
      case 'GENERATE_PREVIEW_VIDEO':
      case 'GENERATE_FINAL_VIDEO':
        return { video: `s3://renders/${task.taskId}.mp4` };
      default:
        return { artifact: `s3://artifacts/${task.taskId}` };
    }
  }

  /** The output with artwork (SimulationOptions.artwork), or null for a task type that has none (the plain output then). */
  private artwork(task: Pick<TaskDispatch, 'taskId' | 'taskType' | 'input'>, shot: number): Record<string, unknown> | null {
    const input = task.input;
    const count = this.options.shots ?? 3;
    switch (task.taskType) {
      case 'WRITE_SCRIPT':
        return { script: screenplay(text(input.title), text(input.brief)), revision: false };
      case 'REVISE_SCRIPT': {
        const previous = text(input.script) ?? screenplay(undefined, undefined);
        return { script: `Revised: ${text(input.comment) ?? 'tightened'}\n\n${previous}`, revision: true };
      }
      case 'PLAN_SHOTS':
      case 'REVISE_SHOTS': {
        const comment = task.taskType === 'REVISE_SHOTS' ? (text(input.comment) ?? 'reworked') : undefined;
        const shots = planShots(count, comment);
        const sheet = storyboardSheetSvg(shots, undefined, comment ? { note: `Revised: ${comment}` } : {});
        return { shots, artifacts: [{ uri: dataUri(sheet), mediaType: 'image/svg+xml', title: comment ? 'Storyboard sheet (revised)' : 'Storyboard sheet' }] };
      }
      case 'GENERATE_KEYFRAME':
      case 'EDIT_IMAGE': {
        const subject = input.shot ?? plannedShot(shot, 0);
        const edit = task.taskType === 'EDIT_IMAGE';
        const issues = Array.isArray(input.issues) ? input.issues.filter((i): i is string => typeof i === 'string') : [];
        const note = edit ? `revised: ${text(input.comment) ?? (issues.length ? `fixed ${issues.join(', ')}` : 'retouched')}` : undefined;
        const uri = dataUri(keyframeSvg(subject, shot, undefined, note ? { note } : {}));
        const title = `${edit ? 'Edited keyframe' : 'Keyframe'}, shot ${shot + 1}`;
        const at = Number.isInteger(shot) && shot >= 0 ? { shotIndex: shot } : {};
        return { image: uri, shotIndex: shot, artifacts: [{ uri, mediaType: 'image/svg+xml', ...at, title }] };
      }
      case 'GENERATE_PREVIEW_VIDEO':
      case 'GENERATE_FINAL_VIDEO': {
        const final = task.taskType === 'GENERATE_FINAL_VIDEO';
        // The final's input names the preview, not the shots: the plan is drawn again.
        const shots = Array.isArray(input.shots) ? (input.shots as unknown[]) : planShots(count);
        const comment = text(input.comment);
        const uri = dataUri(previewSvg(shots, undefined, { final, ...(comment ? { note: `revised: ${comment}` } : {}) }));
        return { video: uri, artifacts: [{ uri, mediaType: 'image/svg+xml', title: final ? 'Final video' : 'Preview video' }] };
      }
      default:
        return null;
    }
  }
}

/** A non-empty string, or undefined. */
function text(value: unknown): string | undefined {
  return typeof value === 'string' && value.trim() ? value.trim() : undefined;
}

/** What the demo's shots show, in turn (a lighthouse keeper and a message in a bottle). */
const IMAGES = [
  'Wide shot of a lone lighthouse on a black cliff at night, its beam sweeping a restless sea',
  'The keeper climbs the spiral stair of the tower, lamp in hand, while storm rain lashes the windows',
  'A green glass bottle bobbing in the surf at dawn, a rolled letter inside',
  'The keeper on the gallery at sunset, watching gulls wheel over a calm sea',
  'A storm at sea: waves break over the rocks below the lighthouse, lightning in the clouds',
  'Morning on the beach: the keeper finds the bottle half buried in the sand',
  'Night in the lamp room: the keeper reads the letter by the lamp, the moon over the sea',
  'A small boat on a silver sea under the moon, the lighthouse far behind',
  'Sunrise: the lighthouse lamp goes dark as the sun climbs over a calm sea',
  'The keeper throws a new bottle into the sea, a small figure against the evening sky',
];
const FRAMINGS = ['extreme wide', 'medium', 'close-up', 'wide', 'over-the-shoulder'];
const CAMERAS = ['static', 'slow push-in', 'pan left', 'crane up', 'handheld', 'dolly out'];

interface PlannedShot {
  index: number;
  description: string;
  framing: string;
  camera: string;
  durationSeconds: number;
}

/** `count` shots; a revision (its comment) takes the images in another order. */
function planShots(count: number, comment?: string): PlannedShot[] {
  let offset = 0;
  if (comment) for (const c of comment) offset = (offset * 31 + c.charCodeAt(0)) % IMAGES.length;
  if (comment && offset === 0) offset = 1;
  return Array.from({ length: count }, (_, index) => plannedShot(index, offset));
}

/** Shot `index` of a plan: its description, framing, camera move and duration. */
function plannedShot(index: number, offset: number): PlannedShot {
  return {
    index,
    description: IMAGES[(index + offset) % IMAGES.length]!,
    framing: FRAMINGS[index % FRAMINGS.length]!,
    camera: CAMERAS[(index + offset) % CAMERAS.length]!,
    durationSeconds: 3 + ((index + offset) % 3),
  };
}

/** A short screenplay from the project's title and brief. */
function screenplay(title: string | undefined, brief: string | undefined): string {
  const heading = (title ?? 'The Keeper').toUpperCase();
  const logline = brief ?? 'A lighthouse keeper finds a message in a bottle';
  return [
    heading,
    `Logline: ${logline}.`.replace(/\.\.$/, '.'),
    'FADE IN:',
    'EXT. LIGHTHOUSE CLIFF - NIGHT',
    'Wind tears at the grass. Far below, the sea throws itself at the rocks. High above, the lamp turns, patient, over the black water.',
    'INT. LAMP ROOM - CONTINUOUS',
    'The KEEPER (60s, weathered, unhurried) trims the wick and wipes the great lens with a rag. A logbook lies open: the same line, night after night. "All quiet."',
    'KEEPER\n(to the lamp)\nAnother night, old friend.',
    'EXT. BEACH - DAWN',
    'The storm has passed. Among the weed and the driftwood, a green bottle glints. The Keeper kneels, pulls the cork, and unrolls a letter gone soft with salt.',
    'KEEPER\n(reading, barely aloud)\n"To whoever keeps the light..."',
    'He looks out to sea. For the first time in years, he smiles.',
    'FADE OUT.',
  ].join('\n\n');
}
