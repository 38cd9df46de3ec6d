import { DiagLogLevel, diag } from '@opentelemetry/api';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-http';
import { detectResources, envDetector, resourceFromAttributes } from '@opentelemetry/resources';
import { BatchSpanProcessor, ConsoleSpanExporter, type SpanExporter } from '@opentelemetry/sdk-trace-base';
import { NodeTracerProvider } from '@opentelemetry/sdk-trace-node';
import { ATTR_SERVICE_NAME } from '@opentelemetry/semantic-conventions';
import type { Logger } from 'pino';
import { tracingWanted, type OrchestratorConfig } from '../config/config.js';

/** `service.name` when neither OTEL_SERVICE_NAME nor OTEL_RESOURCE_ATTRIBUTES names one. */
export const DEFAULT_SERVICE_NAME = 'livingagent-orchestrator';

export interface TracingSdk {
  /** Where the spans go: `otlp <URL>` or `console`. */
  readonly exporter: string;
  /** Exports the spans still buffered, then stops the SDK (the graceful stop's last step). */
  shutdown(): Promise<void>;
}

/**
 * The OpenTelemetry SDK, for `orchestrator start` only (the library uses the API alone, see
 * src/tracing/tracing.ts): a NodeTracerProvider registered globally (the AsyncLocalStorage
 * context manager, the W3C trace-context and baggage propagators), a BatchSpanProcessor
 * (OTEL_BSP_* honoured) and the OTLP/HTTP exporter (OTEL_EXPORTER_OTLP_HEADERS,
 * _TIMEOUT, _COMPRESSION … honoured by the exporter), or the console one. The sampler
 * follows OTEL_TRACES_SAMPLER / _ARG (default: parent-based, always on); the resource
 * OTEL_RESOURCE_ATTRIBUTES, with `service.name` from OTEL_SERVICE_NAME and
 * `service.instance.id` the INSTANCE_ID. Null when traces are not wanted. The SDK's own
 * problems (a collector that cannot be reached) are logged as warnings.
 */
export function startTracing(config: OrchestratorConfig, logger: Logger): TracingSdk | null {
  const tracing = config.tracing;
  if (!tracingWanted(tracing)) return null;
  const log = logger.child({ component: 'opentelemetry' });
  diag.setLogger(
    {
      error: (message, ...args) => log.warn({ args }, message),
      warn: (message, ...args) => log.warn({ args }, message),
      info: (message, ...args) => log.debug({ args }, message),
      debug: () => undefined,
      verbose: () => undefined,
    },
    { logLevel: DiagLogLevel.WARN, suppressOverrideMessage: true },
  );
  const url = tracing!.tracesEndpoint ?? (tracing!.endpoint ? `${tracing!.endpoint.replace(/\/+$/, '')}/v1/traces` : undefined);
  const console = tracing!.exporter === 'console';
  const exporter: SpanExporter = console ? new ConsoleSpanExporter() : new OTLPTraceExporter(url ? { url } : {});
  const detected = detectResources({ detectors: [envDetector] });
  const serviceName = tracing!.serviceName ?? (detected.attributes[ATTR_SERVICE_NAME] as string | undefined) ?? DEFAULT_SERVICE_NAME;
  const provider = new NodeTracerProvider({
    resource: detected.merge(resourceFromAttributes({ [ATTR_SERVICE_NAME]: serviceName, 'service.instance.id': config.instanceId })),
    spanProcessors: [new BatchSpanProcessor(exporter)],
  });
  provider.register();
  const where = console ? 'console' : `otlp ${url ?? 'http://localhost:4318/v1/traces'}`;
  return {
    exporter: where,
    async shutdown() {
      try {
        await provider.shutdown();
      } catch (err) {
        log.warn({ err }, 'could not export the last spans');
      }
    },
  };
}
