import type { MsgHdrs } from '@nats-io/transport-node';
import { propagation, type Link, type TextMapGetter, type TextMapSetter } from '@opentelemetry/api';
import {
  ATTR_MESSAGING_BATCH_MESSAGE_COUNT,
  ATTR_MESSAGING_DESTINATION_NAME,
  ATTR_MESSAGING_DESTINATION_TEMPLATE,
  ATTR_MESSAGING_MESSAGE_ID,
  ATTR_MESSAGING_OPERATION_NAME,
  ATTR_MESSAGING_OPERATION_TYPE,
  ATTR_MESSAGING_SYSTEM,
  ROOT_CONTEXT,
  SpanKind,
  inSpan,
  type Context,
} from '../../tracing/tracing.js';

/**
 * Trace context in NATS message headers (W3C `traceparent` / `tracestate`, written and
 * read by the registered propagator), and the messaging spans of the OpenTelemetry
 * semantic conventions: `send <destination template>` (PRODUCER) around a publish,
 * `process <destination template>` (CONSUMER) around a message's handling, with
 * `messaging.system=nats`, `messaging.destination.name` (the subject) and
 * `messaging.message.id`. Used by the event bus (dispatches out; events, results,
 * heartbeats and decisions in) and by the agent SDK (dispatches in; results and
 * heartbeats out). Callers check `tracingOn()` first: nothing here runs when tracing is off.
 */

const setter: TextMapSetter<MsgHdrs> = {
  set: (h, key, value) => h.set(key, value),
};

const getter: TextMapGetter<MsgHdrs | undefined> = {
  get: (h, key) => (h?.has(key) ? h.get(key) : undefined),
  keys: (h) => (h ? h.keys() : []),
};

/** Writes the trace of `ctx` (its active span) into the message headers. */
export function injectTrace(ctx: Context, h: MsgHdrs): void {
  propagation.inject(ctx, h, setter);
}

/** The trace a message carries, as the parent context of its handling (the root context when it carries none). */
export function extractTrace(h: MsgHdrs | undefined): Context {
  return propagation.extract(ROOT_CONTEXT, h, getter);
}

function attributes(operation: 'send' | 'process', template: string, subject: string, messageId: string | undefined, count?: number) {
  return {
    [ATTR_MESSAGING_SYSTEM]: 'nats',
    [ATTR_MESSAGING_OPERATION_TYPE]: operation,
    [ATTR_MESSAGING_OPERATION_NAME]: operation,
    [ATTR_MESSAGING_DESTINATION_NAME]: subject,
    [ATTR_MESSAGING_DESTINATION_TEMPLATE]: template,
    ...(messageId !== undefined ? { [ATTR_MESSAGING_MESSAGE_ID]: messageId } : {}),
    ...(count !== undefined && count > 1 ? { [ATTR_MESSAGING_BATCH_MESSAGE_COUNT]: count } : {}),
  };
}

/**
 * A publish in its PRODUCER span `send <template>`, a child of the active span (or of
 * `options.parent`), linked to `options.links` (the other messages of a batch); `publish`
 * gets the context to inject into the message's headers.
 */
export function sendTraced<T>(
  template: string,
  subject: string,
  messageId: string | undefined,
  publish: (ctx: Context) => Promise<T>,
  options: { parent?: Context; links?: Link[]; count?: number } = {},
): Promise<T> {
  return inSpan(
    `send ${template}`,
    {
      kind: SpanKind.PRODUCER,
      attributes: attributes('send', template, subject, messageId, options.count),
      ...(options.parent ? { parent: options.parent } : {}),
      ...(options.links ? { links: options.links } : {}),
    },
    (_span, ctx) => publish(ctx),
  );
}

/**
 * A message's handling in its CONSUMER span `process <template>`, a child of the trace
 * the message carries (a root when it carries none); `handle` runs with that span
 * active, and gets its context.
 */
export function processTraced<T>(
  template: string,
  subject: string,
  messageId: string | undefined,
  h: MsgHdrs | undefined,
  handle: (ctx: Context) => Promise<T>,
  count?: number,
): Promise<T> {
  return inSpan(
    `process ${template}`,
    { kind: SpanKind.CONSUMER, attributes: attributes('process', template, subject, messageId, count), parent: extractTrace(h) },
    (_span, ctx) => handle(ctx),
  );
}

/** The message id a JetStream message was published with (`Nats-Msg-Id`), if any. */
export function natsMessageId(h: MsgHdrs | undefined): string | undefined {
  const id = h?.get('Nats-Msg-Id');
  return id ? id : undefined;
}
