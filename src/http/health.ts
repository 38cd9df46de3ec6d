import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { HealthCheck } from '../ports/health.js';
import type { HttpRoutes } from './server.js';

/** A check that has not answered within this long fails (a hung server is not ready). */
export const CHECK_TIMEOUT_MS = 2_000;

export interface CheckResult {
  name: string;
  ok: boolean;
  /** Why it failed. */
  error?: string;
}

export interface ReadinessReport {
  ready: boolean;
  checks: CheckResult[];
}

/**
 * Whether the service is ready to work: it has started (not starting, not stopping), and
 * every dependency check passes (PostgreSQL and Redis answer, the migrations are applied,
 * NATS answers, the inbound consumer and the control subscription are attached). The
 * checks run on each probe, side by side, each within CHECK_TIMEOUT_MS.
 */
export class Readiness {
  private checks: readonly HealthCheck[] = [];
  private phase: 'starting' | 'started' | 'stopping' = 'starting';

  constructor(private readonly timeoutMs = CHECK_TIMEOUT_MS) {}

  /** The service has started: from now on readiness is its checks'. */
  started(checks: readonly HealthCheck[]): void {
    this.checks = checks;
    this.phase = 'started';
  }

  /** The service is stopping: not ready any more (a load balancer stops sending work). */
  stopping(): void {
    this.phase = 'stopping';
  }

  async report(): Promise<ReadinessReport> {
    if (this.phase !== 'started') return { ready: false, checks: [{ name: 'service', ok: false, error: this.phase }] };
    const checks = await Promise.all(this.checks.map((c) => this.run(c)));
    return { ready: checks.every((c) => c.ok), checks };
  }

  private async run(check: HealthCheck): Promise<CheckResult> {
    let timer: NodeJS.Timeout | undefined;
    try {
      await Promise.race([
        check.check(),
        new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`no answer within ${this.timeoutMs} ms`)), this.timeoutMs))),
      ]);
      return { name: check.name, ok: true };
    } catch (err) {
      return { name: check.name, ok: false, error: err instanceof Error ? err.message : String(err) };
    } finally {
      clearTimeout(timer);
    }
  }
}

const wantsJson = (request: FastifyRequest): boolean => (request.headers.accept ?? '').includes('application/json');

/**
 * `/livez`: 200 while the process serves HTTP at all. `/readyz`: 200 when ready, 503 when
 * not, naming the failing checks — the status code is for machines (probes, load
 * balancers); the body for humans, one line per check (`[+]postgres ok`, `[-]nats failed:
 * …`, in the style of Kubernetes' own endpoints), or JSON with `Accept: application/json`.
 */
export function healthRoutes(readiness: Readiness): HttpRoutes {
  return async (app: FastifyInstance) => {
    app.get('/livez', async (request: FastifyRequest, reply: FastifyReply) => {
      if (wantsJson(request)) return reply.send({ status: 'alive' });
      return reply.type('text/plain; charset=utf-8').send('ok\n');
    });
    app.get('/readyz', async (request: FastifyRequest, reply: FastifyReply) => {
      const report = await readiness.report();
      void reply.code(report.ready ? 200 : 503).header('cache-control', 'no-store');
      const failing = report.checks.filter((c) => !c.ok).map((c) => c.name);
      if (wantsJson(request)) {
        return reply.send({ status: report.ready ? 'ready' : 'not ready', failing, checks: report.checks });
      }
      const lines = report.checks.map((c) => (c.ok ? `[+]${c.name} ok` : `[-]${c.name} failed: ${c.error ?? 'unknown'}`));
      lines.push(report.ready ? 'ready' : `not ready: ${failing.join(', ')}`);
      return reply.type('text/plain; charset=utf-8').send(`${lines.join('\n')}\n`);
    });
  };
}
