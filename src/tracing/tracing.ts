import {
  ProxyTracerProvider,
  ROOT_CONTEXT,
  SpanKind,
  SpanStatusCode,
  TraceFlags,
  context,
  createContextKey,
  isSpanContextValid,
  trace,
  type Attributes,
  type Context,
  type Link,
  type Span,
  type SpanContext,
  type Tracer,
} from '@opentelemetry/api';

/**
 * Tracing, on the OpenTelemetry API only: the library never loads an SDK. Spans are
 * recorded when the application registered a tracer provider (`orchestrator start` does
 * when OTEL_EXPORTER_OTLP_ENDPOINT or OTEL_TRACES_EXPORTER is set: src/cli/tracing.ts).
 *
 * Off (no provider registered), every hook costs one check (`tracingOn`): no span is
 * started (not even the API's non-recording one), no header written, nothing allocated.
 *
 * A leaf module: it imports only @opentelemetry/api, so every layer that instruments
 * (the NATS adapter, the agent SDK, the use cases) may import it.
 */

/** The instrumentation scope of every span. */
export const TRACER_NAME = '@livingagent/orchestrator';

/** OpenTelemetry messaging semantic conventions (attribute names; the library does not load @opentelemetry/semantic-conventions). */
export const ATTR_MESSAGING_SYSTEM = 'messaging.system';
export const ATTR_MESSAGING_OPERATION_TYPE = 'messaging.operation.type';
export const ATTR_MESSAGING_OPERATION_NAME = 'messaging.operation.name';
export const ATTR_MESSAGING_DESTINATION_NAME = 'messaging.destination.name';
export const ATTR_MESSAGING_DESTINATION_TEMPLATE = 'messaging.destination.template';
export const ATTR_MESSAGING_MESSAGE_ID = 'messaging.message.id';
export const ATTR_MESSAGING_BATCH_MESSAGE_COUNT = 'messaging.batch.message_count';

/** The provider a ProxyTracerProvider answers with while nothing is registered (the API's no-op one). */
const NOOP_PROVIDER = new ProxyTracerProvider().getDelegate();

/**
 * Whether a tracer provider is registered: one property read and a comparison, nothing
 * allocated. Every hook checks it first and does nothing else when it is false.
 */
export function tracingOn(): boolean {
  const provider = trace.getTracerProvider() as Partial<ProxyTracerProvider>;
  return typeof provider.getDelegate !== 'function' || provider.getDelegate() !== NOOP_PROVIDER;
}

/** The tracer (asked of the provider each time: a test may register another one; the SDK keeps its tracers). */
export function tracer(): Tracer {
  return trace.getTracer(TRACER_NAME);
}

// -----------------------------------------------------------------------------------------
// W3C traceparent, stored with tasks

const TRACEPARENT = /^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$/;

/** A span context as a W3C `traceparent` value (version 00); null when invalid. */
export function formatTraceParent(sc: SpanContext): string | null {
  if (!isSpanContextValid(sc)) return null;
  return `00-${sc.traceId}-${sc.spanId}-${(sc.traceFlags & TraceFlags.SAMPLED) === TraceFlags.SAMPLED ? '01' : '00'}`;
}

/** A W3C `traceparent` value as a remote span context; null when malformed. */
export function parseTraceParent(value: string): SpanContext | null {
  const m = TRACEPARENT.exec(value);
  if (!m) return null;
  const sc: SpanContext = { traceId: m[1]!, spanId: m[2]!, traceFlags: parseInt(m[3]!, 16) & TraceFlags.SAMPLED, isRemote: true };
  return isSpanContextValid(sc) ? sc : null;
}

/** The traceparent of the span active in `ctx`; null when none. */
export function activeTraceParent(ctx: Context = context.active()): string | null {
  const sc = trace.getSpanContext(ctx);
  return sc ? formatTraceParent(sc) : null;
}

/** Runs `fn` in the context of a stored traceparent (what it starts is a child of that span) when tracing is on and there is one; plainly otherwise. */
export function inTraceOf<T>(traceParent: string | null | undefined, fn: () => T): T {
  return traceParent && tracingOn() ? context.with(contextOfTraceParent(traceParent), fn) : fn();
}

/** `base` (the root context by default) with the span of a stored traceparent as the parent of what starts in it. */
export function contextOfTraceParent(traceParent: string, base: Context = ROOT_CONTEXT): Context {
  const sc = parseTraceParent(traceParent);
  return sc ? trace.setSpanContext(base, sc) : base;
}

// -----------------------------------------------------------------------------------------
// Spans

/** Ends `span` with the outcome of `work` (an error recorded, status ERROR); returns `work`. */
export function endWith<T>(span: Span, work: Promise<T>): Promise<T> {
  return work.then(
    (value) => {
      span.end();
      return value;
    },
    (err: unknown) => {
      failed(span, err);
      span.end();
      throw err;
    },
  );
}

/** Records an error on `span` (exception event, status ERROR). */
export function failed(span: Span, err: unknown): void {
  if (err instanceof Error) span.recordException(err);
  span.setStatus({ code: SpanStatusCode.ERROR, message: err instanceof Error ? err.message : String(err) });
}

/**
 * Runs `fn` in a new span (a child of the active one, or of `options.parent`), which
 * ends when `fn`'s promise settles. Only called when `tracingOn()`.
 */
export function inSpan<T>(
  name: string,
  options: { kind?: SpanKind; attributes?: Attributes; parent?: Context; links?: Link[]; root?: boolean },
  fn: (span: Span, ctx: Context) => Promise<T>,
): Promise<T> {
  const parent = options.parent ?? context.active();
  const span = tracer().startSpan(
    name,
    {
      kind: options.kind ?? SpanKind.INTERNAL,
      ...(options.attributes ? { attributes: options.attributes } : {}),
      ...(options.links?.length ? { links: options.links } : {}),
      ...(options.root ? { root: true } : {}),
    },
    parent,
  );
  const ctx = trace.setSpan(parent, span);
  let work: Promise<T>;
  try {
    work = context.with(ctx, () => fn(span, ctx));
  } catch (err) {
    work = Promise.reject(err);
  }
  return endWith(span, work);
}

/** Links to the spans active in `contexts` (those that have one). */
export function linksTo(contexts: readonly (Context | undefined)[]): Link[] {
  const links: Link[] = [];
  for (const ctx of contexts) {
    const sc = ctx && trace.getSpanContext(ctx);
    if (sc && isSpanContextValid(sc)) links.push({ context: sc });
  }
  return links;
}

/**
 * Links the active span (a commit's) to the traces stored with tasks that are not its own:
 * a result that came without trace context (an agent without an SDK) is still found from
 * its event's trace. Only called when `tracingOn()`.
 */
export function linkToTasks(traceParents: Iterable<string | null>): void {
  const span = trace.getActiveSpan();
  if (!span?.isRecording()) return;
  const own = span.spanContext().traceId;
  for (const tp of traceParents) {
    const sc = tp ? parseTraceParent(tp) : null;
    if (sc && sc.traceId !== own) span.addLink({ context: sc });
  }
}

// -----------------------------------------------------------------------------------------
// Events raised by tasks

/** The task whose completion raised an event (see `raisedBy`): the ingest span links to it. */
const RAISED_BY = createContextKey('livingagent raised by');

/**
 * Runs `fn` (the ingest of an event a task's completion raised) in a context of its own:
 * its ingest span starts a new trace — one trace per event and its tasks — linked to the
 * raising task's trace (`traceParent`, stored with the task), not a child of whatever
 * reaction or sweep happens to run it. Only called when `tracingOn()`.
 */
export function raisedBy<T>(traceParent: string | null | undefined, fn: () => Promise<T>): Promise<T> {
  const sc = traceParent ? parseTraceParent(traceParent) : null;
  return context.with(sc ? ROOT_CONTEXT.setValue(RAISED_BY, sc) : ROOT_CONTEXT, fn);
}

/**
 * Runs an event's ingest in its span, `ingest <event type>`: a child of the active span
 * (the `process` span of the message that brought it, a caller's span in code), or, for
 * an event raised by a task, a new trace linked to the task's. `fn` gets the traceparent
 * of the ingest span, which the tasks it creates store: their dispatches, however late
 * and by whichever process, are children of it. Only called when `tracingOn()`.
 */
export function ingestSpan<T>(eventType: string, attributes: Attributes, fn: (traceParent: string | null) => Promise<T>): Promise<T> {
  const active = context.active();
  const raiser = active.getValue(RAISED_BY) as SpanContext | undefined;
  return inSpan(
    `ingest ${eventType}`,
    // A raised event's span is a root (and its context no longer says raised).
    raiser ? { attributes, links: [{ context: raiser }], root: true, parent: ROOT_CONTEXT } : { attributes, parent: active },
    (span) => fn(formatTraceParent(span.spanContext())),
  );
}

export { SpanKind, context, ROOT_CONTEXT, type Context, type Span };
