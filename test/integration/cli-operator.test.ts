import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { jetstream } from '@nats-io/jetstream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createAgentWorker, type AgentWorker } from '../../src/agent/worker.js';
import { TaskTypeCatalog } from '../../src/domain/task-types.js';
import { SimulatedAgents } from '../../src/demo/simulated-agents.js';
import { createServiceScope, type ServiceScope } from '../helpers/service-scope.js';
import { runCli, startService, stopAll, type ManagedProcess } from '../helpers/service-process.js';
import { newProjectId } from '../helpers/e2e-project.js';
import { waitFor } from '../helpers/wait.js';

/**
 * The operator's commands against a running `orchestrator start`, over the NATS contract
 * only: `submit`/`create`, `projects`, `status`/`review`, `tasks`, `dlq` (human and
 * --json), and their bad input. The agents are workers in this process: simulated outputs
 * (the demo's), failing every attempt of the projects whose id starts with `prj_fail`.
 */
let scope: ServiceScope;
let service: ManagedProcess | undefined;
const workers: AgentWorker[] = [];
let dir: string;

interface Status {
  project: { projectId: string; title: string; state: string; pausedReason: string | null };
  budget: { limit: number | null };
  tasks: Record<string, number>;
  pendingApprovals: { approvalId: string; checkpoint: string; summary?: Record<string, unknown> }[];
}

const cli = (args: readonly string[]) => runCli(args, scope.env);
const json = <T>(r: { stdout: string; stderr: string; code: number | null }): T => {
  expect(r.code, r.stderr).toBe(0);
  return JSON.parse(r.stdout) as T;
};
const status = async (projectId: string) => json<Status>(await cli(['status', projectId, '--json']));
const pendingAt = async (projectId: string, checkpoint: string) =>
  waitFor(async () => (await status(projectId)).pendingApprovals.some((a) => a.checkpoint === checkpoint), { timeoutMs: 90_000, intervalMs: 200, what: `${checkpoint} pending` });

beforeAll(async () => {
  scope = await createServiceScope({ TASK_MAX_ATTEMPTS: '2' });
  dir = mkdtempSync(join(tmpdir(), 'cli-operator-'));
  service = await startService(scope.env);
  const simulated = new SimulatedAgents(new TaskTypeCatalog());
  for (const agent of simulated.agents()) {
    workers.push(
      await createAgentWorker({
        connection: scope.nc,
        agent,
        subjectPrefix: scope.prefix,
        concurrency: 4,
        handle: async (task) => {
          if (task.projectId.startsWith('prj_fail')) throw new Error('model overloaded');
          return simulated.run(task);
        },
      }),
    );
  }
}, 120_000);

afterAll(async () => {
  await Promise.all(workers.map((w) => w.stop({ abort: true })));
  await stopAll([service]);
  await scope.cleanup();
  rmSync(dir, { recursive: true, force: true });
});

describe('submit', () => {
  it('starts a project from flags, waits until it exists, and prints it; a second submit creates nothing', async () => {
    const projectId = newProjectId();
    const args = ['submit', '--project', projectId, '--title', 'The Keeper', '--brief', 'a lighthouse keeper finds a message', '--budget', '25'];
    const first = json<Status & { eventId: string }>(await cli([...args, '--json']));
    expect(first.eventId).toBe(`evt_created_${projectId}`);
    expect(first.project).toMatchObject({ projectId, title: 'The Keeper' });
    expect(first.budget.limit).toBe(25);

    const again = await cli(args);
    expect(again.code).toBe(0);
    expect(again.stdout).toContain(`project ${projectId} exists already: nothing sent`);
    expect(again.stdout).toMatch(/^project\s+\S+ "The Keeper"/m);
    const { rows } = await scope.sql.query<{ n: number }>('SELECT count(*)::integer AS n FROM tasks WHERE project_id = $1 AND task_type = $2', [projectId, 'WRITE_SCRIPT']);
    expect(rows[0]!.n).toBe(1);
  });

  it('create takes a JSON file; the flags win over its fields', async () => {
    const file = join(dir, 'project.json');
    const projectId = newProjectId();
    writeFileSync(file, JSON.stringify({ projectId, title: 'From the file', brief: 'a storm', budget: 12, checkpoints: ['FINAL_VIDEO_READY'], tone: 'dark' }));
    const r = await cli(['create', '--file', file, '--budget', '30']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain(`submitted ${projectId} (event evt_created_${projectId})`);
    expect(r.stdout).toMatch(/of \$30\.00/);
    const { rows } = await scope.sql.query<{ title: string; checkpoints: string[] }>('SELECT title, checkpoints FROM projects WHERE project_id = $1', [projectId]);
    expect(rows[0]).toMatchObject({ title: 'From the file', checkpoints: ['FINAL_VIDEO_READY'] });
    expect(r.stderr).toBe('');

    // A checkpoint no event of the pipeline has would never stop the project: said, not refused.
    const typo = await cli(['create', '--checkpoints', 'SCENE_WRITEN,FINAL_VIDEO_READY', '--budget', '0']);
    expect(typo.code, typo.stderr).toBe(0);
    expect(typo.stderr).toContain('warning: SCENE_WRITEN is no event of the pipeline video (');
    expect(typo.stderr).toContain('SCENE_WRITTEN');
  });

  it('refuses a missing file, a malformed one and a project outside the contract, with the reason, sending nothing', async () => {
    const before = (await scope.sql.query<{ n: number }>('SELECT count(*)::integer AS n FROM projects')).rows[0]!.n;
    const missing = await cli(['submit', '--file', join(dir, 'nope.json')]);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toContain('cannot read');
    expect(missing.stderr).toContain('ENOENT');

    const broken = join(dir, 'broken.json');
    writeFileSync(broken, '{"title": "The Keeper", ');
    const malformed = await cli(['submit', '--file', broken]);
    expect(malformed.code).toBe(1);
    expect(malformed.stderr).toContain('broken.json is not JSON');
    expect(malformed.stderr).toContain('[ERR_VALIDATION]');

    const array = join(dir, 'array.json');
    writeFileSync(array, '[1, 2]');
    expect((await cli(['submit', '--file', array])).stderr).toContain('expected a JSON object');

    const bad = join(dir, 'bad.json');
    writeFileSync(bad, JSON.stringify({ title: 'x', budget: -5, checkpoints: ['not an event'] }));
    const schema = await cli(['submit', '--file', bad]);
    expect(schema.code).toBe(1);
    expect(schema.stderr).toContain('does not fit the PROJECT_CREATED contract');
    expect(schema.stderr).toContain('payload.budget');
    expect(schema.stderr).toContain('payload.checkpoints');
    expect(schema.stderr).not.toMatch(/^\s+at /m);

    const amount = await cli(['submit', '--budget', 'lots']);
    expect(amount.code).toBe(1);
    expect(amount.stderr).toContain('--budget expects an amount (or none), got lots');

    const id = await cli(['submit', '--project', 'has.dots']);
    expect(id.code).toBe(1);
    expect(id.stderr).toContain('projectId');
    expect((await scope.sql.query<{ n: number }>('SELECT count(*)::integer AS n FROM projects')).rows[0]!.n).toBe(before);
  });
});

describe('review and status: what a checkpoint asks a person to judge', () => {
  it('shows the script, then the shot list as a table, then the preview with each shot\'s image', async () => {
    const projectId = newProjectId();
    const brief = 'a lighthouse keeper finds a message in a bottle, written in her own hand, dated tomorrow';
    expect((await cli(['submit', '--project', projectId, '--title', 'Review me', '--brief', brief, '--budget', '40'])).code).toBe(0);

    await pendingAt(projectId, 'SCENE_WRITTEN');
    const script = await cli(['review', projectId]);
    expect(script.code, script.stderr).toBe(0);
    expect(script.stdout).toMatch(/^checkpoint SCENE_WRITTEN — approval \S+/m);
    // The script as text to read, wrapped and indented under its name.
    expect(script.stdout).toMatch(/^ {2}script\n {4}INT\. LIGHTHOUSE - NIGHT\. a lighthouse keeper finds a message in a bottle, written in her\n {4}own hand, dated tomorrow\.$/m);
    expect(script.stdout).toContain(`orchestrator approve ${projectId} --approval`);
    // `status` shows the same under the project's figures.
    const readable = await cli(['status', projectId]);
    expect(readable.stdout).toMatch(/^approval \S+ SCENE_WRITTEN waiting/m);
    expect(readable.stdout).toContain('INT. LIGHTHOUSE - NIGHT. a lighthouse keeper finds a message');
    const asJson = json<{ pendingApprovals: { checkpoint: string; summary: { script?: unknown } }[] }>(await cli(['review', projectId, '--json']));
    expect(asJson.pendingApprovals[0]!.checkpoint).toBe('SCENE_WRITTEN');
    expect(JSON.stringify(asJson.pendingApprovals[0]!.summary.script)).toContain('INT. LIGHTHOUSE');

    expect((await cli(['approve', projectId])).code).toBe(0);
    await pendingAt(projectId, 'SHOT_PLANNED');
    const shots = await cli(['review', projectId]);
    expect(shots.stdout).toMatch(/^ {2}shots \(3\)/m);
    expect(shots.stdout).toMatch(/^ {4}INDEX {2}PROMPT {2}DURATIONSECONDS$/m);
    expect(shots.stdout).toMatch(/^ {4}\s*0 {2}shot 1 {2}\s*4$/m);
    expect(shots.stdout).toMatch(/^ {4}\s*2 {2}shot 3 {2}\s*4$/m);

    expect((await cli(['approve', projectId])).code).toBe(0);
    await pendingAt(projectId, 'PREVIEW_VIDEO_READY');
    const preview = await cli(['review', projectId]);
    expect(preview.stdout).toMatch(/^ {2}preview {2}s3:\/\/renders\/tsk_\w+\.mp4$/m);
    expect(preview.stdout).toMatch(/^ {4}INDEX {2}PROMPT {2}DURATIONSECONDS {2}IMAGE$/m);
    for (const i of [0, 1, 2]) expect(preview.stdout).toMatch(new RegExp(`^ {4}\\s*${i} {2}shot ${i + 1} .* s3://frames/tsk_\\w+\\.png$`, 'm'));
    expect(preview.stdout).toContain('[--shots 0,2]');
    const media = json<{ shotMedia: Record<string, { image?: string }> }>(await cli(['review', projectId, '--json']));
    expect(Object.keys(media.shotMedia).sort()).toEqual(['0', '1', '2']);
    expect(media.shotMedia['1']!.image).toMatch(/^s3:\/\/frames\//);
  }, 240_000);

  it('says when nothing is pending, and refuses an unknown project or approval', async () => {
    const projectId = newProjectId();
    expect((await cli(['submit', '--project', projectId, '--checkpoints', 'none', '--budget', '0'])).code).toBe(0);
    const none = await cli(['review', projectId]);
    expect(none.code).toBe(0);
    expect(none.stdout).toContain(`project ${projectId} (`);
    expect(none.stdout).toContain('has no pending approval');
    const unknown = await cli(['review', 'prj_nope']);
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toContain('project prj_nope does not exist [ERR_PROJECT_NOT_FOUND]');
    const approval = await cli(['review', projectId, '--approval', 'apr_nope']);
    expect(approval.code).toBe(1);
    expect(approval.stderr).toContain(`approval apr_nope is not pending in ${projectId}`);
  });
});

describe('projects, tasks and dlq', () => {
  it('projects: a table of state, progress, tasks, budget and reviews; --json pages with a cursor', async () => {
    const a = newProjectId();
    const b = newProjectId();
    expect((await cli(['submit', '--project', a, '--title', 'Listed first', '--budget', '20'])).code).toBe(0);
    expect((await cli(['submit', '--project', b, '--title', 'Listed second', '--budget', '0'])).code).toBe(0);
    await pendingAt(a, 'SCENE_WRITTEN');

    const human = await cli(['projects']);
    expect(human.code, human.stderr).toBe(0);
    const lines = human.stdout.split('\n');
    expect(lines[0]).toMatch(/^PROJECT\s+TITLE\s+STATE\s+PROGRESS\s+TASKS\s+BUDGET\s+REVIEW\s+WHY$/);
    const row = lines.find((l) => l.startsWith(a))!;
    expect(row).toMatch(/Listed first\s+active\s+[█░]{10} 1\/\d+/);
    expect(row).toMatch(/of \$20\.00\s+SCENE_WRITTEN$/);
    // Newest first: b was created after a.
    expect(lines.findIndex((l) => l.startsWith(b))).toBeLessThan(lines.findIndex((l) => l.startsWith(a)));

    type Page = { items: { projectId: string; state: string; tasks: Record<string, number>; budget: { limit: number | null }; pendingApprovals: { checkpoint: string }[] }[]; next: string | null };
    const first = json<Page>(await cli(['projects', '--limit', '1', '--json']));
    expect(first.items).toHaveLength(1);
    expect(first.items[0]!.projectId).toBe(b);
    expect(first.next).toBe(b);
    const second = json<Page>(await cli(['projects', '--limit', '1', '--after', first.next!, '--json']));
    expect(second.items[0]!.projectId).toBe(a);
    expect(second.items[0]).toMatchObject({ state: 'active', budget: { limit: 20 }, pendingApprovals: [{ checkpoint: 'SCENE_WRITTEN' }] });
    expect(second.items[0]!.tasks.COMPLETED).toBe(1);
    const more = await cli(['projects', '--limit', '1']);
    expect(more.stdout).toContain(`more: orchestrator projects --after ${b}`);

    const cursor = await cli(['projects', '--after', 'prj_nope']);
    expect(cursor.code).toBe(1);
    expect(cursor.stderr).toContain("after: prj_nope is no project (pass the previous page's next) [ERR_VALIDATION]");

    const cancelled = json<Page>(await cli(['projects', '--state', 'cancelled', '--json']));
    expect(cancelled.items.map((p) => p.projectId)).not.toContain(a);
    const badState = await cli(['projects', '--state', 'sleeping']);
    expect(badState.code).toBe(1);
    expect(badState.stderr).toContain('--state expects some of active, paused, failed, completed, cancelled');
    const tooMany = await cli(['projects', '--limit', '100000']);
    expect(tooMany.code).toBe(1);
    expect(tooMany.stderr).toMatch(/schema violation: limit: .*500.* \[ERR_VALIDATION\]/);
  });

  it('tasks: the graph in creation order with states, depth and dependencies; pages; an unknown project is an error', async () => {
    const projectId = newProjectId();
    expect((await cli(['submit', '--project', projectId, '--checkpoints', 'none', '--budget', '50'])).code).toBe(0);
    await waitFor(async () => (await status(projectId)).project.state === 'completed', { timeoutMs: 120_000, intervalMs: 250, what: 'the project completed' });

    const human = await cli(['tasks', projectId]);
    expect(human.code, human.stderr).toBe(0);
    const lines = human.stdout.split('\n');
    expect(lines[0]).toMatch(/^\s*#\s+TASK\s+STATE\s+AGENT\s+TRIES\s+COST\s+AFTER\s+ID\s+OUTPUT \/ ERROR$/);
    expect(lines[1]).toMatch(/^\s*#1 {2}WRITE_SCRIPT\s+COMPLETED\s+script_writer\s+1\/\d+\s+\$\d+\.\d\d\s+—\s+tsk_\w+/);
    expect(lines[2]).toMatch(/^\s*#2 {2}PLAN_SHOTS\s+COMPLETED\s+storyboard_artist /);
    // Each task after its dependencies, indented under them: a shot's keyframe, its QA, then the fan-in.
    expect(lines[3]).toMatch(/^\s*#3 {2}GENERATE_KEYFRAME \[shot 0\]\s+COMPLETED .* — +tsk_\w+ +s3:\/\/frames\/tsk_\w+\.png$/);
    expect(lines[4]).toMatch(/^\s*#4 {4}└ RUN_VISUAL_QA \[shot 0\]\s+COMPLETED .* #3 +tsk_/);
    expect(lines[7]).toMatch(/^\s*#7 {2}GENERATE_KEYFRAME \[shot 2\]/);
    expect(lines[9]).toMatch(/^\s*#9 {6}└ CHECK_CONSISTENCY\s+COMPLETED .* #4,#6,#8 +tsk_/);
    expect(lines[10]).toMatch(/^\s*#10 {8}└ GENERATE_PREVIEW_VIDEO\s+COMPLETED .* #9 +tsk_\w+ +s3:\/\/renders\/tsk_\w+\.mp4$/);
    expect(human.stdout).toMatch(/^\d+ tasks: \d+ COMPLETED$/m);

    type Page = { items: { taskId: string; taskType: string; status: string; dependencies: string[]; dependencyCount: number; artifacts: Record<string, string> }[]; next: string | null };
    const all = json<Page>(await cli(['tasks', projectId, '--json']));
    expect(all.next).toBeNull();
    expect(all.items.every((t) => t.status === 'COMPLETED')).toBe(true);
    expect(all.items[0]!.taskType).toBe('WRITE_SCRIPT');
    const consistency = all.items.find((t) => t.taskType === 'CHECK_CONSISTENCY')!;
    expect(consistency.dependencyCount).toBe(3);
    const { rows } = await scope.sql.query<{ n: number }>('SELECT count(*)::integer AS n FROM tasks WHERE project_id = $1', [projectId]);
    expect(all.items).toHaveLength(rows[0]!.n);

    const page1 = json<Page>(await cli(['tasks', projectId, '--limit', '2', '--json']));
    expect(page1.items.map((t) => t.taskId)).toEqual(all.items.slice(0, 2).map((t) => t.taskId));
    const page2 = json<Page>(await cli(['tasks', projectId, '--limit', '2', '--after', page1.next!, '--json']));
    expect(page2.items.map((t) => t.taskId)).toEqual(all.items.slice(2, 4).map((t) => t.taskId));
    const final = json<Page>(await cli(['tasks', projectId, '--state', 'running,failed', '--json']));
    expect(final.items).toEqual([]);

    const cursor = await cli(['tasks', projectId, '--after', 'tsk_nope']);
    expect(cursor.code).toBe(1);
    expect(cursor.stderr).toContain(`after: tsk_nope is no task of ${projectId}`);

    const unknown = await cli(['tasks', 'prj_nope']);
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toContain('project prj_nope does not exist [ERR_PROJECT_NOT_FOUND]');
    const missing = await cli(['tasks']);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toContain('missing <projectId>');
    const badLimit = await cli(['tasks', projectId, '--limit', '0']);
    expect(badLimit.code).toBe(1);
    expect(badLimit.stderr).toContain('--limit expects a positive integer, got 0');
    const badState = await cli(['tasks', projectId, '--state', 'DONE']);
    expect(badState.code).toBe(1);
    expect(badState.stderr).toContain('--state expects some of PENDING');
  }, 180_000);

  it('dlq: the task that used up its attempts, with the reason and the last error', async () => {
    const projectId = `prj_fail${newProjectId().slice(4, 16)}`;
    expect((await cli(['submit', '--project', projectId, '--budget', '10'])).code).toBe(0);
    await waitFor(async () => (await status(projectId)).project.state === 'failed', { timeoutMs: 90_000, intervalMs: 250, what: 'the project failed' });

    type Page = { items: { id: number; taskId: string; projectId: string; reason: string; lastError: string | null; attempts: number }[]; next: number | null };
    const mine = json<Page>(await cli(['dlq', projectId, '--json']));
    expect(mine.items).toHaveLength(1);
    expect(mine.items[0]).toMatchObject({ projectId, attempts: 2, lastError: expect.stringContaining('model overloaded') });
    expect(mine.next).toBeNull();

    const human = await cli(['dlq']);
    expect(human.code, human.stderr).toBe(0);
    expect(human.stdout.split('\n')[0]).toMatch(/^\s*ID\s+WHEN\s+PROJECT\s+TASK\s+TRIES\s+REASON\s+LAST ERROR$/);
    const row = human.stdout.split('\n').find((l) => l.includes(mine.items[0]!.taskId))!;
    expect(row).toContain(projectId);
    expect(row).toMatch(/\s2\s{2}/);
    expect(row).toContain('model overloaded');

    // The failed project says why, in full, in the list.
    const failed = await cli(['projects', '--state', 'failed']);
    const listed = failed.stdout.split('\n').find((l) => l.startsWith(projectId))!;
    expect(listed).toMatch(new RegExp(`\\sfailed\\s.*task ${mine.items[0]!.taskId} \\(WRITE_SCRIPT\\) failed 2 of 2 attempts: .*model overloaded`));

    const empty = await cli(['dlq', newProjectId()]);
    expect(empty.code).toBe(1);
    expect(empty.stderr).toContain('does not exist [ERR_PROJECT_NOT_FOUND]');
    const badAfter = await cli(['dlq', '--after', 'x']);
    expect(badAfter.code).toBe(1);
    expect(badAfter.stderr).toContain('--after expects a dead letter id, got x');
  }, 120_000);

  it('dlq --messages: the inbound messages the orchestrator refused, from its DLQ stream, newest first', async () => {
    const js = jetstream(scope.nc);
    const bad = newProjectId();
    await js.publish(`${scope.prefix}.events.${bad}.PROJECT_CREATED`, JSON.stringify({ id: `evt-${bad}`, type: 'PROJECT_CREATED', projectId: bad, payload: { budget: -1 }, occurredAt: new Date().toISOString() }), { msgID: `evt-${bad}` });
    await js.publish(`${scope.prefix}.results.${bad}`, 'not json at all');
    type Page = { items: { seq: number; subject: string; reason: string; data: string }[]; next: number | null };
    let page: Page = { items: [], next: null };
    await waitFor(
      async () => {
        page = json<Page>(await cli(['dlq', '--messages', '--json']));
        return page.items.some((m) => m.subject === `${scope.prefix}.results.${bad}`) && page.items.some((m) => m.subject.endsWith(`${bad}.PROJECT_CREATED`));
      },
      { timeoutMs: 60_000, intervalMs: 250, what: 'both refusals in the DLQ stream' },
    );
    const event = page.items.find((m) => m.subject.endsWith(`${bad}.PROJECT_CREATED`))!;
    expect(event.reason).toContain('payload.budget');
    expect(event.data).toContain(`evt-${bad}`);
    // (Their order is the orchestrator's: events and results are handled side by side.)
    const [newest, older] = page.items;
    expect(page.items.find((m) => m.subject === `${scope.prefix}.results.${bad}`)!.data).toBe('not json at all');
    expect(newest!.seq).toBeGreaterThan(older!.seq);

    const human = await cli(['dlq', '--messages', '--limit', '1']);
    expect(human.code, human.stderr).toBe(0);
    const lines = human.stdout.split('\n');
    expect(lines[0]).toMatch(/^\s*SEQ\s+WHEN\s+SUBJECT\s+REASON\s+MESSAGE$/);
    expect(lines[1]).toMatch(new RegExp(`^\\s*${newest!.seq}\\s`));
    expect(lines[1]).toContain(newest!.subject);
    expect(human.stdout).toMatch(/more: orchestrator dlq --messages --after \d+/);
    const before = json<Page>(await cli(['dlq', '--messages', '--limit', '1', '--after', String(newest!.seq), '--json']));
    expect(before.items.map((m) => m.seq)).toEqual([older!.seq]);

    const withProject = await cli(['dlq', bad, '--messages']);
    expect(withProject.code).toBe(1);
    expect(withProject.stderr).toContain('--messages lists every rejected message');
  });

  it('the query subjects answer a malformed body, an unknown kind and a schema violation with a typed error', async () => {
    const ask = async (subject: string, body: string) => JSON.parse((await scope.nc.request(`${scope.prefix}.query.${subject}`, body, { timeout: 10_000 })).string()) as { ok: boolean; error?: { code: string; message: string }; result?: { items: unknown[] } };
    expect(await ask('projects', '{"limit": ')).toMatchObject({ ok: false, error: { code: 'ERR_VALIDATION' } });
    expect(await ask('bogus', '{}')).toMatchObject({ ok: false, error: { code: 'ERR_VALIDATION', message: expect.stringContaining('unknown query "bogus"') } });
    expect(await ask('tasks', '{}')).toMatchObject({ ok: false, error: { code: 'ERR_VALIDATION', message: expect.stringContaining('projectId') } });
    expect(await ask('dead_letters', '{"limit": 0}')).toMatchObject({ ok: false, error: { code: 'ERR_VALIDATION' } });
    const empty = await ask('projects', '');
    expect(empty.ok).toBe(true);
    expect(Array.isArray(empty.result!.items)).toBe(true);
  });

  it('names the orchestrator it cannot reach', async () => {
    const r = await runCli(['projects'], { ...scope.env, NATS_SUBJECT_PREFIX: `${scope.prefix}x` });
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`no orchestrator answered on ${scope.prefix}x.query.projects`);
  });
});
