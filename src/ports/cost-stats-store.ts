export interface CostObservation {
  taskType: string;
  agent: string;
  /** Exponentially weighted mean of the actual costs. */
  ewma: number;
  samples: number;
}

/**
 * Cost statistics: the observed actual costs per (task type, agent), as an exponentially
 * weighted mean that refines the catalogue's estimates. Table: cost_observations.
 */
export interface CostStatsStore {
  /**
   * Folds actual costs into the (task type, agent) mean: `count` samples of `cost` (a batch's
   * mean), ewma += (1 - (1 - alpha)^count) * (cost - ewma); the first sample sets it. One
   * atomic upsert: concurrent observations are all counted. A negative or non-finite cost,
   * an alpha outside [0, 1] or a count that is not a positive integer fails with
   * ValidationError, writing nothing.
   */
  observe(taskType: string, agent: string, cost: number, alpha: number, at: Date, count?: number): Promise<void>;
  /** Every (task type, agent) mean, ordered by task type, then agent. */
  list(): Promise<CostObservation[]>;
}
