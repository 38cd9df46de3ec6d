import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/config.js';
import { configuredCatalog } from '../../src/config/task-types.js';
import { DEFAULT_TASK_TYPES, TaskTypeCatalog } from '../../src/domain/task-types.js';
import { ConfigError } from '../../src/errors.js';

/** TASK_TIMEOUTS and TASK_TYPES_FILE: parsed and validated with the other settings, applied to the catalogue. */
const dir = mkdtempSync(join(tmpdir(), 'task-type-overrides-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
let n = 0;
function file(content: unknown): string {
  const path = join(dir, `types-${++n}.json`);
  writeFileSync(path, typeof content === 'string' ? content : JSON.stringify(content));
  return path;
}

function problems(fn: () => unknown): string[] {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return (err as ConfigError).problems.map((p) => (p.value === undefined ? `${p.key}: ${p.reason}` : `${p.key}=${p.value}: ${p.reason}`));
  }
  throw new Error('expected a ConfigError');
}

const catalogOf = (env: NodeJS.ProcessEnv) => configuredCatalog(loadConfig(env).taskTypes);

describe('task-type overrides', () => {
  it('without any, the catalogue is the built-in one', () => {
    expect(loadConfig({}).taskTypes).toEqual({ timeoutsMs: {} });
    expect(catalogOf({}).list()).toEqual(new TaskTypeCatalog().list());
  });

  it('TASK_TIMEOUTS replaces a built-in type\'s own timeout, not TASK_TIMEOUT\'s', () => {
    const catalog = catalogOf({ TASK_TIMEOUTS: ' GENERATE_KEYFRAME=120, GENERATE_PREVIEW_VIDEO = 0.5 ', TASK_TIMEOUT: '30' });
    expect(catalog.get('GENERATE_KEYFRAME').timeoutMs).toBe(120_000);
    expect(catalog.get('GENERATE_PREVIEW_VIDEO').timeoutMs).toBe(500);
    expect(catalog.get('WRITE_SCRIPT').timeoutMs).toBe(10 * 60_000); // untouched
    expect(catalog.get('GENERATE_KEYFRAME')).toMatchObject({ priority: 600, agent: 'image_generator' });
  });

  it('TASK_TYPES_FILE sets timeout, attempts, priority and the cost model; TASK_TIMEOUTS wins on the timeout', () => {
    const path = file({
      GENERATE_KEYFRAME: { timeoutSeconds: 90, maxAttempts: 2, priority: 5, cost: { base: 0.1, perUnit: 0.2, unit: 'image', unitsFrom: 'variants' } },
      RUN_VISUAL_QA: { timeoutSeconds: 30 },
    });
    const catalog = catalogOf({ TASK_TYPES_FILE: path, TASK_TIMEOUTS: 'RUN_VISUAL_QA=10' });
    expect(catalog.get('GENERATE_KEYFRAME')).toMatchObject({ timeoutMs: 90_000, maxAttempts: 2, priority: 5 });
    expect(catalog.estimateCost('GENERATE_KEYFRAME', { variants: 3 })).toBeCloseTo(0.7);
    expect(catalog.get('RUN_VISUAL_QA')).toMatchObject({ timeoutMs: 10_000, priority: 620 });
    expect(catalog.get('RUN_VISUAL_QA').maxAttempts).toBeUndefined();
  });

  it('an unknown task type is a config error naming the variable and the type', () => {
    const [timeouts] = problems(() => catalogOf({ TASK_TIMEOUTS: 'GENERATE_KEYFRAMES=120' }));
    expect(timeouts).toMatch(/^TASK_TIMEOUTS=GENERATE_KEYFRAMES=120: unknown task type GENERATE_KEYFRAMES \(the catalogue's types: ANALYZE_BRIEF, /);
    const path = file({ RENDER_PREVIEW: { timeoutSeconds: 600 } });
    expect(problems(() => catalogOf({ TASK_TYPES_FILE: path }))[0]).toContain(`TASK_TYPES_FILE=${path}: unknown task type RENDER_PREVIEW`);
    // A program's own catalogue: its types are known, the built-in ones are not.
    const own = [{ ...DEFAULT_TASK_TYPES[0]!, name: 'MY_TYPE' }];
    expect(configuredCatalog(loadConfig({ TASK_TIMEOUTS: 'MY_TYPE=5' }).taskTypes, own).get('MY_TYPE').timeoutMs).toBe(5_000);
    expect(problems(() => configuredCatalog(loadConfig({ TASK_TIMEOUTS: 'WRITE_SCRIPT=5' }).taskTypes, own))[0]).toContain('unknown task type WRITE_SCRIPT');
  });

  it('a malformed TASK_TIMEOUTS is named with the other bad variables', () => {
    const bad = (value: string) => problems(() => loadConfig({ TASK_TIMEOUTS: value, MAX_CONCURRENT_TASKS: 'x' }));
    expect(bad('GENERATE_KEYFRAME')).toEqual([
      'MAX_CONCURRENT_TASKS=x: expected a positive integer',
      'TASK_TIMEOUTS=GENERATE_KEYFRAME: expected TASK_TYPE=seconds pairs, such as GENERATE_KEYFRAME=120,GENERATE_PREVIEW_VIDEO=600',
    ]);
    expect(bad('GENERATE_KEYFRAME=abc')[1]).toBe('TASK_TIMEOUTS=GENERATE_KEYFRAME=abc: GENERATE_KEYFRAME: expected a number of seconds from 0.001 to 2147483');
    expect(bad('GENERATE_KEYFRAME=0')[1]).toContain('expected a number of seconds from 0.001');
    expect(bad('GENERATE_KEYFRAME=-5')[1]).toContain('expected a number of seconds');
    expect(bad('GENERATE_KEYFRAME=1e99')[1]).toContain('expected a number of seconds');
    expect(bad('GENERATE_KEYFRAME=99999999')[1]).toContain('expected a number of seconds from 0.001 to 2147483');
    expect(bad('generate_keyframe=5')[1]).toContain('generate_keyframe: expected a task type name (UPPER_SNAKE_CASE)');
    expect(bad('GENERATE_KEYFRAME=5,GENERATE_KEYFRAME=6')[1]).toContain('GENERATE_KEYFRAME is given twice');
    expect(bad('GENERATE_KEYFRAME=5,,')[1]).toContain('expected TASK_TYPE=seconds pairs');
  });

  it('a bad TASK_TYPES_FILE is named with what is wrong in it', () => {
    const bad = (content: unknown) => {
      const path = file(content);
      return problems(() => loadConfig({ TASK_TYPES_FILE: path }))[0]!.replace(path, 'F');
    };
    expect(bad({ GENERATE_KEYFRAME: { timeout: 120 } })).toBe('TASK_TYPES_FILE=F: invalid task-types file: GENERATE_KEYFRAME: unknown field timeout');
    expect(bad({ GENERATE_KEYFRAME: { timeoutSeconds: 120, agent: 'x', retries: 2 } })).toBe('TASK_TYPES_FILE=F: invalid task-types file: GENERATE_KEYFRAME: unknown fields agent, retries');
    expect(bad({ GENERATE_KEYFRAME: { timeoutSeconds: '120' } })).toContain('GENERATE_KEYFRAME.timeoutSeconds: expected a number of seconds');
    expect(bad({ GENERATE_KEYFRAME: { maxAttempts: 0 } })).toContain('GENERATE_KEYFRAME.maxAttempts: expected an integer from 1 to 100');
    expect(bad({ GENERATE_KEYFRAME: { priority: 5000 } })).toContain('GENERATE_KEYFRAME.priority:');
    expect(bad({ GENERATE_KEYFRAME: { cost: { perUnit: 1 } } })).toContain('GENERATE_KEYFRAME.cost.base:');
    expect(bad({ GENERATE_KEYFRAME: { cost: { base: 1, currency: 'EUR' } } })).toContain('GENERATE_KEYFRAME.cost: unknown field currency');
    expect(bad({ generate_keyframe: {} })).toContain('invalid task-types file:');
    expect(bad([1, 2])).toContain('invalid task-types file: expected an object of task types');
    expect(bad('{ not json')).toMatch(/^TASK_TYPES_FILE=F: cannot read the task-types file: /);
    expect(problems(() => loadConfig({ TASK_TYPES_FILE: join(dir, 'missing.json') }))[0]).toMatch(/cannot read the task-types file: ENOENT/);
  });

  it('code overrides take seconds, validated the same way', () => {
    expect(loadConfig({}, { taskTypes: { timeouts: { EDIT_IMAGE: 7 } } }).taskTypes.timeoutsMs).toEqual({ EDIT_IMAGE: 7_000 });
    expect(problems(() => loadConfig({}, { taskTypes: { timeouts: { EDIT_IMAGE: -1 } } }))[0]).toContain('taskTypes.timeouts=');
  });
});
