import { randomUUID } from 'node:crypto';
import type { Logger } from 'pino';
import type { InspectionEvent, Observer } from 'xstate';
import type { ApprovalDecided, TaskDispatch, TaskResult } from '../domain/messages.js';
import { TaskTypeCatalog } from '../domain/task-types.js';
import type { ConfigOverrides, OrchestratorConfig } from '../config/config.js';
import type { EventBus, Outbound } from '../ports/event-bus.js';
import { OrchestratorFactory, type Blackboard } from '../orchestrator/factory.js';
import type { Orchestrator } from '../orchestrator/orchestrator.js';
import { SimulatedAgents } from './simulated-agents.js';
import { ProgressView, summaryTable } from './progress.js';

/** Where the demo runs: the embedded adapters, or the real servers. */
export interface DemoEnvironment {
  blackboard: Blackboard;
  bus: EventBus;
  /** Runs an agent: receives its dispatches until stopped. */
  startAgent(agent: string, handle: (task: TaskDispatch) => Promise<Omit<TaskResult, 'taskId' | 'fencingToken'>>): Promise<() => Promise<void>>;
  /** Observes what the orchestrator publishes. */
  observe(listener: (m: Outbound) => void): Promise<() => Promise<void>>;
  /** Sends a reviewer's decision the way a user would. */
  decide(projectId: string, decision: ApprovalDecided): Promise<void>;
  close(): Promise<void>;
}

export interface DemoOptions {
  environment: DemoEnvironment;
  config: OrchestratorConfig | ConfigOverrides;
  logger: Logger;
  write: (text: string) => void;
  tty: boolean;
  rejectFirst?: boolean;
  shots?: number;
  budget?: number;
  /** Multiplies the simulated durations (1 = the default, short). */
  speed?: number;
  /** The simulated agents draw real artwork (SimulationOptions.artwork; default true: what a newcomer looks at). */
  artwork?: boolean;
  inspect?: Observer<InspectionEvent> | ((event: InspectionEvent) => void);
  /** Who decides at the checkpoints: the demo's automatic reviewer (default), or a person (in the review console). */
  reviewer?: 'auto' | 'human';
  /** Called once the orchestrator has started (the console is given it). */
  started?: (orchestrator: Orchestrator) => Promise<void> | void;
  /** The demo keeps running until this settles (Ctrl-C), after the project ends too; settled before, it stops early. */
  keepRunning?: Promise<unknown>;
}

export interface DemoResult {
  projectId: string;
  state: string;
  tasks: number;
  spent: number;
  wallMs: number;
}

/** Simulated run time per agent, in ms (before the ±30 % jitter). */
const DURATION_MS: Record<string, number> = {
  script_writer: 250,
  storyboard_artist: 250,
  image_generator: 180,
  qa_agent: 80,
  video_generator: 450,
  voice_actor: 200,
  music_composer: 300,
  sound_designer: 150,
  audio_engineer: 120,
};

/**
 * Runs one video project, PROJECT_CREATED to completion, with simulated agents and an
 * automatic reviewer, and prints live progress and a summary.
 */
export async function runDemo(options: DemoOptions): Promise<DemoResult> {
  const { environment: env, write } = options;
  const started = Date.now();
  const projectId = `demo_${randomUUID().slice(0, 8)}`;
  const catalog = new TaskTypeCatalog();
  // Real artwork (a script, SVG keyframes, a storyboard sheet, an animated preview): what a reviewer looks at.
  const agents = new SimulatedAgents(catalog, { shots: options.shots ?? 3, artwork: options.artwork ?? true });
  const human = options.reviewer === 'human';
  const view = new ProgressView(write, options.tty);
  const speed = options.speed ?? 1;
  let finished: (state: string) => void = () => undefined;
  const done = new Promise<string>((resolve) => (finished = resolve));
  let rejected = false;

  const stopObserving = await env.observe((m) => {
    if ('projectId' in m.body && m.body.projectId !== projectId) return;
    switch (m.kind) {
      case 'status':
        view.onStatus(m.body);
        break;
      case 'budget':
        view.onBudget(m.body);
        break;
      case 'approval_requested': {
        if (human) {
          view.onCheckpoint(`${m.body.checkpoint}: waiting for you in the review console`);
          break;
        }
        const reject = options.rejectFirst && !rejected && m.body.checkpoint === 'SCENE_WRITTEN';
        rejected ||= Boolean(reject);
        view.onCheckpoint(`${m.body.checkpoint}: waiting for the reviewer`);
        setTimeout(() => {
          const decision: ApprovalDecided = reject
            ? { approvalId: m.body.approvalId, decision: 'rejected', comment: 'darker ending, fewer characters', by: 'demo-reviewer' }
            : { approvalId: m.body.approvalId, decision: 'approved', by: 'demo-reviewer' };
          view.note(`${reject ? '✗ rejected' : '✓ approved'} ${m.body.checkpoint}${reject ? ` ("${decision.comment}")` : ''}`);
          view.onCheckpoint(`${m.body.checkpoint}: ${decision.decision}`);
          env.decide(projectId, decision).catch((err) => view.note(`decision failed: ${(err as Error).message}`));
        }, 150 * speed);
        break;
      }
      case 'project':
        if (m.body.state === 'completed' || m.body.state === 'cancelled') finished(m.body.state);
        if (m.body.state === 'paused') view.note(`project paused: ${m.body.reason ?? ''}`);
        // Nothing retries it here: the demo ends, as a user's run would stop to look.
        if (m.body.state === 'failed') {
          view.note(`project failed: ${m.body.reason ?? ''}`);
          finished(m.body.state);
        }
        break;
      case 'dlq':
        view.note(`dead letter: ${m.body.reason}`);
        break;
      default:
        break;
    }
  });

  const stops: (() => Promise<void>)[] = [];
  for (const agent of agents.agents()) {
    stops.push(
      await env.startAgent(agent, async (task) => {
        const base = DURATION_MS[agent] ?? 150;
        await new Promise((r) => setTimeout(r, base * speed * (0.7 + 0.6 * Math.random())));
        return { status: 'completed', ...agents.run(task) };
      }),
    );
  }

  const orchestrator = await OrchestratorFactory.createAndStart(env.blackboard, env.bus, options.config, {
    logger: options.logger,
    ...(options.inspect ? { inspect: options.inspect } : {}),
  });
  try {
    await options.started?.(orchestrator);
    view.note(`project ${projectId}: "The Keeper", ${options.shots ?? 3} shots, budget $${(options.budget ?? 25).toFixed(2)}`);
    await orchestrator.handleEvent({
      id: `${projectId}:created`,
      type: 'PROJECT_CREATED',
      projectId,
      payload: { title: 'The Keeper', brief: 'a lighthouse keeper finds a message in a bottle', budget: options.budget ?? 25 },
      occurredAt: new Date().toISOString(),
    });
    const interrupted = options.keepRunning?.then(() => 'interrupted');
    const state = await (interrupted ? Promise.race([done, interrupted]) : done);
    view.finish();
    const tasks = await env.blackboard.tasks.listByProject(projectId);
    const budget = await orchestrator.getBudgetStatus(projectId);
    const wallMs = Date.now() - started;
    write(`\nproject ${projectId} ${state}\n\n${summaryTable(tasks, budget, wallMs)}\n`);
    if (state !== 'interrupted' && options.keepRunning) {
      write('\nthe console keeps serving the finished project; Ctrl-C stops it\n');
      await options.keepRunning;
    }
    return { projectId, state, tasks: tasks.length, spent: budget.spent, wallMs };
  } finally {
    await orchestrator.stop();
    for (const stop of stops) await stop();
    await stopObserving();
  }
}
