import { expect, it } from 'vitest';
import { ValidationError } from '../../src/errors.js';
import { portContract, type StoresHarness } from './stores.fixtures.js';
import { at, newTask, write, type HarnessRef } from './task-store.fixtures.js';

/** Rows of `t` (created PENDING by `by`), then READY → RUNNING → FAILED → PENDING → READY → RUNNING by `by`: 7 audit rows, two dispatches. */
async function twoAttempts(h: StoresHarness, taskId: string, by: string, taskType = 'WRITE_SCRIPT'): Promise<void> {
  await h.tasks.createTasks([newTask(taskId, { taskType })], by);
  const steps = [
    ['PENDING', 'READY', 'DEPENDENCIES_MET'],
    ['READY', 'RUNNING', 'DISPATCH'],
    ['RUNNING', 'RUNNING', 'HEARTBEAT'],
    ['RUNNING', 'FAILED', 'FAIL'],
    ['FAILED', 'PENDING', 'RETRY'],
    ['PENDING', 'READY', 'DEPENDENCIES_MET'],
    ['READY', 'RUNNING', 'DISPATCH'],
  ] as const;
  for (const [i, [from, to, event]] of steps.entries()) {
    await h.commit.applyTransition(write(taskId, { expectedVersion: i + 1, from, to, event, by, at: at(10 + i) }));
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The notice watermarks: the instances' rows, the heartbeat's sequence value, claims of stale rows, the audit pages. */
function noticeLedgerCases(harness: HarnessRef): void {
  const ledger = () => harness().notices;

  it('a first heartbeat without a watermark starts it at the audit log\'s next id, and returns the last id handed out, in one statement', async () => {
    const before = harness().roundTrips();
    expect(await ledger().heartbeat('orch-a', null)).toBe(0);
    expect(harness().roundTrips() - before).toBe(1);
    expect(await ledger().get('orch-a')).toMatchObject({ instanceId: 'orch-a', noticesFrom: 1 });
    expect((await ledger().get('orch-a'))!.heartbeatAt).toBeInstanceOf(Date);
    expect(await ledger().get('orch-b')).toBeNull();

    await twoAttempts(harness(), 't1', 'orch-a');
    const last = Math.max(...(await harness().tasks.listTransitions('t1')).map((t) => t.id));
    const before2 = harness().roundTrips();
    expect(await ledger().heartbeat('orch-b', null)).toBe(last);
    expect(harness().roundTrips() - before2).toBe(1);
    expect(await ledger().get('orch-b')).toMatchObject({ noticesFrom: last + 1 });
  });

  it('a heartbeat writes the watermark it is given, and a write sent after it gets ids above the value it returned', async () => {
    await harness().tasks.createTasks([newTask('t0')], 'orch-a');
    const first = (await ledger().get('orch-a'))?.heartbeatAt;
    expect(first).toBeUndefined();
    const seq = await ledger().heartbeat('orch-a', 1);
    expect(await ledger().get('orch-a')).toMatchObject({ noticesFrom: 1 });
    await twoAttempts(harness(), 't1', 'orch-a');
    const idsOfT1 = (await harness().tasks.listTransitions('t1')).map((t) => t.id);
    expect(Math.min(...idsOfT1)).toBeGreaterThan(seq);
    // The watermark may go down as well as up (a replay owed from further back).
    const seq2 = await ledger().heartbeat('orch-a', Math.max(...idsOfT1) + 1);
    expect(seq2).toBe(Math.max(...idsOfT1));
    await ledger().heartbeat('orch-a', 3);
    expect(await ledger().get('orch-a')).toMatchObject({ noticesFrom: 3 });
  });

  it('pages through one instance\'s audit rows from an id, by id, with the task type and the attempt of each', async () => {
    await twoAttempts(harness(), 'ta', 'orch-a', 'GENERATE_VIDEO');
    await twoAttempts(harness(), 'tb', 'orch-b');
    await harness().tasks.createTasks([newTask('tc')], 'orch-a');
    const all = await ledger().listAuditSince('orch-a', 1, 100);
    expect(all.map((r) => `${r.taskId} ${r.from ?? 'null'}→${r.to} ${r.attempt}`)).toStrictEqual([
      'ta null→PENDING 0',
      'ta PENDING→READY 0',
      'ta READY→RUNNING 1',
      'ta RUNNING→RUNNING 1',
      'ta RUNNING→FAILED 1',
      'ta FAILED→PENDING 1',
      'ta PENDING→READY 1',
      'ta READY→RUNNING 2',
      'tc null→PENDING 0',
    ]);
    expect(all[2]).toStrictEqual({ id: all[2]!.id, taskId: 'ta', projectId: 'prj-1', taskType: 'GENERATE_VIDEO', from: 'READY', to: 'RUNNING', at: at(11), attempt: 1 });
    expect(all[0]!.at).toStrictEqual(at(0));
    const ids = all.map((r) => r.id);
    expect([...ids].sort((a, b) => a - b)).toStrictEqual(ids);
    // Pages: from an id, at most `limit`, up to `toId` when given.
    expect((await ledger().listAuditSince('orch-a', ids[3]!, 2)).map((r) => r.id)).toStrictEqual([ids[3], ids[4]]);
    expect((await ledger().listAuditSince('orch-a', ids[6]!, 100, ids[7])).map((r) => r.id)).toStrictEqual([ids[6], ids[7]]);
    expect(await ledger().listAuditSince('orch-a', ids[8]! + 1, 100)).toStrictEqual([]);
    expect((await ledger().listAuditSince('orch-b', 1, 100)).every((r) => r.taskId === 'tb')).toBe(true);
    expect(await ledger().listAuditSince('orch-z', 1, 100)).toStrictEqual([]);
  });

  it('claims a stale row only, never the claimer\'s own, and a claimed row is fresh for the others', async () => {
    await ledger().heartbeat('orch-a', 5);
    await ledger().heartbeat('orch-b', null);
    await sleep(5); // PGlite's clock may tick by the millisecond
    expect(await ledger().claimStale(3600, 'orch-c'), 'nothing an hour old').toBeNull();
    // Stale by 0 seconds: every row written before this statement.
    expect(await ledger().claimStale(0, 'orch-a')).toMatchObject({ instanceId: 'orch-b' });
    const claimed = await ledger().claimStale(0, 'orch-b');
    expect(claimed).toMatchObject({ instanceId: 'orch-a', noticesFrom: 5 });
    expect((await ledger().get('orch-a'))!.heartbeatAt).toStrictEqual(claimed!.heartbeatAt);
    expect(await ledger().claimStale(0, 'orch-a'), 'its own row is never claimed').not.toMatchObject({ instanceId: 'orch-a' });
  });

  it('two instances claiming at once: the stale row goes to one of them', async () => {
    await ledger().heartbeat('orch-dead', 7);
    await sleep(1_100); // the row is now more than a second old (set-up, not a timing assertion)
    const claims = await Promise.all([ledger().claimStale(1, 'orch-x'), harness().peer.notices.claimStale(1, 'orch-y')]);
    expect(claims.filter((c) => c !== null)).toHaveLength(1);
    expect(claims.find((c) => c !== null)).toMatchObject({ instanceId: 'orch-dead', noticesFrom: 7 });
  });

  it('releases a row; a claimed row only while its owner has not written it since', async () => {
    await ledger().heartbeat('orch-a', 1);
    expect(await ledger().release('orch-a')).toBe(true);
    expect(await ledger().get('orch-a')).toBeNull();
    expect(await ledger().release('orch-a')).toBe(false);

    await ledger().heartbeat('orch-b', 2);
    await sleep(5); // PGlite's clock may tick by the millisecond
    const claim = await ledger().claimStale(0, 'orch-c');
    expect(claim).toMatchObject({ instanceId: 'orch-b' });
    // Its owner was alive after all: it writes its heartbeat again, and keeps its row.
    await sleep(5);
    await ledger().heartbeat('orch-b', 2);
    expect(await ledger().release('orch-b', claim!.heartbeatAt)).toBe(false);
    expect(await ledger().get('orch-b')).toMatchObject({ noticesFrom: 2 });
    await sleep(5);
    const again = await ledger().claimStale(0, 'orch-c');
    expect(await ledger().release('orch-b', again!.heartbeatAt)).toBe(true);
    expect(await ledger().get('orch-b')).toBeNull();
  });

  it('refuses an instance id the table cannot hold with ValidationError, writing nothing', async () => {
    await expect(ledger().heartbeat('x'.repeat(101), null)).rejects.toBeInstanceOf(ValidationError);
    await sleep(5);
    expect(await ledger().claimStale(0, 'orch-a')).toBeNull();
  });
}

/** The behaviour every NoticeLedger must have (the harness's `notices` is the port under test). */
export function noticeLedgerContract(name: string, setup: () => Promise<StoresHarness>): void {
  portContract(`NoticeLedger contract: ${name}`, 'Pacific/Chatham', setup, noticeLedgerCases);
}
