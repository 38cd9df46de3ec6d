import { describe, expect, it } from 'vitest';
import { SimulatedClock } from 'xstate';
import { MemoryLockManager } from '../../src/adapters/memory/lock-manager.js';
import { CONFIRM_WRITE_DELAY_MS, DispatchOutbox, type Sending } from '../../src/dispatch/outbox.js';
import { CLAIM_TTL_MS, LEASE_GRACE_MS, Slots } from '../../src/dispatch/slots.js';
import { silentLogger } from '../../src/logger.js';
import type { Core } from '../../src/orchestrator/core.js';

const T0 = 1_700_000_000_000;
const DEADLINE_MS = 600_000;

/**
 * The dispatcher's side of the dispatch outbox, over the in-memory lock manager and a
 * SimulatedClock: what is written once the bus confirms a dispatch, and when. The store
 * records the confirmations it is asked to write; the bus confirms every dispatch at once.
 */
async function setup(bus: Partial<Core['bus']> = {}) {
  const clock = new SimulatedClock();
  clock.set(T0);
  const locks = new MemoryLockManager({ clock });
  const confirmations: string[][] = [];
  const lengthened: string[][] = [];
  const extendMany = locks.extendMany.bind(locks);
  locks.extendMany = async (entries) => {
    lengthened.push(entries.map((e) => e.lease.resource));
    return extendMany(entries);
  };
  const core = {
    clock,
    locks,
    logger: silentLogger(),
    bus: { dispatchTask: async () => undefined, dispatchBatchSize: () => 1, ...bus },
    tasks: {
      confirmDispatches: async (ds: readonly { taskId: string; fencingToken: number }[]) => {
        confirmations.push(ds.map((d) => `${d.taskId}@${d.fencingToken}`));
      },
    },
  } as unknown as Core;
  const slots = new Slots();
  const outbox = new DispatchOutbox(core, slots);
  outbox.start();
  /** Attempts written RUNNING by this process, their claim leases taken. */
  const running = async (...taskIds: string[]): Promise<Sending[]> => {
    const leases = await locks.acquireMany(taskIds.map((id) => `task:${id}`), CLAIM_TTL_MS);
    return taskIds.map((taskId, i) => {
      const lease = leases[i]!;
      slots.occupy(taskId, 'agent', lease, clock.now());
      return {
        agent: 'agent',
        lease,
        message: { taskId, deadline: new Date(clock.now() + DEADLINE_MS).toISOString(), fencingToken: lease.fencingToken } as Sending['message'],
      };
    });
  };
  /** Lets the promises waiting on the (already resolved) bus and store calls run. */
  const settle = async () => {
    for (let i = 0; i < 20; i++) await Promise.resolve();
  };
  return { clock, locks, slots, outbox, running, settle, confirmations, lengthened };
}

describe('DispatchOutbox: confirmations', () => {
  it('writes them CONFIRM_WRITE_DELAY_MS after the bus confirmed, together, for the attempts still running then', async () => {
    const { clock, locks, slots, outbox, running, settle, confirmations, lengthened } = await setup();
    const sent = await running('t1', 't2', 't3');
    outbox.send(sent);
    await settle();
    // Confirmed by the bus: nothing written yet, and the leases are no longer renewed.
    expect(confirmations).toStrictEqual([]);
    expect(slots.hasUnconfirmed()).toBe(false);

    // t2's attempt ends first (its result committed, which removed its record): its slot is freed.
    await locks.releaseMany(slots.free(['t2']));
    clock.increment(CONFIRM_WRITE_DELAY_MS - 1);
    await settle();
    expect(confirmations).toStrictEqual([]);
    clock.increment(1);
    await settle();
    const [l1, , l3] = sent.map((s) => s.lease.fencingToken);
    expect(confirmations).toStrictEqual([[`t1@${l1}`, `t3@${l3}`]]);
    expect(lengthened).toStrictEqual([['task:t1', 'task:t3']]);
    // Lengthened to the deadline (plus the grace), past the claim TTL.
    const left = await locks.remainingTtl('task:t1');
    expect(left).toBeGreaterThan(DEADLINE_MS);
    expect(left).toBeLessThanOrEqual(DEADLINE_MS + LEASE_GRACE_MS);

    // Nothing more is written later.
    clock.increment(CONFIRM_WRITE_DELAY_MS * 5);
    await settle();
    expect(confirmations).toHaveLength(1);
    await outbox.stop();
    expect(confirmations).toHaveLength(1);
  });

  it('writes nothing when every attempt ended within the delay', async () => {
    const { clock, locks, slots, outbox, running, settle, confirmations, lengthened } = await setup();
    outbox.send(await running('e1', 'e2'));
    await settle();
    await locks.releaseMany(slots.free(['e1', 'e2']));
    clock.increment(CONFIRM_WRITE_DELAY_MS);
    await settle();
    await outbox.stop();
    expect(confirmations).toStrictEqual([]);
    expect(lengthened).toStrictEqual([]);
  });

  it('confirmations that arrive while one is written wait for the next write; a stop writes those waiting at once', async () => {
    const { clock, outbox, running, settle, confirmations } = await setup();
    const first = await running('a1');
    outbox.send(first);
    await settle();
    clock.increment(CONFIRM_WRITE_DELAY_MS);
    await settle();
    expect(confirmations).toHaveLength(1);
    const later = await running('a2');
    outbox.send(later);
    await settle();
    expect(confirmations).toHaveLength(1);
    // Stopping does not wait for the delay.
    await outbox.stop();
    expect(confirmations).toStrictEqual([[`a1@${first[0]!.lease.fencingToken}`], [`a2@${later[0]!.lease.fencingToken}`]]);
  });
});

describe('DispatchOutbox: an agent that takes several dispatches per message', () => {
  it('hands its dispatches to dispatchTasks together; those not confirmed are sent again on their own, then all are confirmed', async () => {
    const calls: string[][] = [];
    const alone: string[] = [];
    const { clock, outbox, running, settle, confirmations } = await setup({
      dispatchBatchSize: () => 10,
      dispatchTasks: async (_agent, items) => {
        calls.push(items.map((i) => i.task.taskId));
        // The second message (b3) did not reach the stream.
        return items.map((i) => (i.task.taskId === 'b3' ? new Error('no ack (injected)') : null));
      },
      dispatchTask: async (_agent, task) => {
        alone.push(task.taskId);
      },
    });
    const sent = await running('b1', 'b2', 'b3');
    outbox.send(sent);
    await settle();
    expect(calls).toStrictEqual([['b1', 'b2', 'b3']]);
    expect(alone).toStrictEqual([]);
    // The retry after its back-off (100 ms), on its own.
    clock.increment(100);
    await settle();
    expect(alone).toStrictEqual(['b3']);
    await outbox.stop();
    const tokens = sent.map((s) => s.lease.fencingToken);
    expect(confirmations.flat().sort()).toStrictEqual([`b1@${tokens[0]}`, `b2@${tokens[1]}`, `b3@${tokens[2]}`]);
  });
});

describe('DispatchOutbox: a bus whose dispatchTasks rejects (the port says it never does)', () => {
  it('sends every dispatch of the group again on its own, and confirms them', async () => {
    const alone: string[] = [];
    const { clock, outbox, running, settle, confirmations } = await setup({
      dispatchBatchSize: () => 10,
      dispatchTasks: async () => {
        throw new Error('broken bus (injected)');
      },
      dispatchTask: async (_agent, task) => {
        alone.push(task.taskId);
      },
    });
    const sent = await running('r1', 'r2');
    outbox.send(sent);
    await settle();
    clock.increment(100);
    await settle();
    expect(alone.sort()).toStrictEqual(['r1', 'r2']);
    await outbox.stop();
    expect(confirmations.flat().sort()).toStrictEqual(sent.map((s) => `${s.message.taskId}@${s.lease.fencingToken}`).sort());
  });
});
