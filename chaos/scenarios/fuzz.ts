import { readFileSync } from 'node:fs';
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import { newProjectId } from '../../test/helpers/e2e-project.js';
import { expectThat, seeded, type Scenario, type ScenarioResult } from '../scenario.js';
import { World } from '../world.js';

/** Bad messages sent. */
const MESSAGES = 10_000;
/** The orchestrator's MAX_PAYLOAD_BYTES here: under the NATS server's own limit (1 MB), so an oversized message reaches the orchestrator. */
const MAX_PAYLOAD = 256 * 1024;
/** RSS the orchestrator must stay under all along (its baseline on this machine: ≈ 170 MiB). */
const RSS_BOUND_MIB = 400;
/** A dead letter carries at most this many characters of the message (DEFAULT_DLQ_DATA_LIMIT). */
const DLQ_DATA = 64 * 1024;
/** The valid project's keyframes carry an image of this size: big results, within the limit. */
const IMAGE_BYTES = 200 * 1024;
const SHOTS = 10;
/** How long the valid project's agents take per task. */
const AGENT_MS = 250;

/** One bad message: where it goes, its bytes, and what must become of it. */
interface Bad {
  family: string;
  subject: string;
  data: Uint8Array;
  /**
   * `dlq`: dead-lettered, one letter per entry of `letters` (the data each carries: the
   * message itself, or the entries of a results batch refused one by one); `reply`: a
   * control request, answered with a typed error.
   */
  expect: 'dlq' | 'reply';
  letters: string[];
  /** What its dead letter's reason (or the reply's error) must say. */
  reason: RegExp;
  /** Sent by a core publish rather than through JetStream. */
  core: boolean;
  /**
   * Fills in `data` and `letters` when it is sent, from the valid project's dispatches seen
   * so far (a result naming one of its tasks under a token that is not the task's).
   */
  bind?: (dispatches: readonly { taskId: string; fencingToken: number }[]) => void;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();
/** The data of a message's dead letter: its bytes as text (invalid UTF-8 replaced), cut as the publisher cuts it. */
const letterOf = (data: Uint8Array) => decoder.decode(data).slice(0, DLQ_DATA);

/**
 * The generator of bad messages: seeded (the same seed, the same 10 000 messages), over
 * every inbound subject of the contract — events, results (single and batch), heartbeats,
 * approval decisions (JetStream or core publish), and control requests (request-reply) —
 * for the valid project and for projects that do not exist. Families: not JSON, wrong
 * types, oversized, deep nesting, `__proto__`, hostile numbers, NUL and lone surrogates,
 * SQL, bad subjects, and bodies that pass the schema but name what does not exist
 * (refused by the handlers). Never a message that is valid for the valid project.
 */
export function badMessages(seed: number, prefix: string, validProject: string, count = MESSAGES): Bad[] {
  const rand = seeded(seed);
  const int = (n: number) => Math.floor(rand() * n);
  const pick = <T>(xs: readonly T[]): T => xs[int(xs.length)]!;
  const project = () => (rand() < 0.4 ? validProject : `fz_${int(1_000_000)}`);
  const sql = ["'; DROP TABLE tasks; --", "x' OR '1'='1", '1; DELETE FROM projects', "'); TRUNCATE outbox; --", 'tsk_1 UNION SELECT * FROM pg_user'];
  const hostile = [1e308, -1, -0.00001, 1e21, 2 ** 53 + 1, 1.5, -1e308, 0.1 + 0.2, 1e-320];
  const hostileJson = ['1e309', '-1e309', '1e400', '-0', '123456789012345678901234567890', '1e-400', '0x10', 'NaN', 'Infinity', '01'];
  const nested = (depth: number, leaf: string) => '{"a":'.repeat(depth) + leaf + '}'.repeat(depth);
  const arrays = (depth: number) => '['.repeat(depth) + ']'.repeat(depth);
  const deepArrays = (depth: number) => '['.repeat(depth) + '1' + ']'.repeat(depth);
  const s = (subject: string) => `${prefix}.${subject}`;
  const now = new Date().toISOString();
  let n = 0;

  /** The subject of an inbound kind for `pid` (events: with the body's type). */
  const subjectFor = (kind: string, pid: string, type = 'SCENE_WRITTEN') =>
    kind === 'event' ? s(`events.${pid}.${type}`) : kind === 'result' ? s(`results.${pid}`) : kind === 'heartbeat' ? s(`heartbeats.${pid}`) : kind === 'decision' ? s(`approvals.decided.${pid}`) : s(`control.${pid}`);
  /** A body of the kind whose `field` is `value` (raw JSON text), the rest well-formed. */
  const bodyWith = (kind: string, pid: string, field: string, value: string): string => {
    const base: Record<string, string> =
      kind === 'event'
        ? { id: JSON.stringify(`fz-evt-${n}`), type: '"SCENE_WRITTEN"', projectId: JSON.stringify(pid), payload: '{}', occurredAt: JSON.stringify(now) }
        : kind === 'result'
          ? { taskId: JSON.stringify(`tsk_fz${n}`), status: '"completed"', fencingToken: '1', output: '{}', actualCost: '0.1' }
          : kind === 'heartbeat'
            ? { taskId: JSON.stringify(`tsk_fz${n}`), fencingToken: '1' }
            : kind === 'decision'
              ? { approvalId: JSON.stringify(`apr_fz${n}`), decision: '"approved"', by: '"fuzz"' }
              : { action: '"set_budget"', limit: '10' };
    base[field] = value;
    return `{${Object.entries(base)
      .map(([k, v]) => `${JSON.stringify(k)}:${v}`)
      .join(',')}}`;
  };
  /** Fields of each kind that a wrong value breaks (the schema refuses it). */
  const fields: Record<string, string[]> = {
    event: ['id', 'type', 'projectId', 'payload', 'occurredAt'],
    result: ['taskId', 'status', 'fencingToken', 'output', 'actualCost'],
    heartbeat: ['taskId', 'fencingToken'],
    decision: ['approvalId', 'decision', 'by'],
    control: ['action', 'limit'],
  };
  const wrongValues: Record<string, string[]> = {
    id: ['1', 'null', '""', '[]', JSON.stringify('x'.repeat(101))],
    type: ['"scene_written"', '7', 'null', '"A.B"'],
    projectId: ['7', '"other_project"', '{"x":1}'],
    payload: ['"text"', '[1,2]', '7', 'null'],
    occurredAt: ['[1,2]', 'null', 'true', '0', '"2026-11-27"', '"yesterday"', '"2026-11-27T10:00:00"'],
    taskId: ['1', 'null', '"a.b"', '"has space"', JSON.stringify('t'.repeat(51)), '{}'],
    status: ['"done"', '1', 'null', '"COMPLETED"'],
    fencingToken: ['"1"', '-1', '1.5', 'null', '1e309', '[1]'],
    output: ['"text"', '[1]', '7', 'true'],
    actualCost: ['"0.1"', '-1', '1e308', '1e309', '1000000', 'null'],
    approvalId: ['1', '""', 'null', JSON.stringify('a'.repeat(51))],
    decision: ['"maybe"', 'true', 'null', '1'],
    by: ['""', '7', 'null', JSON.stringify('b'.repeat(101))],
    action: ['"explode"', '7', 'null', '"PAUSE"'],
    limit: ['-1', '"10"', '1e12', '1e309', '[]'],
  };

  const families: { name: string; weight: number; make: () => Omit<Bad, 'core' | 'family'> }[] = [
    {
      name: "a real task under another task's token",
      weight: 4,
      make: () => {
        // Which dispatch, which other one's token, and the outcome claimed: chosen now (seeded).
        const [which, other, failed, far] = [rand(), rand(), rand() < 0.5, rand() < 0.3];
        const self: Omit<Bad, 'core' | 'family'> = {
          subject: s(`results.${validProject}`),
          data: new Uint8Array(),
          expect: 'dlq',
          letters: [],
          reason: /ERR_STALE_FENCING_TOKEN|ERR_ILLEGAL_TRANSITION|ERR_TASK_NOT_FOUND/,
        };
        const id = n;
        (self as Bad).bind = (dispatches) => {
          // One of the last dispatches: most likely an attempt still running.
          const task = dispatches[dispatches.length - 1 - Math.floor(which * Math.min(dispatches.length, 4))];
          const others = dispatches.filter((d) => d.fencingToken !== task?.fencingToken);
          // Another attempt's token, or one no lease handed out; never the task's own.
          const token = far || others.length === 0 ? 1_000_000_000 + id : others[Math.floor(other * others.length)]!.fencingToken;
          // Before the first dispatch: a task that does not exist.
          const body = failed
            ? { taskId: task?.taskId ?? `tsk_fz${id}`, status: 'failed', fencingToken: token, error: 'fuzz: not your token' }
            : { taskId: task?.taskId ?? `tsk_fz${id}`, status: 'completed', fencingToken: token, output: { fuzz: id }, actualCost: 0.01 };
          self.data = encoder.encode(JSON.stringify(body));
          self.letters = [letterOf(self.data)];
        };
        return self;
      },
    },
    {
      name: 'not JSON',
      weight: 12,
      make: () => {
        const kind = pick(['event', 'result', 'heartbeat', 'decision', 'control']);
        const pid = project();
        const text = pick(['', 'hello', '{', '{"taskId":', "{'a':1}", '{"a":1,}', '[1,2', 'undefined', '{"a":NaN}', '\u0000', '{"a":"\u0000raw"}', '}{', '<xml/>']);
        const random = rand() < 0.3 ? Uint8Array.from({ length: 1 + int(200) }, () => int(256)) : null;
        // Random bytes that happen to be JSON would be refused by the schema instead.
        const data = random && !isJson(random) ? random : encoder.encode(text);
        const reason = kind === 'control' || !isJson(data) ? /not JSON|schema violation/ : /schema violation/;
        return expectFor(kind, subjectFor(kind, pid), data, reason);
      },
    },
    {
      name: 'wrong types',
      weight: 20,
      make: () => {
        const kind = pick(['event', 'result', 'heartbeat', 'decision', 'control']);
        const pid = project();
        const field = pick(fields[kind]!);
        const value = pick(wrongValues[field]!);
        const reason = field === 'projectId' ? /subject\/body mismatch/ : /schema violation/;
        return expectFor(kind, subjectFor(kind, pid), encoder.encode(bodyWith(kind, pid, field, value)), reason);
      },
    },
    {
      name: 'whole body of another type',
      weight: 4,
      make: () => {
        const kind = pick(['event', 'result', 'heartbeat', 'decision', 'control']);
        return expectFor(kind, subjectFor(kind, project()), encoder.encode(pick(['null', '7', '"text"', '[]', '[{"taskId":"tsk_1"}]', 'true', '{}'])), /schema violation/);
      },
    },
    {
      name: 'oversized',
      weight: 2,
      make: () => {
        const kind = pick(['event', 'result', 'heartbeat', 'decision', 'control']);
        const pid = project();
        // JSON of the kind, one field padded past the limit: refused before it is parsed.
        const pad = JSON.stringify({ pad: 'p'.repeat(MAX_PAYLOAD + 1 + int(300 * 1024)) });
        const body = bodyWith(kind, pid, kind === 'event' ? 'payload' : kind === 'result' ? 'output' : kind === 'control' ? 'limit' : 'by', pad);
        return expectFor(kind, subjectFor(kind, pid), encoder.encode(body), /exceeds the limit/);
      },
    },
    {
      name: 'deep nesting',
      weight: 6,
      make: () => {
        const kind = pick(['event', 'result', 'control', 'heartbeat', 'decision']);
        const pid = project();
        const depth = pick([65, 100, 1_000, 10_000, 20_000]);
        if (rand() < 0.3) {
          // The whole body one deep array: not an object.
          const text = rand() < 0.5 ? arrays(depth * 2) : deepArrays(depth * 2);
          return expectFor(kind, subjectFor(kind, pid), encoder.encode(text), /schema violation/);
        }
        const field = kind === 'event' ? 'payload' : kind === 'result' ? 'output' : kind === 'control' ? 'limit' : kind === 'heartbeat' ? 'fencingToken' : 'by';
        const reason = kind === 'event' || kind === 'result' ? /nested deeper than 64/ : /schema violation/;
        return expectFor(kind, subjectFor(kind, pid), encoder.encode(bodyWith(kind, pid, field, nested(depth, '1'))), reason);
      },
    },
    {
      name: '__proto__',
      weight: 8,
      make: () => {
        const kind = pick(['event', 'result', 'heartbeat', 'decision', 'control']);
        // Events of projects that do not exist only: a well-formed one of the valid project would be taken.
        const pid = kind === 'event' ? `fz_${int(1_000_000)}` : project();
        const poison = pick([
          '{"__proto__":{"polluted":true,"isAdmin":true}}',
          '{"constructor":{"prototype":{"polluted":true}}}',
          '{"__proto__":null}',
          '{"a":{"__proto__":{"toString":"x"}}}',
        ]);
        if (kind === 'control') {
          const body = `{"__proto__":{"action":"cancel"},"constructor":{"prototype":{"action":"cancel"}}}`;
          return expectFor(kind, subjectFor(kind, pid), encoder.encode(body), /schema violation/);
        }
        const field = kind === 'event' ? 'payload' : kind === 'result' ? 'output' : kind === 'heartbeat' ? 'taskId' : 'approvalId';
        // For events and results the poison is a well-formed payload / output: refused further
        // on (no such project / task / approval); for the others a wrong type.
        const body = `${bodyWith(kind, pid, field, poison).slice(0, -1)},"__proto__":{"projectId":"elsewhere","status":"completed"}}`;
        const reason = kind === 'event' ? /ERR_PROJECT_NOT_FOUND/ : kind === 'result' ? /ERR_TASK_NOT_FOUND/ : /schema violation/;
        return expectFor(kind, subjectFor(kind, pid), encoder.encode(body), reason);
      },
    },
    {
      name: 'hostile numbers',
      weight: 10,
      make: () => {
        const kind = pick(['event', 'result', 'heartbeat', 'control']);
        const pid = project();
        if (kind === 'event') {
          // PROJECT_CREATED with a budget PostgreSQL cannot hold, or not a number at all.
          const fpid = `fz_${int(1_000_000)}`;
          let budget = rand() < 0.5 ? pick(hostileJson) : String(pick([1e308, -1, 1e9, -1e308, 2 ** 53 + 1]));
          // A budget that parses into the column's range (-0, 1e-400) would make a valid event.
          const b = parseOrNull(budget);
          if (typeof b === 'number' && b >= 0 && b <= 99_999_999.9999) budget = '1e308';
          const body = `{"id":"fz-evt-${n}","type":"PROJECT_CREATED","projectId":"${fpid}","payload":{"budget":${budget}},"occurredAt":"${now}"}`;
          return expectFor(kind, s(`events.${fpid}.PROJECT_CREATED`), encoder.encode(body), /schema violation|not JSON/);
        }
        const field = kind === 'result' ? pick(['fencingToken', 'actualCost']) : kind === 'heartbeat' ? 'fencingToken' : 'limit';
        const value = rand() < 0.5 ? pick(hostileJson) : String(pick(hostile));
        const body = bodyWith(kind, pid, field, value);
        const parsed = parseOrNull(body) as Record<string, unknown> | null;
        // A value that happens to be a valid number for the field passes the schema; the task does not exist.
        const v = parsed?.[field];
        const fine = parsed !== null && typeof v === 'number' && (field === 'fencingToken' ? Number.isSafeInteger(v) && v >= 0 : field === 'limit' ? v >= 0 && v <= 999_999.9999 : v >= 0 && v <= 999_999.9999);
        const reason = parsed === null ? /not JSON/ : fine ? (kind === 'control' ? /ERR_/ : /ERR_TASK_NOT_FOUND/) : /schema violation/;
        if (kind === 'control' && fine && pid === validProject) {
          // A budget a control request would set on the valid project: sent to a project that does not exist.
          return expectFor(kind, subjectFor(kind, `fz_${int(1_000_000)}`), encoder.encode(body), /ERR_PROJECT_NOT_FOUND/);
        }
        return expectFor(kind, subjectFor(kind, pid), encoder.encode(body), reason);
      },
    },
    {
      name: 'NUL and lone surrogates',
      weight: 10,
      make: () => {
        const kind = pick(['event', 'result', 'decision', 'control']);
        const pid = project();
        const bad = pick(['\\u0000', 'a\\u0000b', '\\ud800', 'x\\udfff', '\\udc00\\ud800']);
        const field = kind === 'event' ? pick(['id', 'payload']) : kind === 'result' ? pick(['output', 'taskId']) : kind === 'decision' ? pick(['approvalId', 'by']) : 'reason';
        const value = field === 'payload' || field === 'output' ? pick([`{"k":"${bad}"}`, `{"${bad}":1}`, `{"a":[1,{"b":"${bad}"}]}`]) : `"${bad}"`;
        const body = kind === 'control' ? `{"action":"pause","reason":"${bad}"}` : bodyWith(kind, pid, field, value);
        return expectFor(kind, subjectFor(kind, pid), encoder.encode(body), /NUL|surrogate|schema violation/);
      },
    },
    {
      name: 'SQL',
      weight: 10,
      make: () => {
        const kind = pick(['event', 'result', 'heartbeat', 'decision']);
        const pid = project();
        const inj = pick(sql);
        if (kind === 'decision') {
          // A well-formed decision naming an approval that does not exist.
          return expectFor(kind, subjectFor(kind, pid), encoder.encode(bodyWith(kind, pid, pick(['approvalId', 'by']), JSON.stringify(inj.slice(0, 50)))), /ERR_APPROVAL|approval .* does not exist/);
        }
        if (kind === 'result' && rand() < 0.5) {
          // A failed result of a task that does not exist, its error an injection.
          const body = `{"taskId":"tsk_fz${n}","status":"failed","fencingToken":1,"error":${JSON.stringify(inj)}}`;
          return expectFor(kind, subjectFor(kind, pid), encoder.encode(body), /ERR_TASK_NOT_FOUND/);
        }
        if (kind === 'event' && rand() < 0.5) {
          // A PROJECT_CREATED whose id is an injection: not a valid id.
          const body = `{"id":${JSON.stringify(inj)},"type":"PROJECT_CREATED","projectId":${JSON.stringify(inj)},"payload":{"title":${JSON.stringify(inj)}},"occurredAt":"${now}"}`;
          const fpid = `fz_${int(1_000_000)}`;
          return expectFor(kind, s(`events.${fpid}.PROJECT_CREATED`), encoder.encode(body), /subject\/body mismatch|schema violation/);
        }
        const field = kind === 'event' ? 'id' : 'taskId';
        // An injected event id is a valid id of an event of a project that does not exist
        // (or of the valid project, with a payload its rule cannot use: refused); an injected task id is no valid id.
        const fpid = kind === 'event' ? `fz_${int(1_000_000)}` : pid;
        return expectFor(kind, subjectFor(kind, fpid), encoder.encode(bodyWith(kind, fpid, field, JSON.stringify(inj))), kind === 'event' ? /ERR_PROJECT_NOT_FOUND/ : /schema violation/);
      },
    },
    {
      name: 'bad subjects',
      weight: 6,
      make: () => {
        const body = encoder.encode(bodyWith('result', validProject, 'taskId', `"tsk_fz${n}"`));
        const pick1 = int(5);
        const subject =
          pick1 === 0
            ? s(`events.${validProject}`) // no event type
            : pick1 === 1
              ? s(`results.${pick(["x'OR'1'='1", 'a;b', 'ä', '%00', 'x'.repeat(51)])}`)
              : pick1 === 2
                ? s(`heartbeats.${validProject}.extra`)
                : pick1 === 3
                  ? s(`events.${validProject}.x.SCENE_WRITTEN`)
                  : s(`approvals.decided.${pick(['a:b:c!', 'x'.repeat(60)])}`);
        return { subject, data: body, expect: 'dlq', letters: [letterOf(body)], reason: /unexpected subject|does not name a valid project id/ };
      },
    },
    {
      name: 'valid shape, nothing to act on',
      weight: 10,
      make: () => {
        const kind = pick(['event', 'result', 'batch', 'heartbeat', 'decision', 'control']);
        const pid = project();
        if (kind === 'batch') {
          // Each entry refused (no such task) on its own: one dead letter per entry.
          const entries = Array.from({ length: 1 + int(5) }, (_, i) => ({ taskId: `tsk_fz${n}_${i}`, status: 'completed', fencingToken: int(100), output: { i }, actualCost: 0.01 }));
          const data = encoder.encode(JSON.stringify({ results: entries }));
          return { subject: s(`results.${pid}`), data, expect: 'dlq', letters: entries.map((e) => JSON.stringify(e)), reason: /ERR_TASK_NOT_FOUND/ };
        }
        if (kind === 'event') {
          const fpid = `fz_${int(1_000_000)}`;
          const type = pick(['SCENE_WRITTEN', 'SHOT_PLANNED', 'FINAL_VIDEO_READY', 'NO_SUCH_EVENT']);
          const body = `{"id":"fz-evt-${n}","type":"${type}","projectId":"${fpid}","payload":{"shots":[1,2]},"occurredAt":"${now}"}`;
          return expectFor('event', s(`events.${fpid}.${type}`), encoder.encode(body), /ERR_PROJECT_NOT_FOUND/);
        }
        if (kind === 'control') {
          const fpid = `fz_${int(1_000_000)}`;
          return expectFor('control', s(`control.${fpid}`), encoder.encode(pick(['{"action":"status"}', '{"action":"pause"}', '{"action":"resume"}', '{"action":"cancel"}'])), /ERR_PROJECT_NOT_FOUND/);
        }
        // A big output (within the limit) for a task that does not exist, now and then.
        const big = kind === 'result' && rand() < 0.1 ? JSON.stringify({ image: 'i'.repeat(50_000 + int(150_000)) }) : '{}';
        const body = kind === 'result' ? bodyWith(kind, pid, 'output', big) : bodyWith(kind, pid, kind === 'heartbeat' ? 'fencingToken' : 'by', kind === 'heartbeat' ? '3' : '"fuzz"');
        const reason = kind === 'decision' ? /ERR_APPROVAL/ : /ERR_TASK_NOT_FOUND/;
        return expectFor(kind, subjectFor(kind, pid), encoder.encode(body), reason);
      },
    },
  ];
  const total = families.reduce((a, f) => a + f.weight, 0);
  const out: Bad[] = [];
  for (; n < count; n++) {
    let r = rand() * total;
    const family = families.find((f) => (r -= f.weight) < 0) ?? families[0]!;
    const m = family.make();
    const bad = m as Bad;
    bad.family = family.name;
    bad.core = m.expect === 'dlq' && rand() < 0.3;
    out.push(bad);
  }
  return out;
}

function expectFor(kind: string, subject: string, data: Uint8Array, reason: RegExp): Omit<Bad, 'core' | 'family'> {
  if (kind === 'control') return { subject, data, expect: 'reply', letters: [], reason };
  return { subject, data, expect: 'dlq', letters: [letterOf(data)], reason };
}

function parseOrNull(text: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return null;
  }
}

function isJson(data: Uint8Array): boolean {
  try {
    JSON.parse(decoder.decode(data));
    return true;
  } catch {
    return false;
  }
}

/** The resident set of process `pid`, in MiB (VmRSS of /proc/<pid>/status). */
function rssMib(pid: number): number {
  const m = /VmRSS:\s+(\d+)\s+kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) / 1024 : Number.NaN;
}

interface Letter {
  subject: string;
  reason: string;
  data: string;
}

/**
 * Scenario 11: a fuzz of 10 000 bad messages (seeded: `badMessages`) over every inbound
 * subject — not JSON, wrong types, oversized, deep nesting, `__proto__`, hostile numbers,
 * NUL and lone surrogates, SQL, bad subjects, bodies naming what does not exist — while a
 * valid project (its keyframes 200 KB results) runs to completion. The service never
 * exits; its RSS, sampled from /proc all along, stays under RSS_BOUND_MIB; every bad
 * message is dead-lettered (read back from the `<P>_DLQ` stream, matched by subject and
 * data) with the reason its family calls for, and a bad control request is answered with a
 * typed error; no dead letter that no bad message explains. Figure: peak RSS.
 */
export function fuzz(seed = 11): Scenario {
  return {
    id: 'fuzz',
    title: 'fuzz: 10 000 bad messages on every inbound subject',
    async run(log): Promise<ScenarioResult> {
      const world = await World.create({
        shots: SHOTS,
        env: { MAX_PAYLOAD_BYTES: String(MAX_PAYLOAD) },
        handle: async (task, simulated) => {
          // Each attempt runs a while, so that the bad results naming it find it RUNNING.
          await new Promise((r) => setTimeout(r, AGENT_MS));
          const { output, actualCost } = simulated();
          // Big results in the valid flow: each keyframe a 200 KB image.
          if (task.taskType === 'GENERATE_KEYFRAME') return { output: { ...output, image: 'k'.repeat(IMAGE_BYTES) }, actualCost };
          return { output, actualCost };
        },
      });
      try {
        const projectId = newProjectId();
        const bad = badMessages(seed, world.prefix, projectId);
        const orchestrator = await world.startOrchestrator('chaos-11');
        const pid = orchestrator.pid!;
        let exited: string | null = null;
        void orchestrator.exited.then((e) => (exited = `exited: code ${e.code}, signal ${e.signal}`));
        await new Promise((r) => setTimeout(r, 2_000));
        const baseline = rssMib(pid);
        let peak = baseline;
        const samples: number[] = [];
        const sampler = setInterval(() => {
          if (!orchestrator.running) return;
          const v = rssMib(pid);
          samples.push(v);
          peak = Math.max(peak, v);
        }, 100);
        log(`baseline RSS ${baseline.toFixed(0)} MiB; ${bad.length} bad messages (seed ${seed})`);
        await world.startAgents();
        const js = jetstream(world.nc);
        const replies: { bad: Bad; reply: unknown }[] = [];
        const dispatches = () =>
          world.watch.on<{ taskId: string; projectId: string; fencingToken: number }>(`${world.prefix}.tasks.`, (d) => d.projectId === projectId).map((d) => d.body);
        const t0 = Date.now();
        /** The bad messages sent when the valid project was created, and when it completed. */
        let sentAtCreation = 0;
        let sentAtCompletion = -1;
        let sent = 0;
        let completed: Promise<void> = Promise.resolve();
        // Sent in order, a window of them at a time; the valid project a third of the way in.
        const WINDOW = 64;
        for (let i = 0; i < bad.length; i += WINDOW) {
          if (i <= bad.length / 3 && bad.length / 3 < i + WINDOW) {
            await world.createProject(projectId);
            sentAtCreation = i;
            // Not completing fails the check below, with the tasks' states, rather than the scenario.
            completed = world.projectDone(projectId, 180_000).then(
              () => void (sentAtCompletion = sent),
              () => undefined,
            );
          }
          await Promise.all(
            bad.slice(i, i + WINDOW).map(async (b, j) => {
              b.bind?.(dispatches());
              if (b.expect === 'reply') {
                const reply = await world.nc.request(b.subject, b.data, { timeout: 30_000 }).then(
                  (m) => parseOrNull(m.string()),
                  (err: Error) => ({ noReply: err.message }),
                );
                replies.push({ bad: b, reply });
              } else if (b.core) world.nc.publish(b.subject, b.data);
              else await js.publish(b.subject, b.data, { msgID: `fz-${seed}-${i + j}` });
            }),
          );
          sent = Math.min(i + WINDOW, bad.length);
        }
        await world.nc.flush();
        const sentIn = (Date.now() - t0) / 1000;
        const expected = bad.reduce((a, b) => a + b.letters.length, 0);
        log(`sent in ${sentIn.toFixed(1)} s; ${expected} dead letters expected, ${replies.length} control replies`);
        // A message leaves the inbound stream once handled, or once its dead letter is stored.
        await world.until(async () => (await world.inboundPending()) === 0, 'every bad message taken from the inbound stream', 300_000, 200);
        const dlqStream = `${world.scope.streamPrefix}_DLQ`;
        const lettersIn = (Date.now() - t0) / 1000;
        await completed;
        await new Promise((r) => setTimeout(r, 1_000));
        clearInterval(sampler);
        const end = rssMib(pid);

        // Every dead letter matched to a bad message by subject and data.
        const letters = await readStream(world, dlqStream);
        const owed = new Map<string, { bad: Bad; n: number }>();
        for (const b of bad) for (const data of b.letters) {
          const key = `${b.subject}\u0001${data}`;
          const o = owed.get(key);
          if (o) o.n++;
          else owed.set(key, { bad: b, n: 1 });
        }
        const unexplained: Letter[] = [];
        const wrongReason: string[] = [];
        const reasons = new Map<string, number>();
        for (const l of letters) {
          const o = owed.get(`${l.subject}\u0001${l.data}`);
          if (!o || o.n === 0) {
            unexplained.push(l);
            continue;
          }
          o.n--;
          const code = /^(ERR_[A-Z_]+|not JSON|schema violation|subject\/body mismatch|unexpected subject|payload of|subject)/.exec(l.reason)?.[1] ?? l.reason.slice(0, 30);
          reasons.set(code, (reasons.get(code) ?? 0) + 1);
          if (!o.bad.reason.test(l.reason)) wrongReason.push(`${o.bad.family} on ${o.bad.subject}: ${l.reason.slice(0, 160)}`);
        }
        const missing = [...owed.values()].filter((o) => o.n > 0);
        const badReplies = replies.filter(({ bad: b, reply }) => {
          const r = reply as { ok?: boolean; error?: { code?: unknown; message?: unknown } } | null;
          return !(r && r.ok === false && typeof r.error?.code === 'string' && /^ERR_/.test(r.error.code) && b.reason.test(`${r.error.code}: ${String(r.error.message)}`));
        });
        const families = new Map<string, number>();
        for (const b of bad) families.set(b.family, (families.get(b.family) ?? 0) + 1);
        log(`families: ${[...families].map(([f, c]) => `${f} ${c}`).join(', ')}`);
        log(`reasons: ${[...reasons].sort((a, b) => b[1] - a[1]).map(([r, c]) => `${r} ${c}`).join(', ')}`);
        log(`RSS baseline ${baseline.toFixed(0)}, peak ${peak.toFixed(0)}, end ${end.toFixed(0)} MiB (${samples.length} samples); dead letters stored in ${lettersIn.toFixed(1)} s (${(letters.length / lettersIn).toFixed(0)}/s)`);
        log(`the valid project created after ${sentAtCreation} bad messages, completed after ${sentAtCompletion}`);
        const counts = await world.statusCounts(projectId);
        const total = Object.values(counts).reduce((a, b) => a + b, 0);
        if ((await world.projectState(projectId)) !== 'completed') {
          const { rows } = await world.sql.query<{ task_id: string; task_type: string; status: string; attempts: number; last_error: string | null }>(
            `SELECT task_id, task_type, status, attempts, last_error FROM tasks WHERE project_id = $1 AND status NOT IN ('COMPLETED', 'CANCELLED')`,
            [projectId],
          );
          log(`the valid project is ${await world.projectState(projectId)}: ${JSON.stringify(counts)}; not final: ${rows.map((r) => `${r.task_id} ${r.task_type} ${r.status} ×${r.attempts} ${r.last_error ?? ''}`).join('; ')}`);
        }
        const sample = (xs: readonly string[]) => xs.slice(0, 3).join(' | ');
        return {
          did: `${bad.length} bad messages (${bad.filter((b) => b.expect === 'dlq').length} inbound, ${replies.length} control requests), ${letters.length} dead letters in ${lettersIn.toFixed(0)} s; a valid project of ${total} tasks between bad messages ${sentAtCreation} and ${sentAtCompletion}`,
          checks: [
            expectThat('the service never exited', exited === null && orchestrator.running, exited ?? `running, pid ${pid}`),
            expectThat(`RSS under ${RSS_BOUND_MIB} MiB all along`, samples.length > 0 && peak < RSS_BOUND_MIB, `baseline ${baseline.toFixed(0)}, peak ${peak.toFixed(0)}, end ${end.toFixed(0)} MiB over ${samples.length} samples`),
            expectThat('every bad message dead-lettered', missing.length === 0, missing.length ? `${missing.reduce((a, o) => a + o.n, 0)} missing, e.g. ${sample(missing.map((o) => `${o.bad.family} on ${o.bad.subject}: ${decoder.decode(o.bad.data.slice(0, 120))}`))}` : `${expected} of ${expected}`),
            expectThat('each with its reason', wrongReason.length === 0, wrongReason.length ? `${wrongReason.length} unexpected: ${sample(wrongReason)}` : `${reasons.size} kinds of reason`),
            expectThat('no dead letter unexplained', unexplained.length === 0, unexplained.length ? `${unexplained.length}: ${sample(unexplained.map((l) => `${l.subject} ${l.reason.slice(0, 100)}`))}` : `${letters.length} letters, all matched`),
            expectThat('bad control requests answered with a typed error', badReplies.length === 0, badReplies.length ? `${badReplies.length} of ${replies.length}: ${sample(badReplies.map((r) => `${r.bad.family}: ${JSON.stringify(r.reply).slice(0, 160)}`))}` : `${replies.length} of ${replies.length}`),
            expectThat('the valid project completed', (await world.projectState(projectId)) === 'completed' && total === 2 * SHOTS + 9, `${total} tasks ${JSON.stringify(counts)}`),
            ...(await world.invariants(projectId)),
          ],
          figure: { label: 'peak RSS', value: peak, unit: 'MiB' },
        };
      } finally {
        await world.close();
      }
    },
  };
}

/** Every message of a limits stream (the dead letters), read with an ordered consumer. */
async function readStream(world: World, stream: string): Promise<Letter[]> {
  const js = jetstream(world.nc);
  const jsm = await jetstreamManager(world.nc);
  const count = (await jsm.streams.info(stream)).state.messages;
  const out: Letter[] = [];
  if (count === 0) return out;
  const consumer = await js.consumers.get(stream);
  const messages = await consumer.consume();
  for await (const m of messages) {
    out.push(m.json<Letter>());
    if (m.info.pending === 0 || out.length >= count) break;
  }
  await messages.close();
  return out;
}
