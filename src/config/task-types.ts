import { readFileSync } from 'node:fs';
import { z } from 'zod';
import { ConfigError, ValidationError, type ConfigProblem } from '../errors.js';
import { CostModel, MAX_TIMEOUT_MS, TaskTypeCatalog, type TaskTypeOverride, type TaskTypeSpecInput } from '../domain/task-types.js';
import { Priority, TaskTypeName } from '../domain/task.js';

/**
 * A deployment's changes to the task-type catalogue: `TASK_TYPES_FILE` (a JSON file: per
 * task type its timeout, attempts, priority and cost model) and `TASK_TIMEOUTS` (the
 * shorthand for timeouts: `GENERATE_KEYFRAME=120,GENERATE_PREVIEW_VIDEO=600`, which wins
 * over the file's). Their shapes are checked with the other settings (loadConfig); the
 * task-type names against the catalogue they apply to (`configuredCatalog`), since a
 * program may bring its own catalogue.
 */

/** The parsed overrides, as OrchestratorConfig carries them (durations in ms). */
export interface TaskTypeOverrides {
  /** TASK_TYPES_FILE: its path, and its overrides by task type. */
  file?: { path: string; overrides: Record<string, TaskTypeOverride> };
  /** TASK_TIMEOUTS: per-attempt timeouts by task type, in ms. */
  timeoutsMs: Record<string, number>;
}

const MAX_TIMEOUT_SECONDS = MAX_TIMEOUT_MS / 1000;
const SECONDS = `expected a number of seconds from 0.001 to ${Math.floor(MAX_TIMEOUT_SECONDS)}`;
const timeoutSeconds = z.number({ error: SECONDS }).min(0.001, { error: SECONDS }).max(MAX_TIMEOUT_SECONDS, { error: SECONDS });
const toMs = (seconds: number) => Math.max(1, Math.min(MAX_TIMEOUT_MS, Math.round(seconds * 1000)));

/** One entry of TASK_TYPES_FILE: the fields a deployment may change, nothing else. */
const FileEntry = z.strictObject({
  timeoutSeconds: timeoutSeconds.optional(),
  maxAttempts: z.number({ error: 'expected an integer from 1 to 100' }).int({ error: 'expected an integer from 1 to 100' }).min(1, { error: 'expected an integer from 1 to 100' }).max(100, { error: 'expected an integer from 1 to 100' }).optional(),
  priority: Priority.optional(),
  cost: z.strictObject(CostModel.shape).optional(),
});
const FileShape = z.record(TaskTypeName, FileEntry, { error: 'expected an object of task types' });

function describeIssues(error: z.ZodError): string {
  return error.issues
    .slice(0, 5)
    .map((i) => {
      const at = i.path.join('.');
      const what = i.code === 'unrecognized_keys' ? `unknown field${i.keys.length > 1 ? 's' : ''} ${i.keys.join(', ')}` : i.message;
      return at ? `${at}: ${what}` : what;
    })
    .join('; ');
}

/** Reads and validates TASK_TYPES_FILE; one issue naming the file's problems. */
export const taskTypesFile = z.preprocess(
  (v) => (typeof v === 'string' && v.trim() === '' ? undefined : v),
  z.string({ error: 'expected a file path' }).transform((path, ctx) => {
    let raw: unknown;
    try {
      raw = JSON.parse(readFileSync(path, 'utf8'));
    } catch (err) {
      ctx.addIssue({ code: 'custom', message: `cannot read the task-types file: ${(err as Error).message}` });
      return z.NEVER;
    }
    const parsed = FileShape.safeParse(raw);
    if (!parsed.success) {
      ctx.addIssue({ code: 'custom', message: `invalid task-types file: ${describeIssues(parsed.error)}` });
      return z.NEVER;
    }
    const overrides: Record<string, TaskTypeOverride> = {};
    for (const [name, e] of Object.entries(parsed.data)) {
      overrides[name] = {
        ...(e.timeoutSeconds === undefined ? {} : { timeoutMs: toMs(e.timeoutSeconds) }),
        ...(e.maxAttempts === undefined ? {} : { maxAttempts: e.maxAttempts }),
        ...(e.priority === undefined ? {} : { priority: e.priority }),
        ...(e.cost === undefined ? {} : { cost: CostModel.parse(e.cost) }),
      };
    }
    return { path, overrides };
  }),
);

const PAIRS = 'expected TASK_TYPE=seconds pairs, such as GENERATE_KEYFRAME=120,GENERATE_PREVIEW_VIDEO=600';

/** `TYPE=seconds,TYPE=seconds` (or, in code, an object of seconds) → timeouts in ms by task type. */
export const taskTimeouts = z.any().transform((v: unknown, ctx) => {
  const fail = (message: string) => {
    ctx.addIssue({ code: 'custom', message });
    return z.NEVER;
  };
  let pairs: [string, unknown][];
  if (typeof v === 'string') {
    pairs = [];
    for (const part of v.split(',')) {
      const m = /^\s*([^=\s]+)\s*=\s*(\S+)\s*$/.exec(part);
      if (!m) return fail(PAIRS);
      pairs.push([m[1]!, /^\d*\.?\d+$/.test(m[2]!) ? Number(m[2]) : m[2]]);
    }
  } else if (typeof v === 'object' && v !== null && !Array.isArray(v)) {
    pairs = Object.entries(v);
  } else {
    return fail(PAIRS);
  }
  const out: Record<string, number> = {};
  for (const [name, seconds] of pairs) {
    if (!TaskTypeName.safeParse(name).success) return fail(`${name}: expected a task type name (UPPER_SNAKE_CASE)`);
    if (name in out) return fail(`${name} is given twice`);
    const s = timeoutSeconds.safeParse(seconds);
    if (!s.success) return fail(`${name}: ${SECONDS}`);
    out[name] = toMs(s.data);
  }
  return out;
});

/**
 * The catalogue (`specs`, or the built-in one) with the configured overrides applied: the
 * file's, then TASK_TIMEOUTS' timeouts. An override of a task type the catalogue does not
 * have is a ConfigError naming the variable and the type.
 */
export function configuredCatalog(configured: TaskTypeOverrides | undefined, specs?: readonly TaskTypeSpecInput[]): TaskTypeCatalog {
  const base = new TaskTypeCatalog(specs);
  // A configuration built in code (not by loadConfig) may have none.
  const overrides = configured ?? { timeoutsMs: {} };
  const problems: ConfigProblem[] = [];
  const unknown = (name: string) => `unknown task type ${name} (the catalogue's types: ${base.list().map((t) => t.name).join(', ')})`;
  if (overrides.file) {
    for (const name of Object.keys(overrides.file.overrides)) {
      if (!base.has(name)) problems.push({ key: 'TASK_TYPES_FILE', value: overrides.file.path, reason: unknown(name) });
    }
  }
  for (const [name, ms] of Object.entries(overrides.timeoutsMs)) {
    if (!base.has(name)) problems.push({ key: 'TASK_TIMEOUTS', value: `${name}=${ms / 1000}`, reason: unknown(name) });
  }
  if (problems.length) throw new ConfigError(problems);
  const merged: Record<string, TaskTypeOverride> = { ...(overrides.file?.overrides ?? {}) };
  for (const [name, timeoutMs] of Object.entries(overrides.timeoutsMs)) merged[name] = { ...merged[name], timeoutMs };
  try {
    return base.withOverrides(merged);
  } catch (err) {
    if (err instanceof ValidationError) throw new ConfigError([{ key: 'TASK_TYPES_FILE', value: overrides.file?.path, reason: err.message }]);
    throw err;
  }
}
