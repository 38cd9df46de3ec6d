import { createServer, type Server } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { newProjectId, publishProjectCreated } from '../helpers/e2e-project.js';
import { createServiceScope, type ServiceScope } from '../helpers/service-scope.js';
import { startService, stopAll, type ManagedProcess } from '../helpers/service-process.js';
import { waitFor } from '../helpers/wait.js';

/**
 * `orchestrator start` with OTEL_EXPORTER_OTLP_ENDPOINT set: the SDK is on, and the spans
 * it buffered are exported by the graceful stop. The collector is a local HTTP server
 * taking OTLP/HTTP JSON (what @opentelemetry/exporter-trace-otlp-http sends). The batch
 * processor's schedule is set far beyond the test (OTEL_BSP_SCHEDULE_DELAY), so what
 * arrives was sent by the stop's flush.
 */

interface OtlpExport {
  resourceSpans: {
    resource: { attributes: { key: string; value: { stringValue?: string } }[] };
    scopeSpans: { scope: { name: string }; spans: { name: string; kind: number; traceId: string; attributes: { key: string; value: { stringValue?: string } }[] }[] }[];
  }[];
}

let scope: ServiceScope;
let service: ManagedProcess | undefined;
let collector: Server;
let endpoint: string;
const exports: { path: string; body: OtlpExport }[] = [];

beforeAll(async () => {
  scope = await createServiceScope();
  collector = createServer((req, res) => {
    let body = '';
    req.on('data', (chunk: Buffer) => (body += chunk.toString()));
    req.on('end', () => {
      try {
        exports.push({ path: req.url ?? '', body: JSON.parse(body) as OtlpExport });
      } catch {
        exports.push({ path: req.url ?? '', body: { resourceSpans: [] } });
      }
      res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
    });
  });
  await new Promise<void>((resolve) => collector.listen(0, '127.0.0.1', resolve));
  endpoint = `http://127.0.0.1:${(collector.address() as { port: number }).port}`;
});

afterAll(async () => {
  await stopAll([service]);
  await scope?.cleanup();
  await new Promise((resolve) => collector?.close(resolve));
});

describe('orchestrator start with OpenTelemetry', () => {
  it('exports its spans over OTLP/HTTP, flushed by the graceful stop', async () => {
    service = await startService({
      ...scope.env,
      OTEL_EXPORTER_OTLP_ENDPOINT: endpoint,
      OTEL_SERVICE_NAME: 'orchestrator-under-test',
      OTEL_BSP_SCHEDULE_DELAY: '600000',
    });
    const projectId = newProjectId();
    await publishProjectCreated(scope.nc, scope.prefix, projectId, 25);
    // No agent: the first task waits RUNNING once its dispatch is confirmed.
    await waitFor(
      async () => (await scope.sql.query('SELECT 1 FROM tasks WHERE project_id = $1 AND status = $2', [projectId, 'RUNNING'])).rows.length === 1,
      { timeoutMs: 60_000, what: 'the first task RUNNING' },
    );
    const exit = await service.stop('SIGTERM');
    expect(exit, service.describe()).toEqual({ code: 0, signal: null });

    expect(exports.length, 'an export reached the collector').toBeGreaterThan(0);
    expect(exports.every((e) => e.path === '/v1/traces')).toBe(true);
    const resources = exports.flatMap((e) => e.body.resourceSpans);
    const serviceNames = resources.map((r) => r.resource.attributes.find((a) => a.key === 'service.name')?.value.stringValue);
    expect(new Set(serviceNames)).toEqual(new Set(['orchestrator-under-test']));
    const spans = resources.flatMap((r) => r.scopeSpans.flatMap((s) => s.spans.map((span) => ({ ...span, scope: s.scope.name }))));
    const names = spans.map((s) => s.name);
    expect(names).toEqual(
      expect.arrayContaining([`process ${scope.prefix}.events.{projectId}.{type}`, 'ingest PROJECT_CREATED', `send ${scope.prefix}.tasks.{agent}`]),
    );
    const ingest = spans.find((s) => s.name === 'ingest PROJECT_CREATED')!;
    const send = spans.find((s) => s.name === `send ${scope.prefix}.tasks.{agent}`)!;
    expect(ingest.scope).toBe('@livingagent/orchestrator');
    expect(send.traceId).toBe(ingest.traceId);
    expect(send.attributes).toEqual(
      expect.arrayContaining([
        { key: 'messaging.system', value: { stringValue: 'nats' } },
        { key: 'messaging.destination.name', value: { stringValue: `${scope.prefix}.tasks.script_writer` } },
      ]),
    );
  }, 120_000);
});
