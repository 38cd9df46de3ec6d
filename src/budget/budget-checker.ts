import { ProjectNotFoundError } from '../errors.js';
import { roundMoney } from '../domain/task-types.js';
import type { BudgetLevel, BudgetStatus } from '../domain/messages.js';
import type { ProjectBudget } from '../ports/commit.js';
import { BUDGET_EXHAUSTED } from '../domain/project.js';
import { budgetLevelOf } from '../machines/project-machine.js';
import { announceProjectState, budgetStep } from '../control/lifecycle.js';
import type { Core } from '../orchestrator/core.js';

/** Samples of a (task type, agent) before its observed mean replaces the catalogue estimate. */
export const MIN_COST_SAMPLES = 3;
/** Weight of the newest actual cost in the exponentially weighted mean. */
export const COST_EWMA_ALPHA = 0.3;

interface CostObservationToWrite {
  taskType: string;
  agent: string;
  cost: number;
  count: number;
  at: Date;
}

/**
 * Observations of the same (task type, agent), in order, folded into one: `count` samples
 * of mean `cost` move an exponentially weighted mean by weight w = 1 − (1 − α)^count, so
 * two in a row, (c₁, n₁) then (c₂, n₂), move it exactly as one of n₁ + n₂ samples of mean
 * ((1 − w₂)·w₁·c₁ + w₂·c₂) / (1 − (1 − α)^(n₁+n₂)), whatever the mean was before.
 */
export function foldObservations(list: readonly CostObservationToWrite[], alpha = COST_EWMA_ALPHA): CostObservationToWrite[] {
  const folded = new Map<string, CostObservationToWrite>();
  for (const o of list) {
    const key = `${o.taskType}|${o.agent}`;
    const prev = folded.get(key);
    if (!prev) {
      folded.set(key, { ...o });
      continue;
    }
    const w1 = 1 - (1 - alpha) ** prev.count;
    const w2 = 1 - (1 - alpha) ** o.count;
    const w = 1 - (1 - alpha) ** (prev.count + o.count);
    folded.set(key, { ...o, cost: ((1 - w2) * w1 * prev.cost + w2 * o.cost) / w, count: prev.count + o.count });
  }
  return [...folded.values()];
}

/** What the budget checker needs: the context without the task registry (whose estimates it makes). */
export type BudgetContext = Omit<Core, 'registry' | 'inspect'>;

/**
 * Budget status, warnings and cost prediction. The amounts themselves (spent, reserved)
 * change only in SQL, atomically with the task transitions that cause them; the level they
 * reach (ok → warning → exhausted, and the pause) is the project machine's: each change
 * of the amounts is taken by it (`budgetStep`), and this class performs what its step
 * returns, reads the amounts and predicts. Its statuses are published by the notice
 * tracker (`NoticeTracker.budgetChanged`): one run per project at a time, read from the
 * row after the change, checked against the row once published, retried until out.
 */
export class BudgetChecker {
  /** (taskType|agent) → observed mean, refreshed from the store. */
  private observed = new Map<string, { ewma: number; samples: number }>();
  /** Cost observations not stored yet, in order (see observe). */
  private readonly unwritten: { taskType: string; agent: string; cost: number; count: number; at: Date }[] = [];
  private writingCosts: Promise<void> | null = null;

  constructor(private readonly core: BudgetContext) {}

  /** Loads the observed cost means (at start). */
  async loadObservations(): Promise<void> {
    const list = await this.core.costs.list();
    this.observed = new Map(list.map((o) => [`${o.taskType}|${o.agent}`, { ewma: o.ewma, samples: o.samples }]));
  }

  /**
   * The estimate of a new task: the observed mean of its (type, agent) once there are
   * enough samples, else the catalogue's cost model.
   */
  estimateCost(taskType: string, agent: string, input: Record<string, unknown>): number {
    const seen = this.observed.get(`${taskType}|${agent}`);
    if (seen && seen.samples >= MIN_COST_SAMPLES) return roundMoney(seen.ewma);
    return this.core.catalog.estimateCost(taskType, input);
  }

  /**
   * Records actual costs (after the completions are durable): `count` costs whose mean is
   * `cost`, folded in as `count` samples of that mean. The estimate this process makes
   * changes at once; the stored mean (`cost_observations`, what a restarted process starts
   * from) is written behind it, one observation after another in the order they came, so
   * that the results waiting on this batch do not wait for it. A write that fails is
   * logged and lost: the mean is an estimate and the next observations refine it again.
   * `flush()` waits for the writes.
   */
  observe(taskType: string, agent: string, cost: number, count = 1): void {
    const key = `${taskType}|${agent}`;
    const prev = this.observed.get(key);
    const weight = 1 - (1 - COST_EWMA_ALPHA) ** count;
    this.observed.set(
      key,
      prev ? { ewma: prev.ewma + weight * (cost - prev.ewma), samples: prev.samples + count } : { ewma: cost, samples: count },
    );
    this.unwritten.push({ taskType, agent, cost, count, at: new Date(this.core.clock.now()) });
    this.writingCosts ??= this.writeCosts();
  }

  private async writeCosts(): Promise<void> {
    try {
      while (this.unwritten.length) {
        // What came while the last write ran, one write per (task type, agent).
        for (const { taskType, agent, cost, count, at } of foldObservations(this.unwritten.splice(0))) {
          await this.core.costs
            .observe(taskType, agent, cost, COST_EWMA_ALPHA, at, count)
            .catch((err: unknown) => this.core.logger.warn({ err, taskType, agent }, 'could not store a cost observation'));
        }
      }
    } finally {
      this.writingCosts = null;
    }
  }

  async getBudgetStatus(projectId: string): Promise<BudgetStatus> {
    const project = await this.core.projects.getProject(projectId);
    if (!project) throw new ProjectNotFoundError(projectId);
    return this.statusOf(project, await this.forecastRemaining(projectId));
  }

  /**
   * After a change of the amounts: the project machine takes them, and a crossing of the
   * warning threshold or of exhaustion is published at once by its step's reaction, once
   * per crossing (across processes: one of them commits the step), with the pause when it
   * paused the project; a settle is published soon, coalesced with the other settles of
   * the project in the same short window (owed before the step, so that a step that fails
   * does not lose it; a settle committed through the Commit port is owed by its commit
   * already). `known`: the project as the write that changed the amounts returned it.
   */
  async afterChange(projectId: string, settled: boolean, known?: ProjectBudget): Promise<void> {
    if (settled) void this.core.notices.budgetChanged(projectId);
    // `known`: the row as a write just returned it (no read needed).
    const project = known ?? (await this.core.projects.getProject(projectId));
    if (!project) throw new ProjectNotFoundError(projectId);
    const step = await budgetStep(this.core, projectId, project);
    // A step of the amounts returns these two reactions only (the machine's BUDGET).
    for (const reaction of step?.reactions ?? []) {
      if (reaction.type === 'announceState') await announceProjectState(this.core, step!.record);
      if (reaction.type === 'announceBudget') await this.announceLevel(projectId, reaction.level);
    }
  }

  /** The project machine raised the budget level: the status is published at once (in order with the project's other statuses). */
  async announceLevel(projectId: string, level: BudgetLevel): Promise<void> {
    this.core.logger.warn({ projectId, level }, 'budget level crossed');
    await this.core.notices.budgetChanged(projectId, 'now');
  }

  /** The stored figures a published status is checked against (the projects row); null when the project is gone. */
  async figuresOf(projectId: string): Promise<{ limit: number | null; spent: number; reserved: number } | null> {
    const project = await this.core.projects.getProject(projectId);
    return project && { limit: project.budgetLimit, spent: project.spent, reserved: project.reserved };
  }

  statusOf(project: ProjectBudget, remainingCost: number): BudgetStatus {
    const { budgetLimit: limit, spent, reserved } = project;
    const remaining = limit === null ? null : roundMoney(limit - spent - reserved);
    const ratio = limit === null ? null : limit === 0 ? 1 : (spent + reserved) / limit;
    const byAmounts = budgetLevelOf({ limit, spent, reserved }, this.core.config.budget.warningThreshold);
    const level: BudgetLevel = project.state === 'paused' && project.pausedReason === BUDGET_EXHAUSTED ? 'exhausted' : byAmounts;
    const total = roundMoney(spent + reserved + remainingCost);
    return {
      projectId: project.projectId,
      limit,
      spent,
      reserved,
      remaining,
      ratio,
      level,
      forecast: { remainingCost: roundMoney(remainingCost), total, exceedsBudget: limit !== null && total > limit + 1e-9 },
    };
  }

  /**
   * The cost still to come: estimates of the project's tasks not yet reserved (PENDING,
   * WAITING_APPROVAL), plus the tasks of the pipeline stages the project has not reached.
   * A stage counts once per template (a fan-out as one task, since its size is unknown
   * before it runs); stages raised only on a condition (a failed QA) are not predicted.
   */
  async forecastRemaining(projectId: string): Promise<number> {
    const { unreservedEstimate, taskTypes } = await this.core.tasks.summarizeProject(projectId);
    const present = new Set(taskTypes);
    let cost = unreservedEstimate;
    const { pipeline } = this.core.mapper;
    const conditional = new Set(pipeline.emits.filter((e) => e.when).map((e) => e.event));
    for (const rule of pipeline.rules) {
      if (conditional.has(rule.on) || rule.create.length === 0) continue;
      if (rule.create.some((t) => present.has(t.type))) continue;
      for (const t of rule.create) cost += this.estimateCost(t.type, this.core.catalog.get(t.type).agent, {});
    }
    return cost;
  }

  /** Waits for the cost observations being stored (at stop; the owed budget statuses are the notice tracker's). */
  async flush(): Promise<void> {
    await this.writingCosts;
  }
}
