import type { TaskDispatch } from '../domain/messages.js';
import type { TaskTypeCatalog } from '../domain/task-types.js';
import { roundMoney } from '../domain/task-types.js';

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
}
