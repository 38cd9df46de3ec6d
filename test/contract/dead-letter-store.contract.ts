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
