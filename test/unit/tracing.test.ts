import { TraceFlags, context, propagation, trace } from '@opentelemetry/api';
import { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base';
import { NodeTracerProvider } from '@opentelemetry/sdk-trace-node';
import { afterEach, describe, expect, it } from 'vitest';
import { loadConfig, tracingWanted } from '../../src/config/config.js';
import { ConfigError } from '../../src/errors.js';
import { activeTraceParent, contextOfTraceParent, formatTraceParent, ingestSpan, parseTraceParent, raisedBy, tracingOn } from '../../src/tracing/tracing.js';

afterEach(() => {
  trace.disable();
});

function register(): InMemorySpanExporter {
  const exporter = new InMemorySpanExporter();
  trace.setGlobalTracerProvider(new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] }));
  return exporter;
}

describe('tracing (the API side)', () => {
  it('is on only while a tracer provider is registered', () => {
    expect(tracingOn()).toBe(false);
    register();
    expect(tracingOn()).toBe(true);
    trace.disable();
    expect(tracingOn()).toBe(false);
  });

  it('writes and reads W3C traceparent values, refusing malformed and invalid ones', () => {
    const sc = { traceId: '4bf92f3577b34da6a3ce929d0e0e4736', spanId: '00f067aa0ba902b7', traceFlags: TraceFlags.SAMPLED };
    const value = formatTraceParent(sc);
    expect(value).toBe('00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01');
    expect(parseTraceParent(value!)).toEqual({ ...sc, isRemote: true });
    expect(formatTraceParent({ ...sc, traceFlags: TraceFlags.NONE })).toBe('00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00');
    for (const bad of [
      '',
      'garbage',
      '00-00000000000000000000000000000000-00f067aa0ba902b7-01',
      '00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01',
      '01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01',
      '00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01',
    ]) {
      expect(parseTraceParent(bad), bad).toBeNull();
    }
    expect(formatTraceParent({ traceId: '0'.repeat(32), spanId: '0'.repeat(16), traceFlags: 0 })).toBeNull();
    expect(activeTraceParent(contextOfTraceParent(value!))).toBe(value);
    expect(activeTraceParent(contextOfTraceParent('garbage'))).toBeNull();
  });

  it('an ingest span is a child of the active span; a raised event\'s starts a trace linked to its task\'s', async () => {
    const exporter = new InMemorySpanExporter();
    // The Node provider: the AsyncLocalStorage context manager, as `orchestrator start` has it.
    new NodeTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] }).register();
    try {
      const task = '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01';
      const stored = await context.with(contextOfTraceParent(task), () => ingestSpan('PROJECT_CREATED', {}, async (tp) => tp));
      const raised = await raisedBy(task, () => ingestSpan('SCENE_WRITTEN', {}, async (tp) => tp));
      const [created, scene] = exporter.getFinishedSpans();
      expect(created!.name).toBe('ingest PROJECT_CREATED');
      expect(created!.spanContext().traceId).toBe('4bf92f3577b34da6a3ce929d0e0e4736');
      expect(created!.parentSpanContext?.spanId).toBe('00f067aa0ba902b7');
      expect(stored).toBe(formatTraceParent(created!.spanContext()));
      expect(scene!.name).toBe('ingest SCENE_WRITTEN');
      expect(scene!.parentSpanContext).toBeUndefined();
      expect(scene!.spanContext().traceId).not.toBe('4bf92f3577b34da6a3ce929d0e0e4736');
      expect(scene!.links.map((l) => l.context.spanId)).toEqual(['00f067aa0ba902b7']);
      expect(raised).toBe(formatTraceParent(scene!.spanContext()));
    } finally {
      context.disable();
      propagation.disable();
    }
  });
});

describe('the start command\'s tracing settings', () => {
  it('turns traces on with an OTLP endpoint or an exporter, and off with none', () => {
    expect(tracingWanted(undefined)).toBe(false);
    expect(tracingWanted({})).toBe(false);
    expect(tracingWanted({ endpoint: 'http://collector:4318' })).toBe(true);
    expect(tracingWanted({ tracesEndpoint: 'http://collector:4318/v1/traces' })).toBe(true);
    expect(tracingWanted({ exporter: 'otlp' })).toBe(true);
    expect(tracingWanted({ exporter: 'console' })).toBe(true);
    expect(tracingWanted({ exporter: 'none', endpoint: 'http://collector:4318' })).toBe(false);
  });

  it('validates OTEL_TRACES_EXPORTER and the endpoints once, with the other settings', () => {
    expect(loadConfig({}).tracing).toBeUndefined();
    expect(loadConfig({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4318', OTEL_SERVICE_NAME: 'orch', OTEL_TRACES_EXPORTER: ' OTLP ' }).tracing).toEqual({
      endpoint: 'http://collector:4318',
      serviceName: 'orch',
      exporter: 'otlp',
    });
    const refused = (() => {
      try {
        loadConfig({ OTEL_TRACES_EXPORTER: 'zipkin', OTEL_EXPORTER_OTLP_ENDPOINT: 'collector:4318' });
      } catch (err) {
        return err;
      }
    })();
    expect(refused).toBeInstanceOf(ConfigError);
    expect((refused as Error).message).toContain('OTEL_TRACES_EXPORTER');
    expect((refused as Error).message).toContain('OTEL_EXPORTER_OTLP_ENDPOINT');
  });
});
