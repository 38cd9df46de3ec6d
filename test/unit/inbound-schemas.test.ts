import { describe, expect, it } from 'vitest';
import { checkBody } from '../../src/adapters/inbound-order.js';
import { ApprovalDecided, ControlRequest, TaskResult, TaskResultBatch } from '../../src/domain/messages.js';
import { PipelineEvent } from '../../src/domain/pipeline.js';
import { NewTaskInput } from '../../src/domain/task.js';

/**
 * The inbound schemas refuse what the contract does not allow and what PostgreSQL cannot
 * store, so that such a message is dead-lettered on its first delivery (a schema violation)
 * instead of failing in the database and being retried as if the failure were transient.
 */

const event = (overrides: Record<string, unknown> = {}) => ({
  id: 'evt-1',
  type: 'SCRIPT_READY',
  projectId: 'prj_1',
  payload: {},
  occurredAt: '2026-11-27T10:00:00Z',
  ...overrides,
});
const created = (payload: Record<string, unknown>) => event({ type: 'PROJECT_CREATED', payload });
const result = (overrides: Record<string, unknown> = {}) => ({ taskId: 'tsk_1', status: 'completed', fencingToken: 1, output: {}, ...overrides });

/** `{"a":{"a":…1…}}`, `depth` objects deep (parsed from text: no recursion to build it). */
const nested = (depth: number): Record<string, unknown> => JSON.parse(`${'{"a":'.repeat(depth)}1${'}'.repeat(depth)}`) as Record<string, unknown>;

/** The issues' paths and messages, as the dead letter's reason shows them. */
function refusal(schema: { safeParse(v: unknown): { success: boolean; error?: { issues: { path: PropertyKey[]; message: string }[] } } }, value: unknown): string {
  const parsed = schema.safeParse(value);
  expect(parsed.success, 'the schema accepted it').toBe(false);
  return parsed.error!.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ');
}

const NUL = 'a\u0000b';
const UNPAIRED = ['\uD800', 'x\uD800y', '\uDC00', 'x\uDFFFy', '\uDC00\uD800', 'end\uDBFF'];

describe('occurredAt: an ISO-8601 date-time with a zone', () => {
  it.each([[[1, 2]], [null], [true], [false], [0], [1_700_000_000_000], [{}], [''], ['x'], ['2026-11-27'], ['2026-11-27T10:00:00'], ['2026-02-30T10:00:00Z'], [undefined]])(
    'refuses %j',
    (occurredAt) => {
      expect(refusal(PipelineEvent, event({ occurredAt }))).toMatch(/^occurredAt: /);
    },
  );

  it.each(['2026-11-27T10:00:00Z', '2026-11-27T10:00:00.123Z', '2026-11-27T12:00:00+02:00'])('accepts %s', (occurredAt) => {
    const parsed = PipelineEvent.parse(event({ occurredAt }));
    expect(parsed.occurredAt).toEqual(new Date(occurredAt));
  });

  it('accepts a valid Date in process (handleEvent, raised events), not an invalid one', () => {
    expect(PipelineEvent.parse(event({ occurredAt: new Date(0) })).occurredAt).toEqual(new Date(0));
    expect(refusal(PipelineEvent, event({ occurredAt: new Date(Number.NaN) }))).toMatch(/^occurredAt: /);
  });
});

describe('PROJECT_CREATED payload: the contract types', () => {
  it('accepts title and brief strings, a budget, checkpoints, and an empty payload', () => {
    expect(PipelineEvent.safeParse(created({ title: 'The Keeper', brief: 'a lighthouse keeper', budget: 25, checkpoints: ['SCENE_WRITTEN'] })).success).toBe(true);
    expect(PipelineEvent.safeParse(created({ budget: null })).success).toBe(true);
    expect(PipelineEvent.safeParse(created({})).success).toBe(true);
  });

  it.each([[42], [null], [['T']], [{ text: 'T' }], [true]])('refuses a title %j', (title) => {
    expect(refusal(PipelineEvent, created({ title }))).toMatch(/^payload\.title: /);
  });

  it.each([[42], [['b']], [{ text: 'b' }], [false]])('refuses a brief %j', (brief) => {
    expect(refusal(PipelineEvent, created({ title: 'T', brief }))).toMatch(/^payload\.brief: /);
  });

  it('takes a budget that fits NUMERIC(12,4), refuses one that does not', () => {
    expect(PipelineEvent.safeParse(created({ budget: 99_999_999.9999 })).success).toBe(true);
    for (const budget of [1e308, 100_000_000, -1, '25', Number.MAX_VALUE]) {
      expect(refusal(PipelineEvent, created({ budget }))).toMatch(/^payload\.budget: /);
    }
  });

  it('refuses checkpoints that are not event types', () => {
    expect(refusal(PipelineEvent, created({ checkpoints: 'SCENE_WRITTEN' }))).toMatch(/^payload\.checkpoints/);
    expect(refusal(PipelineEvent, created({ checkpoints: [1] }))).toMatch(/^payload\.checkpoints\.0: /);
  });

  it('other events keep a free payload', () => {
    expect(PipelineEvent.safeParse(event({ payload: { title: 42, brief: { any: 'shape' }, budget: 1e308 } })).success).toBe(true);
  });
});

describe('strings PostgreSQL can store: no NUL, no unpaired surrogate', () => {
  it('refuses them in a PROJECT_CREATED title and brief, and anywhere in a payload (values and keys)', () => {
    for (const bad of [NUL, ...UNPAIRED]) {
      expect(refusal(PipelineEvent, created({ title: bad })), JSON.stringify(bad)).toMatch(/^payload\.title: .*(NUL|surrogate)/);
      expect(refusal(PipelineEvent, created({ title: 'T', brief: bad })), JSON.stringify(bad)).toMatch(/^payload\.brief: /);
      expect(refusal(PipelineEvent, event({ payload: { shots: [{ prompt: bad }] } })), JSON.stringify(bad)).toMatch(/^payload\.shots\.0\.prompt: /);
      expect(refusal(PipelineEvent, event({ payload: { deep: { [bad]: 1 } } })), JSON.stringify(bad)).toMatch(/^payload\.deep: .*key/);
    }
  });

  it('keeps paired surrogates (emoji) and other control characters', () => {
    expect(PipelineEvent.safeParse(created({ title: 'The Keeper 🌊\t\u0001', brief: '\uD83D\uDE00' })).success).toBe(true);
  });

  it('refuses them in an event id', () => {
    expect(refusal(PipelineEvent, event({ id: NUL }))).toMatch(/^id: /);
    expect(refusal(PipelineEvent, event({ id: '\uD800' }))).toMatch(/^id: /);
  });

  it("refuses them in a result's output and error, alone or in a batch", () => {
    expect(refusal(TaskResult, result({ output: { script: NUL } }))).toMatch(/^output\.script: /);
    expect(refusal(TaskResult, result({ output: { ['k\uDC00']: 'v' } }))).toMatch(/^output: .*key/);
    expect(refusal(TaskResult, result({ status: 'failed', output: undefined, error: 'x\uD800' }))).toMatch(/^error: /);
    expect(refusal(TaskResultBatch, { results: [result(), result({ output: { a: [NUL] } })] })).toMatch(/^results\.1\.output\.a\.0: /);
  });

  it('refuses them in a decision and in a control request', () => {
    const decision = { approvalId: 'apr_1', decision: 'rejected', by: 'director' };
    expect(refusal(ApprovalDecided, { ...decision, comment: NUL })).toMatch(/^comment: /);
    expect(refusal(ApprovalDecided, { ...decision, by: 'd\uD800' })).toMatch(/^by: /);
    expect(refusal(ApprovalDecided, { ...decision, approvalId: 'apr\u0000' })).toMatch(/^approvalId: /);
    expect(refusal(ControlRequest, { action: 'pause', reason: NUL })).toMatch(/^reason: /);
    expect(refusal(ControlRequest, { action: 'cancel', reason: '\uDFFF' })).toMatch(/^reason: /);
    expect(refusal(ControlRequest, { action: 'set_budget', limit: 1e308 })).toMatch(/^limit: /);
  });

  it("refuses them in a submitted task's input", () => {
    expect(refusal(NewTaskInput, { projectId: 'prj_1', taskType: 'WRITE_SCRIPT', input: { brief: NUL } })).toMatch(/^input\.brief: /);
  });
});

describe('nesting depth of JSON objects: at most 64 levels', () => {
  it('accepts 64 levels, refuses 65', () => {
    // nested(n) is n objects deep: the payload (or output) itself is level 1.
    expect(PipelineEvent.safeParse(event({ payload: nested(64) })).success).toBe(true);
    expect(refusal(PipelineEvent, event({ payload: nested(65) }))).toMatch(/^payload: .*64/);
    expect(TaskResult.safeParse(result({ output: nested(64) })).success).toBe(true);
    expect(refusal(TaskResult, result({ output: nested(65) }))).toMatch(/^output: .*64/);
    expect(PipelineEvent.safeParse(event({ payload: { a: JSON.parse(`${'['.repeat(63)}1${']'.repeat(63)}`) as unknown } })).success).toBe(true);
  });

  it('refuses 10 000 levels (which JSON.stringify cannot write) without throwing', () => {
    const brief = nested(10_000);
    expect(() => JSON.stringify(brief)).toThrow(RangeError);
    expect(refusal(PipelineEvent, created({ title: 'T', brief }))).toMatch(/^payload: .*64/);
    expect(refusal(TaskResult, result({ output: brief }))).toMatch(/^output: .*64/);
  });

  it('counts arrays as levels too', () => {
    const arrays = JSON.parse(`${'['.repeat(100)}1${']'.repeat(100)}`) as unknown;
    expect(refusal(PipelineEvent, event({ payload: { a: arrays } }))).toMatch(/^payload: .*64/);
  });
});

describe('the bus refuses them as schema violations, before any handler', () => {
  it.each([
    ['event', created({ title: NUL })],
    ['event', created({ title: 'T', budget: 1e308 })],
    ['event', created({ title: 'T', brief: nested(10_000) })],
    ['event', event({ occurredAt: [1, 2] })],
    ['result', result({ output: { script: '\uD800' } })],
    ['result', { results: [result({ output: nested(100) })] }],
    ['decision', { approvalId: 'apr_1', decision: 'approved', by: 'a\u0000' }],
  ] as const)('%s %#', (kind, body) => {
    const checked = checkBody(kind, 'prj_1', body);
    expect(checked.ok).toBe(false);
    expect(!checked.ok && checked.reason).toMatch(/^schema violation: /);
  });
});

describe("a result's output.artifacts: the data contract", () => {
  const artifact = (overrides: Record<string, unknown> = {}) => ({ uri: 'https://cdn.example/frames/1.png', mediaType: 'image/png', ...overrides });
  const withArtifacts = (artifacts: unknown) => result({ output: { image: 's3://frames/1.png', artifacts } });

  it('accepts well-formed entries of every kind of URI, and an output without artifacts as before', () => {
    const uris = ['https://cdn.example/a.png', 'http://localhost/a.mp4', 's3://bucket/key.png', 'gs://bucket/k', 'file:///srv/artifacts/a.png', 'frames/shot 1.png', 'a.txt', 'data:image/svg+xml;base64,PHN2Zz4='];
    expect(TaskResult.safeParse(withArtifacts(uris.map((uri) => artifact({ uri })))).success).toBe(true);
    expect(TaskResult.safeParse(withArtifacts([artifact({ shotIndex: 0, title: 'Keyframe, shot 1' }), artifact({ extra: 'ignored' })])).success).toBe(true);
    expect(TaskResult.safeParse(withArtifacts([])).success).toBe(true);
    expect(TaskResult.safeParse(result({ output: { image: '../anything', artifact: 'not checked' } })).success).toBe(true);
    expect(TaskResult.safeParse(result({ output: undefined })).success).toBe(true);
  });

  it('refuses artifacts that are not an array of entries', () => {
    for (const bad of [null, 'https://a.example/x.png', { uri: 'a.png' }, 42]) {
      expect(refusal(TaskResult, withArtifacts(bad)), JSON.stringify(bad)).toMatch(/^output\.artifacts: expected an array/);
    }
    expect(refusal(TaskResult, withArtifacts(['a.png']))).toMatch(/^output\.artifacts\.0: artifact 0: /);
  });

  it('refuses more than 100 entries', () => {
    expect(TaskResult.safeParse(withArtifacts(Array.from({ length: 100 }, () => artifact()))).success).toBe(true);
    expect(refusal(TaskResult, withArtifacts(Array.from({ length: 101 }, () => artifact())))).toMatch(/^output\.artifacts: .*100/);
  });

  it.each([
    ['no scheme, an absolute path', '/etc/passwd', /absolute path/],
    ['a .. segment', 'frames/../../etc/passwd', /\.\./],
    ['a leading ..', '../secret.png', /\.\./],
    ['a percent-encoded ..', 'frames/%2e%2e/secret.png', /\.\./],
    ['a backslash ..', 'frames\\..\\secret.png', /\.\./],
    ['an empty string', '', /empty/],
    ['a control character', 'https://a.example/x\n.png', /control/],
    ['more than 2000 characters', `https://a.example/${'x'.repeat(2_000)}`, /2000/],
    ['a data: URI without its comma', 'data:image/png;base64', /comma/],
  ])('refuses a uri with %s, naming the entry', (_, uri, why) => {
    const reason = refusal(TaskResult, withArtifacts([artifact(), artifact({ uri })]));
    expect(reason).toMatch(/^output\.artifacts\.1\.uri: artifact 1/);
    expect(reason).toMatch(why);
  });

  it('takes a data: URI longer than 2000 characters (a whole SVG): the message size bounds it', () => {
    const uri = `data:image/svg+xml;base64,${'A'.repeat(200_000)}`;
    expect(TaskResult.safeParse(withArtifacts([artifact({ uri, mediaType: 'image/svg+xml' })])).success).toBe(true);
  });

  it('refuses a bad mediaType, shotIndex or title', () => {
    for (const mediaType of ['png', 'image/', '/png', 'image/png/x', 'image png', `image/${'x'.repeat(100)}`, 7, undefined]) {
      expect(refusal(TaskResult, withArtifacts([artifact({ mediaType })])), String(mediaType)).toMatch(/^output\.artifacts\.0\.mediaType: artifact 0 \(uri "https:\/\/cdn\.example\/frames\/1\.png"\): /);
    }
    for (const shotIndex of [-1, 1.5, '2', null]) {
      expect(refusal(TaskResult, withArtifacts([artifact({ shotIndex })])), String(shotIndex)).toMatch(/^output\.artifacts\.0\.shotIndex: /);
    }
    expect(refusal(TaskResult, withArtifacts([artifact({ title: 'x'.repeat(201) })]))).toMatch(/^output\.artifacts\.0\.title: /);
    expect(refusal(TaskResult, withArtifacts([artifact({ title: NUL })]))).toMatch(/^output\.artifacts\.0\.title: .*NUL/);
  });

  it('checks failed results and batch entries too, and the bus dead-letters them as schema violations', () => {
    expect(refusal(TaskResult, result({ status: 'failed', error: 'x', output: { artifacts: [artifact({ uri: '../x' })] } }))).toMatch(/^output\.artifacts\.0\.uri: /);
    expect(refusal(TaskResultBatch, { results: [result(), withArtifacts([artifact({ mediaType: 'png' })])] })).toMatch(/^results\.1\.output\.artifacts\.0\.mediaType: /);
    const single = checkBody('result', 'prj_1', withArtifacts([artifact({ uri: '/etc/passwd' })]));
    expect(single).toEqual({ ok: false, reason: expect.stringMatching(/^schema violation: output\.artifacts\.0\.uri: artifact 0 \(uri "\/etc\/passwd"\): /) as unknown });
    const batch = checkBody('result', 'prj_1', { results: [result(), withArtifacts([artifact(), artifact({ shotIndex: -1 })])] });
    expect(batch).toEqual({ ok: false, reason: expect.stringMatching(/^schema violation: results\.1\.output\.artifacts\.1\.shotIndex: /) as unknown });
    expect(checkBody('result', 'prj_1', withArtifacts([artifact()])).ok).toBe(true);
  });

  it('reports an unstorable string in artifacts once (as any output string), not again as an artifact', () => {
    expect(refusal(TaskResult, withArtifacts([artifact({ uri: `a${NUL}.png` })]))).toBe('output.artifacts.0.uri: contains a NUL character (\\u0000), which PostgreSQL cannot store');
  });
});
