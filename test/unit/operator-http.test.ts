import { afterEach, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/config.js';
import { ConfigError } from '../../src/errors.js';
import { healthRoutes, Readiness } from '../../src/http/health.js';
import { metricsRoutes } from '../../src/http/metrics.js';
import { startHttpServer, type HttpServer } from '../../src/http/server.js';
import { silentLogger } from '../../src/logger.js';
import { PrometheusMetrics } from '../../src/metrics/prometheus.js';
import { reasonCode } from '../../src/ports/metrics.js';

/** The operator's surface without servers behind it: HTTP_ADDR, the metrics as the core reports, /readyz over given checks. */

const servers: HttpServer[] = [];
afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => s.close()));
});

function problem(env: NodeJS.ProcessEnv): string {
  try {
    loadConfig(env);
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return (err as ConfigError).problems.map((p) => `${p.key}=${p.value}: ${p.reason}`).join('; ');
  }
  throw new Error('expected a ConfigError');
}

describe('HTTP_ADDR', () => {
  it('defaults to 127.0.0.1:8080 and takes host:port, an IPv6 host in brackets, port 0', () => {
    expect(loadConfig({}).http).toEqual({ host: '127.0.0.1', port: 8080 });
    expect(loadConfig({ HTTP_ADDR: '0.0.0.0:9464' }).http).toEqual({ host: '0.0.0.0', port: 9464 });
    expect(loadConfig({ HTTP_ADDR: '[::1]:0' }).http).toEqual({ host: '::1', port: 0 });
    expect(loadConfig({ HTTP_ADDR: ' localhost:80 ' }).http).toEqual({ host: 'localhost', port: 80 });
    expect(loadConfig({}, { http: { addr: '127.0.0.1:0' } }).http).toEqual({ host: '127.0.0.1', port: 0 });
  });

  it('refuses anything else, naming the variable', () => {
    for (const bad of ['8080', 'http://127.0.0.1:8080', '127.0.0.1:70000', '127.0.0.1:', ':8080', '::1:8080']) {
      expect(problem({ HTTP_ADDR: bad })).toBe(`HTTP_ADDR=${bad}: expected host:port, such as 127.0.0.1:8080 or 0.0.0.0:8080`);
    }
  });
});

/** The samples of one scrape: `name{labels}` → value. */
async function samples(metrics: PrometheusMetrics): Promise<Map<string, number>> {
  const out = new Map<string, number>();
  for (const line of (await metrics.scrape()).split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const at = line.lastIndexOf(' ');
    out.set(line.slice(0, at), Number(line.slice(at + 1)));
  }
  return out;
}

describe('PrometheusMetrics', () => {
  it('counts transitions by task type, from and to, and pairs READY with RUNNING for the wait', async () => {
    const m = new PrometheusMetrics({ defaultMetrics: false });
    m.taskStep('t1', 'WRITE_SCRIPT', null, 'PENDING', 1_000, null);
    m.taskStep('t1', 'WRITE_SCRIPT', 'PENDING', 'READY', 1_000, null);
    m.taskStep('t2', 'WRITE_SCRIPT', 'PENDING', 'READY', 1_000, null);
    m.taskStep('t1', 'WRITE_SCRIPT', 'READY', 'RUNNING', 1_250, 1_250);
    m.taskStep('t1', 'WRITE_SCRIPT', 'RUNNING', 'RUNNING', 2_000, 1_250);
    m.taskStep('t1', 'WRITE_SCRIPT', 'RUNNING', 'COMPLETED', 4_250, 1_250);
    m.taskStep('t2', 'WRITE_SCRIPT', 'READY', 'CANCELLED', 5_000, null);
    // A task made READY elsewhere (another instance, before a restart): no wait observed.
    m.taskStep('t3', 'PLAN_SHOTS', 'READY', 'RUNNING', 5_000, 5_000);
    m.taskStep('t3', 'PLAN_SHOTS', 'RUNNING', 'FAILED', 5_500, 5_000);
    const s = await samples(m);
    expect(s.get('lap_task_transitions_total{task_type="WRITE_SCRIPT",from="none",to="PENDING"}')).toBe(1);
    expect(s.get('lap_task_transitions_total{task_type="WRITE_SCRIPT",from="PENDING",to="READY"}')).toBe(2);
    expect(s.get('lap_task_transitions_total{task_type="WRITE_SCRIPT",from="RUNNING",to="RUNNING"}')).toBe(1);
    expect(s.get('lap_task_ready_wait_seconds_count{task_type="WRITE_SCRIPT"}')).toBe(1);
    expect(s.get('lap_task_ready_wait_seconds_sum{task_type="WRITE_SCRIPT"}')).toBe(0.25);
    expect(s.get('lap_task_ready_wait_seconds_bucket{le="0.25",task_type="WRITE_SCRIPT"}')).toBe(1);
    expect(s.has('lap_task_ready_wait_seconds_count{task_type="PLAN_SHOTS"}')).toBe(false);
    expect(s.get('lap_task_attempt_duration_seconds_sum{task_type="WRITE_SCRIPT",outcome="completed"}')).toBe(3);
    expect(s.get('lap_task_attempt_duration_seconds_count{task_type="PLAN_SHOTS",outcome="failed"}')).toBe(1);
  });

  it('keeps each instance on its own registry, and reads the gauges from its sources at the scrape', async () => {
    const a = new PrometheusMetrics({ defaultMetrics: false });
    const b = new PrometheusMetrics();
    a.inbound('event', 'handled');
    a.deadLetter('message', 'ERR_NOT_JSON');
    a.approvalDecided('approved', 90_000);
    a.reaction('results', true);
    let depth = 3;
    a.attach({ queue: { size: async () => depth }, runtime: () => ({ leasesHeld: 2, reactionsPending: 1, noticesPending: 0 }) });
    b.attach({ queue: { size: () => Promise.reject(new Error('redis gone')) } });
    const sa = await samples(a);
    expect(sa.get('lap_inbound_messages_total{kind="event",outcome="handled"}')).toBe(1);
    expect(sa.get('lap_dead_letters_total{source="message",reason="ERR_NOT_JSON"}')).toBe(1);
    expect(sa.get('lap_approval_wait_seconds_count{decision="approved"}')).toBe(1);
    expect(sa.get('lap_reactions_total{reaction="results",outcome="failed"}')).toBe(1);
    expect(sa.get('lap_queue_depth')).toBe(3);
    expect(sa.get('lap_leases_held')).toBe(2);
    depth = 0;
    expect((await samples(a)).get('lap_queue_depth')).toBe(0);
    const sb = await samples(b);
    expect(sb.has('lap_inbound_messages_total{kind="event",outcome="handled"}')).toBe(false);
    expect(sb.get('lap_metrics_collect_errors_total{source="redis"}')).toBe(1);
    expect(sb.has('process_cpu_user_seconds_total')).toBe(true);
    expect([...sa.keys()].some((k) => k.startsWith('process_'))).toBe(false);
  });

  it('gives dead letters a bounded reason code', () => {
    expect(reasonCode('ERR_STALE_FENCING_TOKEN: task tsk_1: token 3 < 4')).toBe('ERR_STALE_FENCING_TOKEN');
    expect(reasonCode('gave up after 5 deliveries: ERR_SERVICE_UNAVAILABLE: down')).toBe('ERR_SERVICE_UNAVAILABLE');
    expect(reasonCode('gave up after 5 deliveries: socket hang up')).toBe('ERR_RETRIES_EXHAUSTED');
    expect(reasonCode('payload of 2000000 bytes exceeds the limit of 1048576 bytes')).toBe('ERR_PAYLOAD_TOO_LARGE');
    expect(reasonCode('not JSON: Unexpected token')).toBe('ERR_NOT_JSON');
    expect(reasonCode('schema violation: taskId: Required')).toBe('ERR_SCHEMA_VIOLATION');
    expect(reasonCode('subject/body mismatch: subject names project a, body names "b"')).toBe('ERR_SUBJECT_MISMATCH');
    expect(reasonCode('unexpected subject lap.x')).toBe('ERR_BAD_SUBJECT');
    expect(reasonCode('something else entirely')).toBe('ERR_OTHER');
  });
});

describe('the HTTP server', () => {
  it('serves /livez, /readyz (503 naming the failing check, 503 while starting and stopping) and /metrics, on a free port', async () => {
    const readiness = new Readiness(200);
    const metrics = new PrometheusMetrics({ defaultMetrics: false });
    let redisUp = true;
    const server = await startHttpServer({ host: '127.0.0.1', port: 0, logger: silentLogger(), routes: [healthRoutes(readiness), metricsRoutes(metrics)] });
    servers.push(server);
    expect(server.port).toBeGreaterThan(0);
    expect(server.url).toBe(`http://127.0.0.1:${server.port}`);
    expect((await fetch(`${server.url}/livez`)).status).toBe(200);
    const starting = await fetch(`${server.url}/readyz`);
    expect(starting.status).toBe(503);
    expect(await starting.text()).toContain('[-]service failed: starting');

    readiness.started([
      { name: 'postgres', check: async () => undefined },
      { name: 'redis', check: async () => void (redisUp || (await Promise.reject(new Error('connection refused')))) },
      // Never answers: failed within the check timeout, not a hung probe.
      { name: 'nats', check: () => new Promise<void>(() => undefined) },
    ]);
    const text = await (await fetch(`${server.url}/readyz`)).text();
    expect(text).toBe('[+]postgres ok\n[+]redis ok\n[-]nats failed: no answer within 200 ms\nnot ready: nats\n');
    redisUp = false;
    const json = await fetch(`${server.url}/readyz`, { headers: { accept: 'application/json' } });
    expect(json.status).toBe(503);
    expect(await json.json()).toMatchObject({ status: 'not ready', failing: ['redis', 'nats'] });

    readiness.started([{ name: 'postgres', check: async () => undefined }]);
    expect((await fetch(`${server.url}/readyz`)).status).toBe(200);
    readiness.stopping();
    expect((await fetch(`${server.url}/readyz`)).status).toBe(503);

    const scraped = await fetch(`${server.url}/metrics`);
    expect(scraped.status).toBe(200);
    expect(scraped.headers.get('content-type')).toContain('text/plain; version=0.0.4');
    expect(await scraped.text()).toContain('# TYPE lap_task_transitions_total counter');
    expect((await fetch(`${server.url}/nothing`)).status).toBe(404);
  });

  it('takes more route sets (the console will be one), and names HTTP_ADDR when the port is taken', async () => {
    const first = await startHttpServer({
      host: '127.0.0.1',
      port: 0,
      logger: silentLogger(),
      routes: [async (app) => void app.get('/hello', async () => 'hi')],
    });
    servers.push(first);
    expect(await (await fetch(`${first.url}/hello`)).text()).toBe('hi');
    await expect(startHttpServer({ host: '127.0.0.1', port: first.port, logger: silentLogger(), routes: [] })).rejects.toThrow(
      new RegExp(`cannot serve HTTP on 127\\.0\\.0\\.1:${first.port}: .*EADDRINUSE.*\\(check HTTP_ADDR\\)`),
    );
  });
});
