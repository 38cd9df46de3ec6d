import type { InspectionEvent, Observer } from 'xstate';
import type { Logger } from 'pino';
import { loadConfig, type ConfigOverrides, type OrchestratorConfig } from '../config/config.js';
import type { TaskTypeSpecInput } from '../domain/task-types.js';
import { configuredCatalog } from '../config/task-types.js';
import type { PipelineInput } from '../domain/pipeline.js';
import { silentLogger } from '../logger.js';
import type { Blackboard } from '../ports/blackboard.js';
import { systemClock, type Clock } from '../ports/clock.js';
import type { EventBus } from '../ports/event-bus.js';
import { noMetrics, type Metrics } from '../ports/metrics.js';
import { TaskRegistry } from '../actors/task-registry.js';
import { ProjectActors } from '../actors/project-actors.js';
import { ActorSystem } from '../actors/system.js';
import { EventMapper } from '../pipeline/event-mapper.js';
import { VIDEO_PIPELINE } from '../pipeline/video-pipeline.js';
import { loadPipelineFile } from '../pipeline/load.js';
import { BudgetChecker } from '../budget/budget-checker.js';
import { NoticeTracker } from '../reactions/notices.js';
import { Orchestrator } from './orchestrator.js';
import type { Core } from './core.js';

export type { Blackboard } from '../ports/blackboard.js';

export interface OrchestratorOptions {
  logger?: Logger;
  clock?: Clock;
  pipeline?: PipelineInput;
  /** The task-type catalogue (default: the built-in one); the configured overrides apply to it. */
  taskTypes?: readonly TaskTypeSpecInput[];
  /**
   * Opt-in inspection of the actor system (for example a Stately inspector): the root, the
   * scheduler, the project actors and every task machine's committed steps.
   */
  inspect?: Observer<InspectionEvent> | ((event: InspectionEvent) => void);
  /** Where committed transitions, dead letters, decisions and reactions are reported (see src/metrics/); default: nowhere. */
  metrics?: Metrics;
}

/** Creates orchestrators over a blackboard and an event bus (the original design's quick start). */
export const OrchestratorFactory = {
  create(
    blackboard: Blackboard,
    eventBus: EventBus,
    config: OrchestratorConfig | ConfigOverrides = {},
    options: OrchestratorOptions = {},
  ): Orchestrator {
    const parsed = isParsed(config) ? config : loadConfig(process.env, config);
    const logger = options.logger ?? silentLogger();
    const clock = options.clock ?? systemClock;
    const metrics = options.metrics ?? noMetrics;
    // The catalogue with the deployment's overrides (TASK_TYPES_FILE, TASK_TIMEOUTS): the
    // timeouts, attempts, priorities and cost models every new task is built from.
    const catalog = configuredCatalog(parsed.taskTypes, options.taskTypes);
    const pipeline = options.pipeline ?? (parsed.pipelineFile ? loadPipelineFile(parsed.pipelineFile) : VIDEO_PIPELINE);
    const mapper = new EventMapper(pipeline, catalog, { maxTasksPerEvent: parsed.ingest.maxTasksPerEvent });
    // The one actor system of this orchestrator: its root, started now, is the parent of
    // the scheduler and the project actors.
    const system = new ActorSystem({ clock, logger, ...(options.inspect ? { inspect: options.inspect } : {}) });
    const policy = { warningThreshold: parsed.budget.warningThreshold, enforce: parsed.budget.checkEnabled, timeoutMs: parsed.approval.timeoutMs, timeoutPolicy: parsed.approval.timeoutPolicy };
    // Every write that appends audit rows goes through these two wrapped ports, so the
    // tracker knows what it may not have announced yet (see reactions/notices.ts).
    const notices = new NoticeTracker({
      instanceId: parsed.instanceId,
      ledger: blackboard.notices,
      bus: eventBus,
      clock,
      logger,
      staleAfterMs: parsed.notices.staleAfterMs,
    });
    const tasks = notices.tasks(blackboard.tasks);
    const commit = notices.commit(blackboard.commit);
    const projectActors = new ProjectActors({ projects: blackboard.projects, clock, logger, system, policy });
    const context = {
      config: parsed,
      clock,
      logger,
      instanceId: parsed.instanceId,
      tasks,
      projects: blackboard.projects,
      commit,
      deadLetters: blackboard.deadLetters,
      costs: blackboard.costs,
      queue: blackboard.queue,
      locks: blackboard.locks,
      bus: eventBus,
      notices,
      projectActors,
      mapper,
      catalog,
      system,
      metrics,
    };
    const budget = new BudgetChecker(context);
    const registry = new TaskRegistry({
      store: tasks,
      commit,
      instanceId: parsed.instanceId,
      logger,
      catalog,
      clock,
      defaultTimeoutMs: parsed.scheduler.taskTimeoutMs,
      defaultMaxAttempts: parsed.scheduler.maxAttempts,
      // A new task's reservation: the learnt estimate.
      estimateCost: (t, a, i) => budget.estimateCost(t, a, i),
      system,
      metrics,
    });
    const core: Core = { ...context, registry };
    return new Orchestrator(core, budget);
  },

  async createAndStart(
    blackboard: Blackboard,
    eventBus: EventBus,
    config: OrchestratorConfig | ConfigOverrides = {},
    options: OrchestratorOptions = {},
  ): Promise<Orchestrator> {
    const orchestrator = OrchestratorFactory.create(blackboard, eventBus, config, options);
    await orchestrator.start();
    return orchestrator;
  },
};

function isParsed(config: OrchestratorConfig | ConfigOverrides): config is OrchestratorConfig {
  const c = config as Partial<OrchestratorConfig>;
  return typeof c.instanceId === 'string' && typeof c.scheduler?.intervalMs === 'number';
}
