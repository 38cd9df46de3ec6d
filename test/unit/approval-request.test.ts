import { describe, expect, it } from 'vitest';
import { requestBody, SUMMARY_MAX_CHARS, summarize } from '../../src/approvals/request.js';

/** Issue 16: an approval request stays small whatever its checkpoint's size — counts, a bounded summary, never every id. */
describe('the approval request body', () => {
  it('a shot plan of 100 000 shots and 200 002 tasks: a body under 1 KiB, with the counts', () => {
    const shots = Array.from({ length: 100_000 }, (_, i) => ({ index: i, prompt: `shot ${i + 1}` }));
    const taskIds = Array.from({ length: 200_002 }, (_, i) => `tsk_${i}`);
    const body = requestBody({ approvalId: 'apr_1', projectId: 'prj_1', checkpoint: 'SHOT_PLANNED', summary: { shots }, taskIds, expiresAt: null }, null);
    expect(JSON.stringify(body).length).toBeLessThan(1024);
    expect(body).toMatchObject({ counts: { tasks: 200_002 }, summary: { shots: { count: 100_000, first: shots.slice(0, 10) } } });
    expect(body).not.toHaveProperty('taskIds');
    expect(body.details).toContain('orchestrator status prj_1');
  });

  it('a preview says how many shots a rejection may name', () => {
    const body = requestBody({ approvalId: 'apr_1', projectId: 'prj_1', checkpoint: 'PREVIEW_VIDEO_READY', summary: { preview: 'p.mp4' }, taskIds: ['t1'], expiresAt: null }, 3, true);
    expect(body).toMatchObject({ summary: { preview: 'p.mp4' }, counts: { tasks: 1, shots: 3 }, reminder: true });
  });

  it('long strings are cut with their length; wide and deep payloads stay within the summary bound', () => {
    expect(summarize({ script: 'x'.repeat(5_000) }).script).toBe(`${'x'.repeat(2_000)}… (5000 characters)`);
    const wide = Object.fromEntries(Array.from({ length: 500 }, (_, i) => [`k${i}`, { text: 'y'.repeat(5_000), list: Array.from({ length: 100 }, () => 'z'.repeat(3_000)) }]));
    const summary = summarize(wide);
    expect(JSON.stringify(summary).length).toBeLessThanOrEqual(SUMMARY_MAX_CHARS);
    expect(summary['…']).toBe('480 more keys');
    expect(summarize({ a: { b: { c: { d: { e: 1 } } } } })).toEqual({ a: { b: { c: { d: { keys: 1 } } } } });
  });
});
