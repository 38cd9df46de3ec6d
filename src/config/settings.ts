import { z } from 'zod';
import { taskTimeouts, taskTypesFile } from './task-types.js';
import { MAX_DISPATCHES_PER_MESSAGE } from '../domain/messages.js';

/**
 * Every environment variable the orchestrator reads: its option path, meaning, unit,
 * default and the zod schema that parses the raw string. The README's table is checked
 * against this list by a test.
 */

const blankToUndefined = (v: unknown): unknown => (typeof v === 'string' && v.trim() === '' ? undefined : v);
const toNumber = (v: unknown): unknown => {
  const b = blankToUndefined(v);
  return typeof b === 'string' ? Number(b.trim()) : b;
};

const positiveInt = (what = 'a positive integer') =>
  z.preprocess(toNumber, z.number({ error: `expected ${what}` }).int({ error: `expected ${what}` }).positive({ error: `expected ${what}` }));
const nonNegativeInt = (what: string) =>
  z.preprocess(toNumber, z.number({ error: `expected ${what}` }).int({ error: `expected ${what}` }).min(0, { error: `expected ${what}` }));
const port = z.preprocess(
  toNumber,
  z.number({ error: 'expected a port number (1-65535)' }).int({ error: 'expected a port number (1-65535)' }).min(1, { error: 'expected a port number (1-65535)' }).max(65535, { error: 'expected a port number (1-65535)' }),
);
const positiveAmount = (unit: string) =>
  z.preprocess(
    toNumber,
    z
      .number({ error: `expected a positive number of ${unit}` })
      .positive({ error: `expected a positive number of ${unit}` })
      .finite({ error: `expected a positive number of ${unit}` }),
  );
const positiveSeconds = positiveAmount('seconds');
const fraction = z.preprocess(
  toNumber,
  z.number({ error: 'expected a number between 0 and 1' }).gt(0, { error: 'expected a number between 0 and 1' }).max(1, { error: 'expected a number between 0 and 1' }),
);
const bool = z.preprocess(
  (v) => {
    const b = blankToUndefined(v);
    if (typeof b !== 'string') return b;
    const s = b.trim().toLowerCase();
    if (['true', '1', 'yes', 'on'].includes(s)) return true;
    if (['false', '0', 'no', 'off'].includes(s)) return false;
    return b;
  },
  z.boolean({ error: 'expected true or false' }),
);
const text = (what: string) => z.preprocess(blankToUndefined, z.string({ error: `expected ${what}` }).min(1));

/** `user:password` pairs, comma-separated (a password may hold `:`; neither a `,`). */
const basicAuthUsers = z.preprocess(
  blankToUndefined,
  z
    .string()
    .transform((v, ctx) => {
      const users: { user: string; password: string }[] = [];
      for (const entry of v.split(',').map((e) => e.trim())) {
        const at = entry.indexOf(':');
        if (at <= 0 || at === entry.length - 1) {
          ctx.addIssue({ code: 'custom', message: 'expected user:password pairs, comma-separated' });
          return z.NEVER;
        }
        users.push({ user: entry.slice(0, at), password: entry.slice(at + 1) });
      }
      return users;
    }),
);
const urlWith = (protocols: readonly string[], what: string) =>
  z.preprocess(
    blankToUndefined,
    z.string({ error: `expected ${what}` }).refine((s) => {
      try {
        return protocols.includes(new URL(s).protocol);
      } catch {
        return false;
      }
    }, { error: `expected ${what}` }),
  );
/** NATS takes a comma-separated list of servers: nats://host:port, tls://host:port or host:port. */
const natsServers = z.preprocess(
  blankToUndefined,
  z.string({ error: 'expected nats://host:port (comma-separated for a cluster)' }).refine(
    (s) =>
      s.split(',').every((part) => {
        const p = part.trim();
        if (/^[A-Za-z0-9.[\]:-]+:\d{1,5}$/.test(p)) return true;
        try {
          const u = new URL(p);
          return ['nats:', 'tls:', 'ws:', 'wss:'].includes(u.protocol) && u.hostname !== '';
        } catch {
          return false;
        }
      }),
    { error: 'expected nats://host:port (comma-separated for a cluster)' },
  ),
);
const subjectToken = z.preprocess(
  blankToUndefined,
  z.string().regex(/^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$/, { error: 'expected a NATS subject prefix such as lap (letters, digits, _ - and dots)' }),
);
/** `host:port` (an IPv6 host in brackets: `[::1]:8080`); port 0 takes a free one. */
export function parseHostPort(value: string): { host: string; port: number } | null {
  const m = /^(?:\[([0-9A-Fa-f:.]+)\]|([A-Za-z0-9.-]+)):(\d{1,5})$/.exec(value.trim());
  if (!m) return null;
  const port = Number(m[3]);
  if (port > 65535) return null;
  return { host: m[1] ?? m[2]!, port };
}
const hostPort = z.preprocess(
  blankToUndefined,
  z.string({ error: 'expected host:port, such as 127.0.0.1:8080 or 0.0.0.0:8080' }).refine((s) => parseHostPort(s) !== null, {
    error: 'expected host:port, such as 127.0.0.1:8080 or 0.0.0.0:8080',
  }),
);
const logLevel = z.preprocess(
  (v) => (typeof v === 'string' ? v.trim().toLowerCase() || undefined : v),
  z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'], { error: 'expected one of fatal, error, warn, info, debug, trace, silent' }),
);
const timeoutPolicy = z.preprocess(
  (v) => (typeof v === 'string' ? v.trim().toLowerCase() || undefined : v),
  z.enum(['reject', 'approve', 'remind'], { error: 'expected reject, approve or remind' }),
);
const tracesExporter = z.preprocess(
  (v) => (typeof v === 'string' ? v.trim().toLowerCase() || undefined : v),
  z.enum(['otlp', 'console', 'none'], { error: 'expected otlp, console or none' }),
);

/** `agent=limit,agent=limit` → { agent: limit }. */
const agentNumbers = (example: string) => z.preprocess(
  (v) => {
    const b = blankToUndefined(v);
    if (typeof b !== 'string') return b;
    const out: Record<string, number> = {};
    for (const part of b.split(',')) {
      const m = /^\s*([A-Za-z0-9_-]+)\s*=\s*(\d+)\s*$/.exec(part);
      if (!m || Number(m[2]) < 1) return Symbol('invalid');
      out[m[1]!] = Number(m[2]);
    }
    return out;
  },
  z.record(z.string(), z.number().int().positive(), { error: `expected agent=number pairs, such as ${example}` }),
);
const agentLimits = agentNumbers('video_generator=2,image_generator=4');
const dispatchBatch = agentNumbers('image_generator=20,qa_checker=10').pipe(
  z.record(z.string(), z.number().max(MAX_DISPATCHES_PER_MESSAGE, { error: `expected at most ${MAX_DISPATCHES_PER_MESSAGE} dispatches per message` })),
);

export interface Setting {
  env: string;
  path: readonly string[];
  schema: z.ZodType;
  default?: unknown;
  unit: string;
  description: string;
  /** Never printed: redacted in errors and logs. */
  secret?: boolean;
  /** A URL whose password part is redacted when printed. */
  url?: boolean;
}

export const SETTINGS: readonly Setting[] = [
  { env: 'REDIS_URL', path: ['redis', 'url'], schema: urlWith(['redis:', 'rediss:'], 'a redis:// or rediss:// URL').optional(), unit: 'URL', description: 'Redis connection; when set it wins over REDIS_HOST/PORT/DB', url: true },
  { env: 'REDIS_HOST', path: ['redis', 'host'], schema: text('a host name'), default: '127.0.0.1', unit: 'host', description: 'Redis host' },
  { env: 'REDIS_PORT', path: ['redis', 'port'], schema: port, default: 6379, unit: 'port', description: 'Redis port' },
  { env: 'REDIS_DB', path: ['redis', 'db'], schema: nonNegativeInt('a database index (0 or more)'), default: 0, unit: 'index', description: 'Redis logical database' },
  { env: 'REDIS_PASSWORD', path: ['redis', 'password'], schema: text('a password').optional(), unit: 'secret', description: 'Redis password (or put it in REDIS_URL)', secret: true },
  { env: 'REDIS_TLS_CA_FILE', path: ['redis', 'tls', 'caFile'], schema: text('a file path').optional(), unit: 'path', description: 'CA certificate (PEM) the Redis server\'s certificate must chain to; turns TLS on (as rediss:// does)' },
  { env: 'REDIS_KEY_PREFIX', path: ['redis', 'keyPrefix'], schema: text('a key prefix'), default: 'orchestrator', unit: 'text', description: 'Prefix of the lock and fencing keys' },
  { env: 'TASK_QUEUE_KEY', path: ['queue', 'key'], schema: text('a Redis key'), default: 'orchestrator:task_queue', unit: 'Redis key', description: 'Sorted set holding the READY task ids' },
  { env: 'MAX_CONCURRENT_TASKS', path: ['scheduler', 'maxConcurrentTasks'], schema: positiveInt(), default: 10, unit: 'tasks', description: 'Tasks RUNNING at once, per orchestrator process' },
  { env: 'SCHEDULER_INTERVAL', path: ['scheduler', 'intervalSeconds'], schema: positiveSeconds, default: 1, unit: 'seconds', description: 'Scheduler tick (it is also woken at once when tasks become READY)' },
  { env: 'TASK_TIMEOUT', path: ['scheduler', 'taskTimeoutSeconds'], schema: positiveSeconds, default: 300, unit: 'seconds', description: 'Per-attempt timeout of task types that set none (every built-in type sets its own: see TASK_TIMEOUTS); heartbeats extend it' },
  { env: 'TASK_TIMEOUTS', path: ['taskTypes', 'timeouts'], schema: taskTimeouts, default: {}, unit: 'TYPE=seconds,…', description: 'Per-attempt timeouts by task type, replacing the catalogue\'s (for example GENERATE_KEYFRAME=120,GENERATE_PREVIEW_VIDEO=600); wins over TASK_TYPES_FILE' },
  { env: 'TASK_TYPES_FILE', path: ['taskTypes', 'file'], schema: taskTypesFile.optional(), unit: 'path', description: 'A JSON file of per-task-type overrides — timeoutSeconds, maxAttempts, priority, cost (the whole cost model) — by task type (see Task types)' },
  { env: 'AGENT_CONCURRENCY', path: ['scheduler', 'agentLimits'], schema: agentLimits, default: {}, unit: 'agent=tasks,…', description: 'Per-agent limits on tasks RUNNING at once, per process (for example video_generator=2)' },
  { env: 'TASK_MAX_ATTEMPTS', path: ['scheduler', 'maxAttempts'], schema: positiveInt(), default: 3, unit: 'attempts', description: 'Attempts of task types that set none, before the dead letter (per type: TASK_TYPES_FILE)' },
  { env: 'RETRY_BACKOFF_BASE', path: ['scheduler', 'retryBackoffSeconds'], schema: positiveSeconds, default: 2, unit: 'seconds', description: 'First retry delay; doubles per attempt, with jitter' },
  { env: 'BUDGET_CHECK_ENABLED', path: ['budget', 'checkEnabled'], schema: bool, default: true, unit: 'boolean', description: 'Refuse to dispatch what the project budget cannot pay (costs are recorded either way)' },
  { env: 'BUDGET_WARNING_THRESHOLD', path: ['budget', 'warningThreshold'], schema: fraction, default: 0.9, unit: 'fraction of the limit', description: 'Spent + reserved ratio that publishes a budget warning' },
  { env: 'APPROVAL_ENABLED', path: ['approval', 'enabled'], schema: bool, default: true, unit: 'boolean', description: 'Stop at the human approval checkpoints' },
  { env: 'APPROVAL_TIMEOUT', path: ['approval', 'timeoutMinutes'], schema: positiveAmount('minutes'), default: 60, unit: 'minutes', description: 'How long an approval request waits before its timeout policy applies' },
  { env: 'APPROVAL_TIMEOUT_POLICY', path: ['approval', 'timeoutPolicy'], schema: timeoutPolicy, default: 'remind', unit: 'reject | approve | remind', description: 'What happens when an approval request expires' },
  { env: 'MAX_TASKS_PER_EVENT', path: ['ingest', 'maxTasksPerEvent'], schema: positiveInt('a positive number of tasks'), default: 10_000, unit: 'tasks', description: 'Most tasks one event (a fan-out such as a shot plan), submission or rejection may create; one over it is refused whole and dead-lettered with the reason' },
  { env: 'PIPELINE_FILE', path: ['pipelineFile'], schema: text('a file path').optional(), unit: 'path', description: 'A JSON pipeline definition replacing the default video pipeline' },
  { env: 'DATABASE_URL', path: ['database', 'url'], schema: urlWith(['postgres:', 'postgresql:'], 'a postgres:// URL'), default: 'postgres://postgres@127.0.0.1:5432/postgres', unit: 'URL', description: 'PostgreSQL connection (the source of truth)', url: true },
  { env: 'DATABASE_SCHEMA', path: ['database', 'schema'], schema: z.preprocess(blankToUndefined, z.string().regex(/^[a-z_][a-z0-9_]*$/, { error: 'expected a lower-case SQL identifier' })), default: 'public', unit: 'identifier', description: 'PostgreSQL schema holding the tables' },
  { env: 'DATABASE_POOL_SIZE', path: ['database', 'poolSize'], schema: positiveInt(), default: 10, unit: 'connections', description: 'PostgreSQL pool size' },
  { env: 'NATS_URL', path: ['nats', 'servers'], schema: natsServers, default: 'nats://127.0.0.1:4222', unit: 'URL list', description: 'NATS servers, comma-separated', url: true },
  { env: 'NATS_SUBJECT_PREFIX', path: ['nats', 'subjectPrefix'], schema: subjectToken, default: 'lap', unit: 'subject', description: 'First token(s) of every subject the orchestrator uses' },
  { env: 'NATS_USER', path: ['nats', 'user'], schema: text('a user name').optional(), unit: 'text', description: 'NATS user (with NATS_PASSWORD)' },
  { env: 'NATS_PASSWORD', path: ['nats', 'password'], schema: text('a password').optional(), unit: 'secret', description: 'NATS password', secret: true },
  { env: 'NATS_TOKEN', path: ['nats', 'token'], schema: text('a token').optional(), unit: 'secret', description: 'NATS token authentication', secret: true },
  { env: 'NATS_CREDS_FILE', path: ['nats', 'credsFile'], schema: text('a file path').optional(), unit: 'path', description: 'NATS credentials file (JWT + NKEY seed)' },
  { env: 'NATS_NKEY_SEED_FILE', path: ['nats', 'nkeySeedFile'], schema: text('a file path').optional(), unit: 'path', description: 'File holding an NKEY seed' },
  { env: 'NATS_TLS_CA_FILE', path: ['nats', 'tls', 'caFile'], schema: text('a file path').optional(), unit: 'path', description: 'CA certificate for TLS' },
  { env: 'NATS_TLS_CERT_FILE', path: ['nats', 'tls', 'certFile'], schema: text('a file path').optional(), unit: 'path', description: 'Client certificate for mutual TLS' },
  { env: 'NATS_TLS_KEY_FILE', path: ['nats', 'tls', 'keyFile'], schema: text('a file path').optional(), unit: 'path', description: 'Client key for mutual TLS' },
  { env: 'NATS_INBOX_PREFIX', path: ['nats', 'inboxPrefix'], schema: subjectToken.optional(), unit: 'subject', description: 'Prefix of the reply subjects this process subscribes to (default _INBOX); an agent whose NATS user may read only its own replies sets its own (deploy/nats: _INBOX.script_writer for the agent script_writer)' },
  { env: 'NATS_ACK_WAIT', path: ['nats', 'ackWaitSeconds'], schema: positiveSeconds, default: 10, unit: 'seconds', description: 'Redelivery delay of an inbound message left unacknowledged (a crashed orchestrator)' },
  { env: 'DISPATCH_BATCH', path: ['nats', 'dispatchBatch'], schema: dispatchBatch, default: {}, unit: 'agent=dispatches,…', description: 'Agents that take several dispatches per message ({"dispatches":[…]}, which createAgentWorker reads), with the most one message carries (for example image_generator=20); keep it at most the agent\'s concurrency. An agent not named gets one message per dispatch' },
  { env: 'MAX_PAYLOAD_BYTES', path: ['nats', 'maxPayloadBytes'], schema: positiveInt('a positive number of bytes'), default: 1_048_576, unit: 'bytes', description: 'Inbound messages larger than this are dead-lettered unparsed' },
  { env: 'NOTICE_STALE_AFTER', path: ['notices', 'staleAfterSeconds'], schema: positiveSeconds, default: 30, unit: 'seconds', description: 'An instance whose notice heartbeat is older than this is gone: a live one announces the statuses and budgets it may not have' },
  { env: 'HTTP_ADDR', path: ['http', 'addr'], schema: hostPort, default: '127.0.0.1:8080', unit: 'host:port', description: '`orchestrator start` serves /livez, /readyz and /metrics here (port 0: a free one, printed at start)' },
  { env: 'OTEL_TRACES_EXPORTER', path: ['tracing', 'exporter'], schema: tracesExporter.optional(), unit: 'otlp, console or none', description: 'Traces from `orchestrator start` (see Traces): otlp (OTLP over HTTP), console, or none; unset, traces are on when an OTLP endpoint is set' },
  { env: 'CONSOLE_ENABLED', path: ['console', 'enabled'], schema: bool, default: true, unit: 'boolean', description: 'Serve the review console at `/` on HTTP_ADDR' },
  { env: 'CONSOLE_TOKEN', path: ['console', 'token'], schema: text('a token').optional(), unit: 'secret', description: 'Token the console asks for (a login form, or `Authorization: Bearer`); required, or CONSOLE_BASIC_AUTH, when HTTP_ADDR is not a loopback address', secret: true },
  { env: 'CONSOLE_BASIC_AUTH', path: ['console', 'basicAuth'], schema: basicAuthUsers.optional(), unit: 'user:password,…', description: 'Console users (HTTP basic auth); a user\'s name is the `by` of their decisions', secret: true },
  { env: 'ARTIFACTS_DIR', path: ['console', 'artifactsDir'], schema: text('a folder path').optional(), unit: 'path', description: 'A local folder of artifacts the console serves read-only under /artifacts/ (relative artifact URIs and file: URIs under it)' },
  { env: 'ARTIFACT_RESOLVER', path: ['console', 'artifactResolver'], schema: text('a module path').optional(), unit: 'path', description: 'An ES module whose default export maps an artifact ({ uri, mediaType }) to the URL a browser loads (a presigned one for s3://), or null to show it as text' },
  { env: 'OTEL_EXPORTER_OTLP_ENDPOINT', path: ['tracing', 'endpoint'], schema: urlWith(['http:', 'https:'], 'an http:// or https:// URL').optional(), unit: 'URL', description: 'OTLP/HTTP collector base URL (traces go to `<URL>/v1/traces`); turns traces on', url: true },
  { env: 'OTEL_EXPORTER_OTLP_TRACES_ENDPOINT', path: ['tracing', 'tracesEndpoint'], schema: urlWith(['http:', 'https:'], 'an http:// or https:// URL').optional(), unit: 'URL', description: 'OTLP/HTTP traces URL, used as is; wins over OTEL_EXPORTER_OTLP_ENDPOINT; turns traces on', url: true },
  { env: 'OTEL_SERVICE_NAME', path: ['tracing', 'serviceName'], schema: text('a service name').optional(), unit: 'text', description: '`service.name` of the traces (default: the one in OTEL_RESOURCE_ATTRIBUTES, else livingagent-orchestrator)' },
  { env: 'INSTANCE_ID', path: ['instanceId'], schema: z.preprocess(blankToUndefined, z.string().regex(/^[A-Za-z0-9_.-]{1,100}$/, { error: 'expected up to 100 letters, digits, _ . -' })).optional(), unit: 'text', description: 'This process in the audit log (default: host name and pid)' },
  { env: 'LOG_LEVEL', path: ['logLevel'], schema: logLevel, default: 'info', unit: 'level', description: 'pino log level' },
];
