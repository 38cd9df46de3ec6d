import { describe, expect, it } from 'vitest';
import { dataUri, escapeXml, keyframeSvg, previewSvg, storyboardSheetSvg } from '../../src/demo/artwork.js';
import { SimulatedAgents } from '../../src/demo/simulated-agents.js';
import { OutputArtifacts } from '../../src/domain/artifacts.js';
import { TaskResult } from '../../src/domain/messages.js';
import type { PipelineEvent } from '../../src/domain/pipeline.js';
import { TaskTypeCatalog } from '../../src/domain/task-types.js';
import { EventMapper, type PlannedTask } from '../../src/pipeline/event-mapper.js';
import { VIDEO_PIPELINE } from '../../src/pipeline/video-pipeline.js';
import { recogniseArtifacts, resolveHref } from '../../src/console/artifacts.js';

/** The demo's artwork: SVG pictures drawn from the shots, and the simulated agents' outputs naming them. */

const catalog = new TaskTypeCatalog();
const XSS = '<script>alert(1)</script>';

/**
 * Whether `svg` is well-formed XML as far as these builders can get it wrong: every `<` opens
 * a tag (or a comment), tags nest and close, attribute values are quoted, every `&` is an
 * entity. Throws with what is wrong.
 */
function assertWellFormed(svg: string): void {
  const stack: string[] = [];
  let i = 0;
  while (i < svg.length) {
    const lt = svg.indexOf('<', i);
    const text = svg.slice(i, lt === -1 ? svg.length : lt);
    checkText(text);
    if (lt === -1) break;
    const gt = svg.indexOf('>', lt);
    if (gt === -1) throw new Error(`an unclosed tag at ${lt}`);
    const tag = svg.slice(lt, gt + 1);
    const m = /^<(\/?)([A-Za-z][\w:.-]*)((?:\s+[A-Za-z_:][\w:.-]*="[^"<]*")*)\s*(\/?)>$/.exec(tag);
    if (!m) throw new Error(`not a tag: ${tag.slice(0, 80)}`);
    const [, close, name, attributes, selfClosing] = m;
    checkText(attributes!);
    if (close) {
      const open = stack.pop();
      if (open !== name) throw new Error(`</${name}> closes <${open}>`);
    } else if (!selfClosing) stack.push(name!);
    i = gt + 1;
  }
  if (stack.length) throw new Error(`unclosed: ${stack.join(' ')}`);
}

function checkText(text: string): void {
  const amp = /&(?!(amp|lt|gt|quot|apos|#\d+|#x[0-9a-f]+);)/i.exec(text);
  if (amp) throw new Error(`a raw & in ${JSON.stringify(text.slice(Math.max(0, amp.index - 20), amp.index + 20))}`);
}

const decode = (uri: string) => {
  expect(uri).toMatch(/^data:image\/svg\+xml;base64,[A-Za-z0-9+/]+=*$/);
  return Buffer.from(uri.slice(uri.indexOf(',') + 1), 'base64').toString('utf8');
};

const shots = (descriptions: string[]) => descriptions.map((description, index) => ({ index, description, durationSeconds: 4 }));

describe('the pictures', () => {
  const night = { description: 'A lighthouse on a cliff at night, its beam over the sea' };
  const beach = { description: 'Morning on the beach: a child finds a bottle in the sand' };

  it('the well-formedness check finds what it looks for', () => {
    for (const bad of ['<svg><g></svg>', '<svg>a & b</svg>', '<svg><text>a<b</text></svg>', '<svg x=1></svg>', '<svg><g>', '<svg x="<"></svg>']) {
      expect(() => assertWellFormed(bad), bad).toThrow();
    }
    assertWellFormed('<svg a="1"><g/><text>a &amp; b &lt; c</text></svg>');
  });

  it('are well-formed SVG documents with no script', () => {
    const all = [
      keyframeSvg(night, 0, 'The Keeper'),
      keyframeSvg(beach, 4, undefined, { note: 'revised: warmer' }),
      keyframeSvg({ description: 'A storm: rain and lightning over the waves, a boat, gulls' }, 1),
      keyframeSvg({}, 2),
      storyboardSheetSvg([night, beach, {}, { prompt: 'shot 4' }, night], 'The Keeper', { note: 'Revised: more sea' }),
      storyboardSheetSvg([]),
      previewSvg([night, beach, { description: 'sunset over a calm sea' }], 'The Keeper'),
      previewSvg([night], undefined, { final: true, note: 'revised: longer ending' }),
      previewSvg([]),
    ];
    for (const svg of all) {
      expect(svg.startsWith('<svg xmlns="http://www.w3.org/2000/svg"')).toBe(true);
      expect(svg.endsWith('</svg>')).toBe(true);
      expect(svg).not.toMatch(/<script|javascript:|\son[a-z]+=/i);
      assertWellFormed(svg);
    }
  });

  it('escape every text from a shot or a title: a <script> there ends up as text', () => {
    const evil = { description: `${XSS} & "quotes" 'too' on a lighthouse at night`, durationSeconds: 3 };
    const title = `${XSS}<img src=x onerror=alert(2)>`;
    const all = [keyframeSvg(evil, 0, title, { note: XSS }), storyboardSheetSvg([evil, evil], title, { note: XSS }), previewSvg([evil, evil], title, { final: true, note: XSS })];
    for (const svg of all) {
      expect(svg).not.toMatch(/<script|<img/i);
      expect(svg).toContain('&lt;script&gt;alert(1)&lt;/script&gt;');
      expect(svg).toContain('&amp; &quot;quotes&quot;');
      expect(svg).toContain('&apos;too&apos;');
      assertWellFormed(svg);
    }
  });

  it('replace characters XML refuses, and cut text on code points (no half emoji)', () => {
    expect(escapeXml('a\u0000b\u0008c\u000bd\ud800e\ufffe f\tg\nh 🌊')).toBe('a\ufffdb\ufffdc\ufffdd\ufffde\ufffd f\tg\nh 🌊');
    const long = { description: '🌊'.repeat(400) };
    for (const svg of [keyframeSvg(long, 0, '🌊'.repeat(300)), storyboardSheetSvg([long]), previewSvg([long])]) {
      expect(svg).not.toMatch(/[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/);
      assertWellFormed(svg);
    }
  });

  it('are drawn from the description: the same for the same one, different for another, by its words', () => {
    expect(keyframeSvg(night, 0)).toBe(keyframeSvg({ ...night, framing: 'wide' }, 0));
    expect(keyframeSvg(night, 0)).not.toBe(keyframeSvg(beach, 0));
    const picture = (svg: string) => svg.replace(/<title>.*?<\/title>|<desc>.*?<\/desc>|aria-label="[^"]*"|<text[^>]*>.*?<\/text>/g, '');
    expect(picture(keyframeSvg(night, 0))).not.toBe(picture(keyframeSvg({ description: 'A lighthouse on a cliff at night, its beam over the sea.' }, 0)));
    // A night has a moon (a crescent: two circles) and stars; a sunny day a sun; a lighthouse its red stripes.
    expect(keyframeSvg(night, 0)).toContain('stroke="#fff" stroke-width="1.6"');
    expect(keyframeSvg(night, 0)).toContain('#c0392b');
    expect(keyframeSvg({ description: 'A calm sea at noon' }, 0)).not.toContain('#c0392b');
    expect(keyframeSvg({ description: 'A storm at sea' }, 0)).toContain('#fff6b0');
    expect(keyframeSvg(beach, 0)).toContain('#3fa66b');
  });

  it('caption a keyframe with the shot number, the title and the description; a note across the top', () => {
    const svg = keyframeSvg(night, 2, 'The Keeper', { note: 'revised: darker' });
    expect(svg).toContain('SHOT 3 · The Keeper');
    expect(svg).toContain('A lighthouse on a cliff at night, its beam over the sea');
    expect(svg).toContain('revised: darker');
    expect(svg).toMatch(/^<svg[^>]* width="640" height="360"/);
  });

  it('put one panel per shot on the storyboard sheet, captioned', () => {
    const five = shots(['one at night', 'two by the sea', 'three in a storm', 'four at dawn', 'five with a bottle']);
    const sheet = storyboardSheetSvg(five, 'The Keeper');
    expect(sheet.match(/<svg x=/g)).toHaveLength(5);
    for (const [i, s] of five.entries()) expect(sheet).toContain(`${i + 1}.</tspan> ${s.description}`);
    expect(sheet).toContain('Storyboard · The Keeper — 5 shots');
  });

  it('animate the preview: one frame per shot, each shown for its durationSeconds (default 4 s), with a progress bar', () => {
    const three = [{ description: 'a', durationSeconds: 2 }, { description: 'b' }, { description: 'c', durationSeconds: 6 }];
    const svg = previewSvg(three, 'T');
    const frames = svg.match(/<g class="frame"[^>]*><animate [^>]*>/g)!;
    expect(frames).toHaveLength(3);
    // 12 s in all: a from 0 to 2, b from 2 to 6, c from 6 to the end; discrete, looping.
    expect(frames[0]).toMatch(/opacity="1"><animate attributeName="opacity" calcMode="discrete" values="1;0" keyTimes="0;0.167" dur="12s" repeatCount="indefinite"/);
    expect(frames[1]).toMatch(/opacity="0"><animate [^>]*values="0;1;0" keyTimes="0;0.167;0.5" dur="12s"/);
    expect(frames[2]).toMatch(/opacity="0"><animate [^>]*values="0;1" keyTimes="0;0.5" dur="12s"/);
    expect(svg).toMatch(/<animate attributeName="width" from="0" to="640" dur="12s" repeatCount="indefinite"\/>/);
    expect(svg).toContain('2/3 · 0:02–0:06');
    expect(svg).not.toContain('FINAL');
    const final = previewSvg(three, 'T', { final: true });
    expect(final).toContain('>FINAL<');
    expect(final).toMatch(/@keyframes w/);
    expect(final.match(/<rect x="\d+" y="\d+" width="5"/g)!.length).toBeGreaterThan(10);
    expect(previewSvg([{ description: 'only' }])).toMatch(/values="1" keyTimes="0" dur="4s"/);
    expect(previewSvg([{ description: 'x', durationSeconds: -1 }, { description: 'y', durationSeconds: 'long' }])).toContain('dur="8s"');
  });

  it('dataUri: base64 of the UTF-8 text', () => {
    const svg = keyframeSvg({ description: 'a lighthouse 🌊 at night' }, 0);
    expect(decode(dataUri(svg))).toBe(svg);
  });
});

/** A task dispatch as the simulated agents take it. */
const dispatch = (t: Pick<PlannedTask, 'taskId' | 'taskType' | 'input'>) => ({ taskId: t.taskId, taskType: t.taskType, input: t.input, attempt: 1 });

describe('SimulatedAgents with artwork', () => {
  const agents = (shotCount = 3) => new SimulatedAgents(catalog, { artwork: true, shots: shotCount, random: () => 0.5 });

  it('writes a screenplay from the brief, and a revision that says what it changed', () => {
    const a = agents();
    const { script } = a.run(dispatch({ taskId: 't1', taskType: 'WRITE_SCRIPT', input: { title: 'The Keeper', brief: 'A keeper finds a message in a bottle' } })).output as { script: string };
    expect(script.split('\n\n').length).toBeGreaterThan(6);
    expect(script).toMatch(/^THE KEEPER\n\nLogline: A keeper finds a message in a bottle\./);
    expect(script).toMatch(/FADE IN:[\s\S]*EXT\. [\s\S]*INT\. [\s\S]*FADE OUT\./);
    const revised = a.run(dispatch({ taskId: 't2', taskType: 'REVISE_SCRIPT', input: { script, comment: 'a darker ending' } })).output;
    expect(revised).toEqual({ script: `Revised: a darker ending\n\n${script}`, revision: true });
  });

  it('plans shots with descriptions, framing, camera and durations, and a storyboard sheet of them', () => {
    const { shots: planned, artifacts } = agents(5).run(dispatch({ taskId: 't1', taskType: 'PLAN_SHOTS', input: { script: 'S' } })).output as {
      shots: { index: number; description: string; framing: string; camera: string; durationSeconds: number }[];
      artifacts: { uri: string; mediaType: string; title: string }[];
    };
    expect(planned.map((s) => s.index)).toEqual([0, 1, 2, 3, 4]);
    for (const s of planned) {
      expect(Object.keys(s).sort()).toEqual(['camera', 'description', 'durationSeconds', 'framing', 'index']);
      expect(s.description).toMatch(/lighthouse|sea|keeper|bottle/i);
      expect(s.durationSeconds).toBeGreaterThan(0);
    }
    expect(new Set(planned.map((s) => s.description)).size).toBe(5);
    expect(artifacts).toHaveLength(1);
    expect(artifacts[0]).toMatchObject({ mediaType: 'image/svg+xml', title: 'Storyboard sheet' });
    const sheet = decode(artifacts[0]!.uri);
    expect(sheet.match(/<svg x=/g)).toHaveLength(5);
    assertWellFormed(sheet);
    const revised = agents(5).run(dispatch({ taskId: 't2', taskType: 'REVISE_SHOTS', input: { shots: planned, comment: 'more sea' } })).output as { shots: typeof planned; artifacts: { uri: string }[] };
    expect(revised.shots.map((s) => s.index)).toEqual([0, 1, 2, 3, 4]);
    expect(revised.shots.map((s) => s.description)).not.toEqual(planned.map((s) => s.description));
    expect(decode(revised.artifacts[0]!.uri)).toContain('Revised: more sea');
  });

  it("draws a keyframe from the shot's description; an edit from the index, visibly revised", () => {
    const a = agents();
    const shot = { index: 1, description: 'The keeper on the gallery at sunset' };
    const out = a.run(dispatch({ taskId: 't1', taskType: 'GENERATE_KEYFRAME', input: { shot, shotIndex: 1 } })).output as { image: string; shotIndex: number; artifacts: unknown[] };
    expect(out.shotIndex).toBe(1);
    expect(decode(out.image)).toBe(keyframeSvg(shot, 1));
    expect(out.artifacts).toEqual([{ uri: out.image, mediaType: 'image/svg+xml', shotIndex: 1, title: 'Keyframe, shot 2' }]);
    const edit = a.run(dispatch({ taskId: 't2', taskType: 'EDIT_IMAGE', input: { shotIndex: 1, comment: 'warmer light' } })).output as { image: string; artifacts: { title: string }[] };
    expect(decode(edit.image)).toContain('revised: warmer light');
    expect(edit.artifacts[0]!.title).toBe('Edited keyframe, shot 2');
    const repair = a.run(dispatch({ taskId: 't3', taskType: 'EDIT_IMAGE', input: { shotIndex: 1, shot, issues: ['extra fingers'] } })).output as { image: string };
    expect(decode(repair.image)).toContain('revised: fixed extra fingers');
    expect(decode(repair.image)).toContain('The keeper on the gallery at sunset');
  });

  it("renders the preview from the input's shots, and the final with its badge", () => {
    const a = agents(4);
    const planned = shots(['a lighthouse at night', 'the sea at dawn', 'a bottle on the beach', 'a storm']);
    const preview = a.run(dispatch({ taskId: 't1', taskType: 'GENERATE_PREVIEW_VIDEO', input: { shots: planned } })).output as { video: string; artifacts: unknown[] };
    expect(decode(preview.video)).toBe(previewSvg(planned, undefined, { final: false }));
    expect(preview.artifacts).toEqual([{ uri: preview.video, mediaType: 'image/svg+xml', title: 'Preview video' }]);
    const redo = a.run(dispatch({ taskId: 't2', taskType: 'GENERATE_PREVIEW_VIDEO', input: { shots: planned, comment: 'faster cuts' } })).output as { video: string };
    expect(decode(redo.video)).toContain('revised: faster cuts');
    const final = a.run(dispatch({ taskId: 't3', taskType: 'GENERATE_FINAL_VIDEO', input: { preview: preview.video } })).output as { video: string; artifacts: { title: string }[] };
    expect(decode(final.video)).toContain('>FINAL<');
    expect(decode(final.video).match(/<g class="frame"/g)).toHaveLength(4);
    expect(final.artifacts[0]!.title).toBe('Final video');
  });

  it('gives outputs the pipeline takes, end to end, each a valid result with artifacts the console shows', () => {
    const a = agents(3);
    const mapper = new EventMapper(VIDEO_PIPELINE, catalog);
    const event = (type: string, payload: Record<string, unknown>, n: number): PipelineEvent => ({ id: `evt-${n}`, type, projectId: 'prj_1', payload, occurredAt: new Date(0) });
    const queue: PlannedTask[] = mapper.mapEventToTasks(event('PROJECT_CREATED', { title: 'The Keeper', brief: 'A keeper finds a message' }, 0));
    const outputs = new Map<string, Record<string, unknown>[]>();
    const raised: PipelineEvent[] = [];
    let rejected = false;
    for (let n = 1; queue.length && n < 200; n++) {
      const task = queue.shift()!;
      const { output, actualCost } = a.run(dispatch(task));
      const checked = TaskResult.safeParse({ taskId: task.taskId, status: 'completed', fencingToken: 1, output, actualCost });
      expect(checked.success, `${task.taskType}: ${JSON.stringify(checked.error?.issues)}`).toBe(true);
      outputs.set(task.taskType, [...(outputs.get(task.taskType) ?? []), output]);
      for (const e of mapper.eventsForCompletion({ ...task, output })) {
        const ev = event(e.type, e.payload, n);
        raised.push(ev);
        queue.push(...mapper.mapEventToTasks(ev));
        // The director rejects the first preview, naming shot 1.
        if (ev.type === 'PREVIEW_VIDEO_READY' && !rejected) {
          rejected = true;
          queue.splice(0, queue.length, ...mapper.mapRejection(ev, { comment: 'warmer light', shots: [1] }));
        }
      }
    }
    expect(raised.map((e) => e.type)).toEqual(['SCENE_WRITTEN', 'SHOT_PLANNED', 'PREVIEW_VIDEO_READY', 'PREVIEW_VIDEO_READY', 'FINAL_VIDEO_READY']);
    const planned = raised[1]!.payload.shots as { index: number }[];
    expect(planned.map((s) => s.index)).toEqual([0, 1, 2]);
    expect(raised[2]!.payload.preview).toMatch(/^data:image\/svg\+xml;base64,/);
    expect(raised[4]!.payload.video).toMatch(/^data:image\/svg\+xml;base64,/);
    expect(outputs.get('GENERATE_KEYFRAME')!.map((o) => o.shotIndex)).toEqual([0, 1, 2]);
    expect(outputs.get('EDIT_IMAGE')!.map((o) => o.shotIndex)).toEqual([1]);
    for (const [type, list] of outputs) {
      for (const output of list) {
        if (!('artifacts' in output)) continue;
        expect(OutputArtifacts.safeParse(output.artifacts).success, type).toBe(true);
        const seen = recogniseArtifacts({ taskId: 't', input: {}, output });
        expect(seen.length, type).toBeGreaterThan(0);
        for (const artifact of seen) expect(resolveHref(artifact.uri, { artifactsDir: null }), type).toBe(artifact.uri);
      }
    }
    for (const type of ['GENERATE_KEYFRAME', 'EDIT_IMAGE']) for (const o of outputs.get(type)!) expect(o.image).toMatch(/^data:image\/svg\+xml;base64,/);
    for (const type of ['GENERATE_PREVIEW_VIDEO', 'GENERATE_FINAL_VIDEO']) for (const o of outputs.get(type)!) expect(o.video).toMatch(/^data:image\/svg\+xml;base64,/);
  });

  it('keeps every output under 60 KB for 10 shots', () => {
    const a = agents(10);
    const plan = a.run(dispatch({ taskId: 't1', taskType: 'PLAN_SHOTS', input: {} })).output as { shots: Record<string, unknown>[] };
    const long = 'x'.repeat(1_000);
    const outputs = [
      plan,
      a.run(dispatch({ taskId: 't2', taskType: 'REVISE_SHOTS', input: { shots: plan.shots, comment: long } })).output,
      ...plan.shots.map((shot, shotIndex) => a.run(dispatch({ taskId: 't3', taskType: 'GENERATE_KEYFRAME', input: { shot, shotIndex } })).output),
      a.run(dispatch({ taskId: 't4', taskType: 'EDIT_IMAGE', input: { shotIndex: 9, comment: long } })).output,
      a.run(dispatch({ taskId: 't5', taskType: 'GENERATE_PREVIEW_VIDEO', input: { shots: plan.shots } })).output,
      a.run(dispatch({ taskId: 't6', taskType: 'GENERATE_PREVIEW_VIDEO', input: { shots: plan.shots, comment: long } })).output,
      a.run(dispatch({ taskId: 't7', taskType: 'GENERATE_FINAL_VIDEO', input: { previous: 'x', comment: long } })).output,
    ];
    for (const output of outputs) expect(Buffer.byteLength(JSON.stringify(output))).toBeLessThan(60_000);
  });
});

describe('SimulatedAgents without artwork (the default): the outputs as before', () => {
  const run = (options: { artwork?: boolean }, taskType: string, input: Record<string, unknown> = {}) =>
    new SimulatedAgents(catalog, { random: () => 0.5, ...options }).run({ taskId: 'tsk_9', taskType, input, attempt: 1 });

  it.each([{}, { artwork: false }])('%j', (options) => {
    expect(run(options, 'WRITE_SCRIPT', { title: 'T', brief: 'a keeper' }).output).toEqual({ script: 'INT. LIGHTHOUSE - NIGHT. a keeper.', revision: false });
    expect(run(options, 'REVISE_SCRIPT', { script: 'S', comment: 'darker' }).output).toEqual({ script: 'INT. LIGHTHOUSE - NIGHT. darker.', revision: true });
    const plan = [0, 1, 2].map((i) => ({ index: i, prompt: `shot ${i + 1}`, durationSeconds: 4 }));
    expect(run(options, 'PLAN_SHOTS').output).toEqual({ shots: plan });
    expect(run(options, 'REVISE_SHOTS', { comment: 'x' }).output).toEqual({ shots: plan });
    expect(run(options, 'GENERATE_KEYFRAME', { shotIndex: 2 }).output).toEqual({ image: 's3://frames/tsk_9.png', shotIndex: 2 });
    expect(run(options, 'EDIT_IMAGE', { shotIndex: 1, comment: 'c' }).output).toEqual({ image: 's3://frames/tsk_9.png', shotIndex: 1 });
    expect(run(options, 'RUN_VISUAL_QA', { shotIndex: 0 }).output).toEqual({ passed: true, issues: [] });
    expect(run(options, 'GENERATE_PREVIEW_VIDEO').output).toEqual({ video: 's3://renders/tsk_9.mp4' });
    expect(run(options, 'GENERATE_FINAL_VIDEO').output).toEqual({ video: 's3://renders/tsk_9.mp4' });
    expect(run(options, 'MIX_AUDIO').output).toEqual({ artifact: 's3://artifacts/tsk_9' });
    expect(run(options, 'PLAN_SHOTS').actualCost).toBe(run({ artwork: true }, 'PLAN_SHOTS').actualCost);
  });

  it('with artwork, the other task types keep their outputs (QA, audio)', () => {
    expect(run({ artwork: true }, 'RUN_VISUAL_QA', { shotIndex: 0 }).output).toEqual({ passed: true, issues: [] });
    expect(run({ artwork: true }, 'COMPOSE_MUSIC').output).toEqual({ artifact: 's3://artifacts/tsk_9' });
  });
});
