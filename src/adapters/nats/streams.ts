import {
  AckPolicy,
  DeliverPolicy,
  DiscardPolicy,
  JetStreamApiError,
  RetentionPolicy,
  StorageType,
  type ConsumerConfig,
  type JetStreamManager,
  type StreamConfig,
} from '@nats-io/jetstream';
import { nanos } from '@nats-io/transport-node';
import { ConfigError, ServiceUnavailableError } from '../../errors.js';
import type { NatsSubjects } from './subjects.js';

/**
 * The JetStream layout (names are `<streamPrefix>_<ROLE>`):
 *
 * - `<P>_INBOUND`: work-queue stream over events, results, heartbeats and approval
 *   decisions. Core publishes by agents are captured too; `Nats-Msg-Id` de-duplicates
 *   within the duplicate window. A message leaves the stream once the orchestrator
 *   acknowledged (handled) or terminated (dead-lettered) it; max age bounds what is
 *   kept while no orchestrator runs.
 * - `<P>_TASKS`: work-queue stream over `tasks.*`; one durable consumer per agent
 *   (`agent_<name>`, shared by every worker process of that agent), so a dispatch waits
 *   for an agent that starts later.
 * - `<P>_DLQ`: limits stream over `dlq`, the rejected inbound messages, kept for a while.
 */
export interface StreamNames {
  inbound: string;
  tasks: string;
  dlq: string;
}

export interface StreamSettings {
  /** Window in which a repeated `Nats-Msg-Id` is dropped; default 2 minutes. */
  duplicateWindowMs?: number;
  /** How long unconsumed inbound messages and dispatches are kept; default 7 days. */
  maxAgeMs?: number;
  /** How long dead letters are kept; default 30 days. */
  dlqMaxAgeMs?: number;
  /** Stream replicas (clustered JetStream); default 1. */
  replicas?: number;
}

export const DEFAULT_DUPLICATE_WINDOW_MS = 2 * 60_000;
export const DEFAULT_MAX_AGE_MS = 7 * 24 * 3_600_000;
export const DEFAULT_DLQ_MAX_AGE_MS = 30 * 24 * 3_600_000;
export const INBOUND_CONSUMER = 'orchestrator';

/** `lap` → `LAP`, `a.b-c` → `A_B-C`: a valid stream-name prefix derived from the subject prefix. */
export function defaultStreamPrefix(subjectPrefix: string): string {
  return subjectPrefix.replace(/[^A-Za-z0-9_-]/g, '_').toUpperCase();
}

export function streamNames(streamPrefix: string): StreamNames {
  if (!/^[A-Za-z0-9_-]+$/.test(streamPrefix)) {
    throw new ConfigError([{ key: 'nats.streamPrefix', value: streamPrefix, reason: 'letters, digits, _ and - only' }]);
  }
  return { inbound: `${streamPrefix}_INBOUND`, tasks: `${streamPrefix}_TASKS`, dlq: `${streamPrefix}_DLQ` };
}

export function agentConsumerName(agent: string): string {
  return `agent_${agent}`;
}

export type StreamRole = keyof StreamNames;

export function streamConfig(
  role: StreamRole,
  names: StreamNames,
  subjects: NatsSubjects,
  settings: StreamSettings = {},
): Partial<StreamConfig> & { name: string } {
  const common = {
    storage: StorageType.File,
    num_replicas: settings.replicas ?? 1,
    discard: DiscardPolicy.Old,
    duplicate_window: nanos(settings.duplicateWindowMs ?? DEFAULT_DUPLICATE_WINDOW_MS),
  };
  switch (role) {
    case 'inbound':
      return {
        ...common,
        name: names.inbound,
        description: 'Inbound events, results, heartbeats and approval decisions for the orchestrator',
        subjects: [...subjects.inbound],
        retention: RetentionPolicy.Workqueue,
        max_age: nanos(settings.maxAgeMs ?? DEFAULT_MAX_AGE_MS),
      };
    case 'tasks':
      return {
        ...common,
        name: names.tasks,
        description: 'Task dispatches, one durable consumer per agent',
        subjects: [subjects.tasks],
        retention: RetentionPolicy.Workqueue,
        max_age: nanos(settings.maxAgeMs ?? DEFAULT_MAX_AGE_MS),
      };
    case 'dlq':
      return {
        ...common,
        name: names.dlq,
        description: 'Dead letters: rejected inbound messages with the reason',
        subjects: [subjects.dlq],
        retention: RetentionPolicy.Limits,
        max_age: nanos(settings.dlqMaxAgeMs ?? DEFAULT_DLQ_MAX_AGE_MS),
      };
  }
}

const STREAM_NAME_IN_USE = 10058;

function apiCode(err: unknown): number | undefined {
  return err instanceof JetStreamApiError ? err.code : undefined;
}

/**
 * Creates the stream, or updates it to `config` when it exists with another one
 * (`update`), or leaves an existing stream alone (`create-if-missing`, for agents, which
 * do not own the layout). Idempotent; safe when several processes race.
 */
export async function ensureStream(
  jsm: JetStreamManager,
  config: Partial<StreamConfig> & { name: string },
  mode: 'update' | 'create-if-missing',
): Promise<void> {
  try {
    await jsm.streams.add({ ...config });
  } catch (err) {
    if (apiCode(err) !== STREAM_NAME_IN_USE) throw jetstreamFailure(`create stream ${config.name}`, err);
    if (mode === 'create-if-missing') return;
    try {
      const { name, retention: _r, storage: _s, ...changeable } = config;
      await jsm.streams.update(name, changeable);
    } catch (updateErr) {
      throw jetstreamFailure(`update stream ${config.name}`, updateErr);
    }
  }
}

export interface DurableSettings {
  ackWaitMs: number;
  maxDeliver: number;
  filterSubject?: string;
  maxAckPending?: number;
}

export function durableConfig(name: string, settings: DurableSettings): Partial<ConsumerConfig> {
  const config: Partial<ConsumerConfig> = {
    durable_name: name,
    ack_policy: AckPolicy.Explicit,
    deliver_policy: DeliverPolicy.All,
    ack_wait: nanos(settings.ackWaitMs),
    max_deliver: settings.maxDeliver,
  };
  if (settings.filterSubject !== undefined) config.filter_subject = settings.filterSubject;
  if (settings.maxAckPending !== undefined) config.max_ack_pending = settings.maxAckPending;
  return config;
}

/** Creates the durable pull consumer, or updates its settings when it exists. */
export async function ensureConsumer(jsm: JetStreamManager, stream: string, config: Partial<ConsumerConfig>): Promise<void> {
  try {
    await jsm.consumers.add(stream, config);
  } catch (err) {
    const name = config.durable_name ?? '?';
    if (!(err instanceof JetStreamApiError)) throw jetstreamFailure(`create consumer ${stream}/${name}`, err);
    try {
      const { durable_name: _d, ack_policy: _a, deliver_policy: _p, filter_subject: _f, ...changeable } = config;
      await jsm.consumers.update(stream, name, changeable);
    } catch (updateErr) {
      throw jetstreamFailure(`create or update consumer ${stream}/${name}`, updateErr);
    }
  }
}

/** Whatever a JetStream call rejected with, as a retryable ServiceUnavailableError. */
export function jetstreamFailure(operation: string, err: unknown): ServiceUnavailableError {
  if (err instanceof ServiceUnavailableError) return err;
  const detail = err instanceof Error ? err.message : String(err);
  return new ServiceUnavailableError('nats', `NATS ${operation} failed: ${detail}`, { cause: err });
}
