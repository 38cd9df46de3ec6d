import { ValidationError } from '../../errors.js';
import type { CostObservation, CostStatsStore } from '../../ports/cost-stats-store.js';
import { invalidInput, requireAmount } from './pg-errors.js';
import { toSqlTime, type SqlClient } from './sql-client.js';

/** Cost means on PostgreSQL (or PGlite: the same SQL). Writes only cost_observations. */
export class PostgresCostStatsStore implements CostStatsStore {
  constructor(private readonly sql: SqlClient) {}

  async observe(taskType: string, agent: string, cost: number, alpha: number, at: Date, count = 1): Promise<void> {
    requireAmount('cost', cost);
    requireAmount('alpha', alpha, { max: 1 });
    if (!Number.isInteger(count) || count < 1) throw new ValidationError(`count must be a positive integer, got ${count}`);
    // One upsert: concurrent observations of a pair queue on its row and none is lost.
    // `count` samples of the same value move the mean by 1 - (1 - alpha)^count of the gap.
    await this.sql.query(
      `INSERT INTO cost_observations (task_type, agent, ewma, samples, updated_at)
       VALUES ($1::text, $2::text, $3::numeric, $6::bigint, $5::timestamp)
       ON CONFLICT (task_type, agent) DO UPDATE SET
         ewma = cost_observations.ewma + (1 - power(1 - $4::numeric, $6::integer)) * ($3::numeric - cost_observations.ewma),
         samples = cost_observations.samples + $6::bigint, updated_at = $5::timestamp`,
      [taskType, agent, cost, alpha, toSqlTime(at), count],
    ).catch((err: unknown) => {
      throw invalidInput(err, `cannot record a cost of ${taskType} by ${agent}`);
    });
  }

  async list(): Promise<CostObservation[]> {
    const { rows } = await this.sql.query<{ task_type: string; agent: string; ewma: number; samples: number }>(
      'SELECT task_type, agent, ewma, samples FROM cost_observations ORDER BY task_type, agent',
    );
    return rows.map((r) => ({ taskType: r.task_type, agent: r.agent, ewma: r.ewma, samples: r.samples }));
  }
}
