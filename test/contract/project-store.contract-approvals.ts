import { expect, it } from 'vitest';
import { ApprovalError } from '../../src/errors.js';
import type { ApprovalRecord, NewApproval, ProjectStore } from '../../src/ports/project-store.js';
import { at, ingest, newApproval, type ProjectHarnessRef } from './project-store.fixtures.js';

/** Human approvals: requested with their event (Commit.ingestEvent), decided and extended here. */
export function approvalContract(harness: ProjectHarnessRef): void {
  const store = () => harness().projects;
  const client = (i: number): ProjectStore => (i % 2 === 0 ? harness().projects : harness().peer.projects);

  async function request(approval: NewApproval): Promise<ApprovalRecord> {
    await harness().commit.ingestEvent(ingest(`ev-${approval.approvalId}`, { projectId: approval.projectId, approval }));
    return { ...approval, status: 'pending', comment: null, decidedBy: null, decidedAt: null };
  }

  it('decides a pending approval once; a second decision or an unknown id is an ApprovalError', async () => {
    const pending = await request(newApproval('apr-1', { taskIds: ['t1', 't2'] }));
    const later = await request(newApproval('apr-2', { requestedAt: at(20) }));
    const elsewhere = await request(newApproval('apr-3', { projectId: 'prj-2' }));
    expect(await store().getApproval('apr-1')).toStrictEqual(pending);
    expect(await store().listApprovals('prj-1')).toStrictEqual([pending, later]);

    const decided = await store().decideApproval({ approvalId: 'apr-1', status: 'rejected', comment: 'redo scene 2', by: 'alice', at: at(100) });
    expect(decided).toStrictEqual({ ...pending, status: 'rejected', comment: 'redo scene 2', decidedBy: 'alice', decidedAt: at(100) });
    expect(await store().getApproval('apr-1')).toStrictEqual(decided);

    const again = store().decideApproval({ approvalId: 'apr-1', status: 'approved', comment: null, by: 'bob', at: at(101) });
    await expect(again).rejects.toBeInstanceOf(ApprovalError);
    expect(await store().getApproval('apr-1')).toStrictEqual(decided);
    await expect(
      store().decideApproval({ approvalId: 'nope', status: 'approved', comment: null, by: 'bob', at: at(101) }),
    ).rejects.toBeInstanceOf(ApprovalError);
    expect(await store().getApproval('nope')).toBeNull();

    expect(await store().listApprovals('prj-1', 'pending')).toStrictEqual([later]);
    expect(await store().listApprovals('prj-1', 'rejected')).toStrictEqual([decided]);
    expect(await store().listApprovals('prj-2')).toStrictEqual([elsewhere]);
    expect(await store().listApprovals('prj-9')).toStrictEqual([]);
  });

  it('lets exactly one of concurrent decisions win', async () => {
    await request(newApproval('apr-1'));
    const results = await Promise.allSettled(
      Array.from({ length: 12 }, (_, i) =>
        client(i).decideApproval({
          approvalId: 'apr-1',
          status: i % 3 === 0 ? 'approved' : 'rejected',
          comment: `from ${i}`,
          by: `user-${i}`,
          at: at(100 + i),
        }),
      ),
    );
    const won = results.filter((r): r is PromiseFulfilledResult<ApprovalRecord> => r.status === 'fulfilled');
    expect(won).toHaveLength(1);
    for (const r of results) if (r.status === 'rejected') expect(r.reason).toBeInstanceOf(ApprovalError);
    const winner = won[0]!.value;
    const i = Number(winner.decidedBy!.slice('user-'.length));
    expect(winner).toMatchObject({ comment: `from ${i}`, decidedAt: at(100 + i), status: i % 3 === 0 ? 'approved' : 'rejected' });
    expect(await store().getApproval('apr-1')).toStrictEqual(winner);
  });

  it('lists pending approvals whose expiry has come, and extends them', async () => {
    const a1 = await request(newApproval('a1', { expiresAt: at(100) }));
    const a2 = await request(newApproval('a2', { expiresAt: at(200) }));
    await request(newApproval('a3', { expiresAt: null }));
    await request(newApproval('a4', { expiresAt: at(50) }));
    const a5 = await request(newApproval('a5', { projectId: 'prj-2', expiresAt: at(100) }));
    await store().decideApproval({ approvalId: 'a4', status: 'approved', comment: null, by: 'alice', at: at(60) });

    expect(await store().listExpiredApprovals(at(99.999), 10)).toStrictEqual([]);
    expect(await store().listExpiredApprovals(at(100), 10)).toStrictEqual([a1, a5]); // at or before
    expect(await store().listExpiredApprovals(at(10_000), 10)).toStrictEqual([a1, a5, a2]);
    expect(await store().listExpiredApprovals(at(10_000), 1)).toStrictEqual([a1]);

    expect(await store().extendApproval('a1', at(99), at(500))).toBe(false); // not the expiry it has
    expect(await store().extendApproval('a1', a1.expiresAt!, at(500))).toBe(true);
    expect(await store().extendApproval('a1', a1.expiresAt!, at(600))).toBe(false); // the other sweep lost
    expect(await store().getApproval('a1')).toStrictEqual({ ...a1, expiresAt: at(500) });
    expect(await store().listExpiredApprovals(at(200), 10)).toStrictEqual([a5, a2]);
    expect(await store().listExpiredApprovals(at(500), 10)).toStrictEqual([a5, a2, { ...a1, expiresAt: at(500) }]);
    expect(await store().extendApproval('a4', at(100), at(500))).toBe(false); // decided
    expect(await store().extendApproval('nope', at(100), at(500))).toBe(false);

    const expired = await store().decideApproval({ approvalId: 'a2', status: 'expired', comment: 'timed out', by: 'timeout', at: at(300) });
    expect(expired.status).toBe('expired');
    expect(await store().listExpiredApprovals(at(10_000), 10)).toStrictEqual([a5, { ...a1, expiresAt: at(500) }]);
  });
}
