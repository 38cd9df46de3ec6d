import { hostname } from 'node:os';
import { z } from 'zod';
import { ConfigError, type ConfigProblem } from '../errors.js';
import { SETTINGS, parseHostPort, type Setting } from './settings.js';
import type { TaskTypeOverrides } from './task-types.js';

/** The parsed configuration the core takes. Durations are in milliseconds. */
export interface OrchestratorConfig {
  redis: { url?: string; host: string; port: number; db: number; password?: string; tls?: { caFile?: string }; keyPrefix: string };
  queue: { key: string };
  scheduler: {
    maxConcurrentTasks: number;
    intervalMs: number;
    taskTimeoutMs: number;
    maxAttempts: number;
    retryBackoffMs: number;
    /** Per-agent limits on RUNNING tasks (per process); agents not named are limited only by maxConcurrentTasks. */
    agentLimits: Record<string, number>;
  };
  budget: { checkEnabled: boolean; warningThreshold: number };
  approval: { enabled: boolean; timeoutMs: number; timeoutPolicy: 'reject' | 'approve' | 'remind' };
  /** MAX_TASKS_PER_EVENT: the most tasks one event, submission or rejection may create. */
  ingest: { maxTasksPerEvent: number };
  database: { url: string; schema: string; poolSize: number };
  nats: {
    servers: string[];
    subjectPrefix: string;
    user?: string;
    password?: string;
    token?: string;
    credsFile?: string;
    nkeySeedFile?: string;
    tls?: { caFile?: string; certFile?: string; keyFile?: string };
    /** The reply subjects' prefix (nats.js `inboxPrefix`); default `_INBOX`. */
    inboxPrefix?: string;
    maxPayloadBytes: number;
    ackWaitSeconds: number;
    /** DISPATCH_BATCH: agents that take several dispatches per message, with the most one carries. */
    dispatchBatch: Record<string, number>;
  };
  /** Status and budget notices (at least once): after this long without a heartbeat an instance's are announced by another. */
  notices: { staleAfterMs: number };
  /** Where `orchestrator start` serves /livez, /readyz and /metrics (HTTP_ADDR); port 0: a free one. */
  http: { host: string; port: number };
  /** The review console on the HTTP server (CONSOLE_*, ARTIFACTS_DIR). */
  console: { enabled: boolean; token?: string; basicAuth?: { user: string; password: string }[]; artifactsDir?: string; artifactResolver?: string };
  /** A JSON pipeline file replacing the default video pipeline. */
  pipelineFile?: string;
  /** Per task type overrides of the catalogue (TASK_TYPES_FILE, TASK_TIMEOUTS); applied by `configuredCatalog`. */
  taskTypes: TaskTypeOverrides;
  instanceId: string;
  logLevel: 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';
  /** Traces from `orchestrator start` (OTEL_*; src/cli/tracing.ts); the library itself only uses the OpenTelemetry API. */
  tracing?: { exporter?: 'otlp' | 'console' | 'none'; endpoint?: string; tracesEndpoint?: string; serviceName?: string };
}

type DeepPartial<T> = { [K in keyof T]?: T[K] extends object ? DeepPartial<T[K]> : T[K] };

/**
 * Overrides given in code, in the units of the environment variables
 * (`scheduler.intervalSeconds`, `approval.timeoutMinutes`, ...); they win over the environment.
 */
export type ConfigOverrides = DeepPartial<{
  redis: { url: string; host: string; port: number; db: number; password: string; tls: { caFile: string }; keyPrefix: string };
  queue: { key: string };
  scheduler: {
    maxConcurrentTasks: number;
    intervalSeconds: number;
    taskTimeoutSeconds: number;
    maxAttempts: number;
    retryBackoffSeconds: number;
    agentLimits: Record<string, number>;
  };
  budget: { checkEnabled: boolean; warningThreshold: number };
  approval: { enabled: boolean; timeoutMinutes: number; timeoutPolicy: 'reject' | 'approve' | 'remind' };
  ingest: { maxTasksPerEvent: number };
  database: { url: string; schema: string; poolSize: number };
  nats: {
    servers: string;
    subjectPrefix: string;
    user: string;
    password: string;
    token: string;
    credsFile: string;
    nkeySeedFile: string;
    tls: { caFile: string; certFile: string; keyFile: string };
    inboxPrefix: string;
    maxPayloadBytes: number;
    ackWaitSeconds: number;
    dispatchBatch: Record<string, number>;
  };
  notices: { staleAfterSeconds: number };
  http: { addr: string };
  console: { enabled: boolean; token: string; artifactsDir: string; artifactResolver: string };
  pipelineFile: string;
  /** `file`: a TASK_TYPES_FILE path; `timeouts`: seconds by task type (TASK_TIMEOUTS). */
  taskTypes: { file: string; timeouts: Record<string, number> };
  instanceId: string;
  logLevel: OrchestratorConfig['logLevel'];
  tracing: { exporter: 'otlp' | 'console' | 'none'; endpoint: string; tracesEndpoint: string; serviceName: string };
}>;

function getPath(obj: unknown, path: readonly string[]): unknown {
  let cur = obj;
  for (const key of path) {
    if (typeof cur !== 'object' || cur === null) return undefined;
    cur = (cur as Record<string, unknown>)[key];
  }
  return cur;
}

function setPath(obj: Record<string, unknown>, path: readonly string[], value: unknown): void {
  let cur = obj;
  for (const key of path.slice(0, -1)) {
    cur[key] ??= {};
    cur = cur[key] as Record<string, unknown>;
  }
  cur[path[path.length - 1]!] = value;
}

/**
 * `scheme://user:secret@host` → `scheme://user:***@host` and `scheme://token@host` →
 * `scheme://***@host`, for every URL of a list or a message. The user information is
 * everything from `//` to the last `@` before the path, query, fragment or a blank: a
 * password may hold any character a URL allows there (`,` `;` `:` `!` `$` `&` `'` `(`
 * `)` `*` `+` `=` and escapes), a comma included, so a list of servers is not split first.
 */
export function redactUrl(value: string): string {
  return value.replace(/\/\/([^/?#\s]*)@/g, (_, userinfo: string) => {
    const colon = userinfo.indexOf(':');
    return colon === -1 ? '//***@' : `//${userinfo.slice(0, colon)}:***@`;
  });
}

function display(setting: Setting, value: unknown): string | undefined {
  if (value === undefined) return undefined;
  if (setting.secret) return '***';
  const s = typeof value === 'string' ? value : JSON.stringify(value);
  return setting.url ? redactUrl(s) : s;
}

/**
 * Reads the configuration from the environment (and overrides), validating everything
 * at once. Throws one ConfigError naming every bad variable and why; secrets are redacted.
 */
export function loadConfig(env: NodeJS.ProcessEnv = process.env, overrides: ConfigOverrides = {}): OrchestratorConfig {
  const problems: ConfigProblem[] = [];
  const raw: Record<string, unknown> = {};
  for (const setting of SETTINGS) {
    const override = getPath(overrides, setting.path);
    const envValue = env[setting.env];
    const fromOverride = override !== undefined;
    const given = fromOverride ? override : envValue !== undefined && envValue.trim() !== '' ? envValue : undefined;
    const result = (setting.schema as z.ZodType).safeParse(given === undefined ? setting.default : given);
    if (result.success) {
      if (result.data !== undefined) setPath(raw, setting.path, result.data);
    } else {
      problems.push({
        key: fromOverride ? setting.path.join('.') : setting.env,
        value: display(setting, given),
        reason: given === undefined ? 'is required' : (result.error.issues[0]?.message ?? 'invalid'),
      });
    }
  }
  if (problems.length) throw new ConfigError(problems);
  return finish(raw);
}

function finish(raw: Record<string, unknown>): OrchestratorConfig {
  const r = raw as {
    redis: OrchestratorConfig['redis'];
    queue: OrchestratorConfig['queue'];
    scheduler: { maxConcurrentTasks: number; intervalSeconds: number; taskTimeoutSeconds: number; maxAttempts: number; retryBackoffSeconds: number; agentLimits: Record<string, number> };
    budget: OrchestratorConfig['budget'];
    approval: { enabled: boolean; timeoutMinutes: number; timeoutPolicy: OrchestratorConfig['approval']['timeoutPolicy'] };
    ingest: OrchestratorConfig['ingest'];
    database: OrchestratorConfig['database'];
    nats: Omit<OrchestratorConfig['nats'], 'servers'> & { servers: string };
    notices: { staleAfterSeconds: number };
    http: { addr: string };
    console: OrchestratorConfig['console'];
    pipelineFile?: string;
    taskTypes: { file?: TaskTypeOverrides['file']; timeouts: Record<string, number> };
    instanceId?: string;
    logLevel: OrchestratorConfig['logLevel'];
    tracing?: OrchestratorConfig['tracing'];
  };
  return {
    redis: r.redis,
    queue: r.queue,
    scheduler: {
      maxConcurrentTasks: r.scheduler.maxConcurrentTasks,
      intervalMs: Math.round(r.scheduler.intervalSeconds * 1000),
      taskTimeoutMs: Math.round(r.scheduler.taskTimeoutSeconds * 1000),
      maxAttempts: r.scheduler.maxAttempts,
      retryBackoffMs: Math.round(r.scheduler.retryBackoffSeconds * 1000),
      agentLimits: r.scheduler.agentLimits,
    },
    budget: r.budget,
    approval: {
      enabled: r.approval.enabled,
      timeoutMs: Math.round(r.approval.timeoutMinutes * 60_000),
      timeoutPolicy: r.approval.timeoutPolicy,
    },
    ingest: r.ingest,
    database: r.database,
    nats: { ...r.nats, servers: r.nats.servers.split(',').map((s) => s.trim()) },
    notices: { staleAfterMs: Math.round(r.notices.staleAfterSeconds * 1000) },
    http: parseHostPort(r.http.addr)!,
    console: r.console,
    ...(r.pipelineFile ? { pipelineFile: r.pipelineFile } : {}),
    taskTypes: { ...(r.taskTypes.file ? { file: r.taskTypes.file } : {}), timeoutsMs: r.taskTypes.timeouts },
    instanceId: r.instanceId ?? `${hostname()}-${process.pid}`.slice(0, 100),
    logLevel: r.logLevel,
    ...(r.tracing ? { tracing: r.tracing } : {}),
  };
}

/** Whether `orchestrator start` records traces: OTEL_TRACES_EXPORTER=otlp|console, or an OTLP endpoint set (and the exporter not `none`). */
export function tracingWanted(tracing: OrchestratorConfig['tracing']): boolean {
  if (!tracing || tracing.exporter === 'none') return false;
  return tracing.exporter !== undefined || tracing.endpoint !== undefined || tracing.tracesEndpoint !== undefined;
}

/** The configuration with every secret removed, safe to log. */
export function redactedConfig(config: OrchestratorConfig): unknown {
  const copy = structuredClone(config) as unknown as Record<string, unknown>;
  for (const setting of SETTINGS) {
    const value = getPath(copy, setting.path);
    if (value === undefined) continue;
    if (setting.secret) setPath(copy, setting.path, '***');
    else if (setting.url) {
      setPath(copy, setting.path, Array.isArray(value) ? value.map((v) => redactUrl(String(v))) : redactUrl(String(value)));
    }
  }
  return copy;
}
