import { expect, it } from 'vitest';
import { ValidationError } from '../../src/errors.js';
import type { DeadLetter } from '../../src/ports/dead-letter-store.js';
import { portContract, type StoresHarness } from './stores.fixtures.js';
import { at, type HarnessRef } from './task-store.fixtures.js';

/** Dead letters: appended, listed in order. */
function deadLetterCases(harness: HarnessRef): void {
  const store = () => harness().deadLetters;

  it('records dead letters and lists them in order, by project', async () => {
    const letters: DeadLetter[] = [
      { taskId: 't1', projectId: 'prj-1', reason: 'max attempts', lastError: 'timeout after 600000ms', attempts: 3, at: at(10) },
      { taskId: 't2', projectId: 'prj-2', reason: 'cancelled', lastError: null, attempts: 0, at: at(5) },
      { taskId: 't1', projectId: 'prj-1', reason: 'given up é', lastError: 'boom', attempts: 5, at: at(20.5) },
    ];
    for (const l of letters) await store().record(l);
    expect(await store().list()).toStrictEqual(letters);
    expect(await store().list('prj-1')).toStrictEqual([letters[0], letters[2]]);
    expect(await store().list('prj-9')).toStrictEqual([]);
  });

  it('pages dead letters, the latest first, by project, from a cursor (ids in recording order)', async () => {
    const letters: DeadLetter[] = [1, 2, 3, 4, 5].map((n) => ({ taskId: `t${n}`, projectId: n % 2 ? 'prj-1' : 'prj-2', reason: `r${n}`, lastError: null, attempts: n, at: at(n) }));
    for (const l of letters) await store().record(l);
    const all = await store().listPage({ limit: 10 });
    expect(all.map((l) => l.taskId)).toStrictEqual(['t5', 't4', 't3', 't2', 't1']);
    expect(all.map(({ id: _id, ...l }) => l)).toStrictEqual([...letters].reverse());
    const ids = all.map((l) => l.id);
    expect([...ids].sort((a, b) => b - a)).toStrictEqual(ids);
    expect(new Set(ids).size).toBe(5);
    const first = await store().listPage({ limit: 2 });
    expect(first.map((l) => l.taskId)).toStrictEqual(['t5', 't4']);
    expect((await store().listPage({ limit: 2, before: first[1]!.id })).map((l) => l.taskId)).toStrictEqual(['t3', 't2']);
    expect((await store().listPage({ limit: 10, projectId: 'prj-1' })).map((l) => l.taskId)).toStrictEqual(['t5', 't3', 't1']);
    expect((await store().listPage({ limit: 10, projectId: 'prj-1', before: ids[2]! })).map((l) => l.taskId)).toStrictEqual(['t1']);
    expect(await store().listPage({ limit: 10, projectId: 'prj-9' })).toStrictEqual([]);
  });

  it('refuses a letter the table cannot hold with ValidationError, recording nothing', async () => {
    const letter: DeadLetter = { taskId: 't1', projectId: 'prj-1', reason: 'max attempts', lastError: null, attempts: 3, at: at(10) };
    await store().record(letter);
    for (const bad of [{ ...letter, taskId: 'x'.repeat(51) }, { ...letter, attempts: 1.5 }, { ...letter, at: new Date(Number.NaN) }]) {
      await expect(store().record(bad)).rejects.toBeInstanceOf(ValidationError);
    }
    expect(await store().list()).toStrictEqual([letter]);
  });
}

/** The behaviour every DeadLetterStore must have (the harness's `deadLetters` is the port under test). */
export function deadLetterStoreContract(name: string, setup: () => Promise<StoresHarness>): void {
  portContract(`DeadLetterStore contract: ${name}`, 'Pacific/Chatham', setup, deadLetterCases);
}
