import { expect, it } from 'vitest';
import { portContract, type StoresHarness } from './stores.fixtures.js';
import { createProject, ingest, newApproval, newTask, raiseEvent, reserve, write } from './project-store.fixtures.js';
import type { HarnessRef } from './task-store.fixtures.js';

/** The stored state in figures, read in one statement by a role that may write nothing. */
function operatorStatsCases(harness: HarnessRef): void {
  const stats = () => harness().stats;

  it('reads zeros from an empty store, every task status present', async () => {
    const before = harness().roundTrips();
    expect(await stats().read()).toStrictEqual({
      tasksByStatus: { PENDING: 0, READY: 0, RUNNING: 0, COMPLETED: 0, FAILED: 0, CANCELLED: 0, WAITING_APPROVAL: 0 },
      approvalsPending: 0,
      budgetSpent: 0,
      budgetReserved: 0,
      outboxBacklog: 0,
      dispatchBacklog: 0,
    });
    expect(harness().roundTrips() - before).toBe(1);
  });

  it('counts tasks by status, pending approvals, the budget of every project and the backlogs', async () => {
    const h = harness();
    await createProject(h.commit, 'prj-1', { budgetLimit: 100 });
    await createProject(h.commit, 'prj-2', { budgetLimit: null });
    await reserve(h, 'r1', 1.25, 'prj-1');
    await reserve(h, 'r2', 0.5, 'prj-2');
    // r2 dispatched: RUNNING, its dispatch unconfirmed (the dispatch outbox).
    await h.commit.applyTransition(write('r2', { expectedVersion: 2, from: 'READY', to: 'RUNNING', fencingToken: 7, patch: { status: 'RUNNING', fencingToken: 7 } }));
    // r1 settled: its reservation released, 2 spent.
    await h.commit.applyTransition(write('r1', { expectedVersion: 2, from: 'READY', to: 'CANCELLED', budget: { projectId: 'prj-1', release: 1.25, spend: 2, enforce: false } }));
    await h.tasks.createTasks([newTask('p1'), newTask('p2'), newTask('w1', { status: 'WAITING_APPROVAL' })], 'orch-a');
    await raiseEvent(h, 'ev-raised', 'c1');
    await h.commit.ingestEvent(ingest('ev-checkpoint', { approval: newApproval('apr-1') }));
    await h.commit.ingestEvent(ingest('ev-checkpoint-2', { approval: newApproval('apr-2') }));
    const counts = await stats().read();
    expect(counts.tasksByStatus).toStrictEqual({ PENDING: 2, READY: 0, RUNNING: 1, COMPLETED: 1, FAILED: 0, CANCELLED: 1, WAITING_APPROVAL: 1 });
    expect(counts.budgetSpent).toBe(2);
    expect(counts.budgetReserved).toBe(0.5);
    expect(counts.outboxBacklog).toBe(1);
    expect(counts.dispatchBacklog).toBe(1);
    expect(counts.approvalsPending).toBe(2);
  });
}

/** The behaviour every OperatorStats must have (the harness's `stats` is the port under test). */
export function operatorStatsContract(name: string, setup: () => Promise<StoresHarness>): void {
  portContract(`OperatorStats contract: ${name}`, 'Asia/Kathmandu', setup, operatorStatsCases);
}
