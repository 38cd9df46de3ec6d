import { describe, expect, it } from 'vitest';
import { initialTransition, transition } from 'xstate';
import type { BudgetLevel } from '../../src/domain/messages.js';
import type { ProjectState } from '../../src/domain/project.js';
import {
  APPROVAL_STEPS,
  BUDGET_EXHAUSTED,
  DEFAULT_PROJECT_POLICY,
  TIMEOUT_DECIDER,
  budgetLevelStateOf,
  budgetMayChange,
  decisionKey,
  projectMachine,
  projectStateOf,
  reactionsOf,
  resolveProjectSnapshot,
  type ApprovalEntry,
  type ApprovalStep,
  type BudgetFigures,
  type ProjectEvent,
  type ProjectPolicy,
  type ProjectReaction,
  type ProjectSnapshot,
  type TimeoutPolicy,
} from '../../src/machines/project-machine.js';

/** Every (state, event) pair of the project machine, through xstate's pure `transition()`. */

const LIMIT = 10;
/** Amounts at each level against LIMIT (warning threshold 0.9). */
const AT: Record<BudgetLevel, BudgetFigures> = {
  ok: { limit: LIMIT, spent: 1, reserved: 2 },
  warning: { limit: LIMIT, spent: 4, reserved: 5 },
  exhausted: { limit: LIMIT, spent: 4, reserved: 6 },
};
/** Over the limit (actual costs above their estimates). */
const OVER: BudgetFigures = { limit: LIMIT, spent: 7, reserved: 4 };

function entry(status: ApprovalStep, overrides: Partial<ApprovalEntry> = {}): ApprovalEntry {
  const decided = status !== 'requested' && status !== 'reminded';
  return {
    checkpoint: 'SCENE_WRITTEN',
    status,
    expiresAt: 1_000,
    reminders: status === 'reminded' ? 1 : 0,
    decidedBy: decided ? 'someone' : null,
    comment: null,
    decidedAt: decided ? 500 : null,
    ...overrides,
  };
}

function snapshotAt(
  options: {
    state?: ProjectState;
    reason?: string | null;
    level?: BudgetLevel;
    approvals?: Record<string, ApprovalEntry>;
    policy?: Partial<ProjectPolicy>;
  } = {},
): ProjectSnapshot {
  const state = options.state ?? 'active';
  return resolveProjectSnapshot({
    projectId: 'p',
    state,
    reason: options.reason ?? (state === 'paused' ? 'manual' : null),
    level: options.level ?? 'ok',
    budget: AT[options.level ?? 'ok'],
    policy: { ...DEFAULT_PROJECT_POLICY, ...options.policy },
    approvals: options.approvals ?? {},
  });
}

function step(snapshot: ProjectSnapshot, event: ProjectEvent): { next: ProjectSnapshot; reactions: ProjectReaction[]; allowed: boolean } {
  const allowed = snapshot.can(event);
  const [next, actions] = transition(projectMachine, snapshot, event);
  return { next, reactions: reactionsOf(actions), allowed };
}

const types = (reactions: readonly ProjectReaction[]) => reactions.map((r) => r.type);

describe('project machine: lifecycle', () => {
  const SAMPLE: Record<'PAUSE' | 'RESUME' | 'COMPLETE' | 'CANCEL' | 'FAIL' | 'RETRY', ProjectEvent> = {
    PAUSE: { type: 'PAUSE', reason: 'manual' },
    RESUME: { type: 'RESUME' },
    COMPLETE: { type: 'COMPLETE' },
    CANCEL: { type: 'CANCEL', reason: 'client left' },
    FAIL: { type: 'FAIL', reason: 'task t1 (GENERATE_KEYFRAME) failed 3 of 3 attempts: boom' },
    RETRY: { type: 'RETRY' },
  };
  const ALLOWED: Record<ProjectState, Partial<Record<keyof typeof SAMPLE, ProjectState>>> = {
    active: { PAUSE: 'paused', COMPLETE: 'completed', CANCEL: 'cancelled', FAIL: 'failed' },
    paused: { PAUSE: 'paused', RESUME: 'active', CANCEL: 'cancelled', FAIL: 'failed' },
    failed: { FAIL: 'failed', RETRY: 'active', PAUSE: 'paused', CANCEL: 'cancelled', COMPLETE: 'completed' },
    completed: {},
    cancelled: {},
  };
  const REACTIONS: Record<keyof typeof SAMPLE, ProjectReaction['type'][]> = {
    PAUSE: ['announceState'],
    RESUME: ['announceState', 'resumeWork'],
    COMPLETE: ['announceState'],
    CANCEL: ['announceState', 'cancelWork'],
    FAIL: ['announceState'],
    RETRY: ['announceState', 'resumeWork'],
  };

  for (const [state, allowed] of Object.entries(ALLOWED) as [ProjectState, (typeof ALLOWED)[ProjectState]][]) {
    for (const type of Object.keys(SAMPLE) as (keyof typeof SAMPLE)[]) {
      it(`${state} + ${type} → ${allowed[type] ?? 'refused'}`, () => {
        const before = snapshotAt({ state });
        const { next, reactions, allowed: can } = step(before, SAMPLE[type]);
        expect(can).toBe(allowed[type] !== undefined);
        if (allowed[type]) {
          expect(projectStateOf(next)).toBe(allowed[type]);
          expect(types(reactions)).toEqual(REACTIONS[type]);
        } else {
          // Refused: nothing changes and nothing is to be done.
          expect(next).toBe(before);
          expect(reactions).toEqual([]);
        }
      });
    }
  }

  it('a failure keeps its reason, naming the task, and a retry clears it', () => {
    let [s] = initialTransition(projectMachine, { projectId: 'p' });
    [s] = transition(projectMachine, s, { type: 'FAIL', reason: 'task t1 failed' });
    expect(projectStateOf(s)).toBe('failed');
    expect(s.context.reason).toBe('task t1 failed');
    [s] = transition(projectMachine, s, { type: 'RETRY' });
    expect(projectStateOf(s)).toBe('active');
    expect(s.context.reason).toBeNull();
  });

  it('keeps the pause reason and clears it on resume', () => {
    let [s] = initialTransition(projectMachine, { projectId: 'p' });
    [s] = transition(projectMachine, s, { type: 'PAUSE', reason: 'client review' });
    expect(s.context.reason).toBe('client review');
    [s] = transition(projectMachine, s, { type: 'RESUME' });
    expect(s.context.reason).toBeNull();
  });

  it('SYNC adopts a snapshot written by another process, with no reaction', () => {
    const [s] = initialTransition(projectMachine, { projectId: 'p' });
    const approvals = { a1: entry('requested') };
    const [next, actions] = transition(projectMachine, s, { type: 'SYNC', state: 'paused', reason: 'elsewhere', level: 'warning', approvals });
    expect(next.value).toEqual({ lifecycle: 'paused', budget: 'warning', approvals: 'open' });
    expect(next.context).toMatchObject({ reason: 'elsewhere', approvals });
    expect(reactionsOf(actions)).toEqual([]);
    const [back] = transition(projectMachine, next, { type: 'SYNC', state: 'paused', reason: 'again', level: 'warning', approvals: {} });
    expect(back.value).toEqual({ lifecycle: 'paused', budget: 'warning', approvals: 'none' });
    expect(back.context.reason).toBe('again');
  });
});

describe('project machine: budget level', () => {
  const LEVELS: BudgetLevel[] = ['ok', 'warning', 'exhausted'];
  const rank = (l: BudgetLevel) => LEVELS.indexOf(l);
  /** Amounts at each level, and over the limit (exhausted too). */
  const FIGURES = { ...AT, over: OVER } as const;
  const levelOfAmounts = (at: keyof typeof FIGURES): BudgetLevel => (at === 'over' ? 'exhausted' : at);
  const label = (at: keyof typeof FIGURES) => (at === 'over' ? 'over the limit' : `at ${at}`);

  for (const from of LEVELS) {
    for (const at of Object.keys(FIGURES) as (keyof typeof FIGURES)[]) {
      const to = LEVELS[Math.max(rank(from), rank(levelOfAmounts(at)))]!;
      it(`${from} + BUDGET ${label(at)} → ${to}: the level only rises, once per crossing${at === 'over' ? '; paused' : ''}`, () => {
        const before = snapshotAt({ level: from });
        const { next, reactions, allowed } = step(before, { type: 'BUDGET', figures: FIGURES[at] });
        expect(allowed).toBe(true);
        expect(budgetLevelStateOf(next)).toBe(to);
        expect(next.context.budget).toEqual(FIGURES[at]);
        const crossed = to !== from;
        // Amounts over the limit pause an active project for its budget; at the limit, not yet.
        const pauses = at === 'over';
        expect(types(reactions)).toEqual([...(pauses ? ['announceState'] : []), ...(crossed ? ['announceBudget'] : [])]);
        if (crossed) expect(reactions.at(-1)).toEqual({ type: 'announceBudget', level: to });
        expect(projectStateOf(next)).toBe(pauses ? 'paused' : 'active');
        if (pauses) expect(next.context.reason).toBe(BUDGET_EXHAUSTED);
        // The hot path's shortcut agrees with the machine.
        expect(budgetMayChange(before, FIGURES[at])).toBe(crossed || pauses);
        expect(budgetMayChange(snapshotAt({ level: from, state: 'paused' }), FIGURES[at])).toBe(crossed);
      });

      it(`${from} + SET_LIMIT ${label(at)} → ${levelOfAmounts(at)}: a new limit sets the level from the amounts, down as well as up`, () => {
        const { next, reactions, allowed } = step(snapshotAt({ level: from }), { type: 'SET_LIMIT', figures: FIGURES[at] });
        expect(allowed).toBe(true);
        expect(budgetLevelStateOf(next)).toBe(levelOfAmounts(at));
        const raised = rank(levelOfAmounts(at)) > rank(from);
        expect(reactions.filter((r) => r.type === 'announceBudget')).toEqual(raised ? [{ type: 'announceBudget', level: levelOfAmounts(at) }] : []);
        expect(projectStateOf(next)).toBe(at === 'over' ? 'paused' : 'active');
      });

      it(`${from}, paused for the budget, + SET_LIMIT ${label(at)}: ${at === 'over' ? 'stays paused' : 'resumes'}`, () => {
        const before = snapshotAt({ level: from, state: 'paused', reason: BUDGET_EXHAUSTED });
        const { next, reactions } = step(before, { type: 'SET_LIMIT', figures: FIGURES[at] });
        if (at === 'over') {
          expect(projectStateOf(next)).toBe('paused');
          expect(next.context.reason).toBe(BUDGET_EXHAUSTED);
          expect(types(reactions).filter((t) => t !== 'announceBudget')).toEqual([]);
        } else {
          expect(projectStateOf(next)).toBe('active');
          expect(next.context.reason).toBeNull();
          expect(types(reactions).slice(0, 2)).toEqual(['announceState', 'resumeWork']);
        }
      });
    }

    it(`${from} + RESERVATION_REFUSED while active → exhausted, paused for the budget`, () => {
      const { next, reactions, allowed } = step(snapshotAt({ level: from }), { type: 'RESERVATION_REFUSED' });
      expect(allowed).toBe(true);
      expect(budgetLevelStateOf(next)).toBe('exhausted');
      expect(projectStateOf(next)).toBe('paused');
      expect(next.context.reason).toBe(BUDGET_EXHAUSTED);
      expect(types(reactions)).toEqual(from === 'exhausted' ? ['announceState'] : ['announceState', 'announceBudget']);
    });

    it(`${from} + RESERVATION_REFUSED while completed → exhausted (nothing to pause)`, () => {
      const { next } = step(snapshotAt({ level: from, state: 'completed' }), { type: 'RESERVATION_REFUSED' });
      expect(budgetLevelStateOf(next)).toBe('exhausted');
      expect(projectStateOf(next)).toBe('completed');
    });

    for (const state of ['paused', 'cancelled'] as const) {
      it(`${from} + RESERVATION_REFUSED while ${state} → refused (the refusal is the state's, not the budget's)`, () => {
        const before = snapshotAt({ level: from, state });
        const { next, allowed } = step(before, { type: 'RESERVATION_REFUSED' });
        expect(allowed).toBe(false);
        expect(next).toBe(before);
      });
    }
  }

  it('a manual pause is not taken over by the budget: exhausted, still paused by hand, and a new limit does not resume it', () => {
    let s = snapshotAt({ state: 'paused', reason: 'client review' });
    s = step(s, { type: 'BUDGET', figures: OVER }).next;
    expect(s.value).toMatchObject({ lifecycle: 'paused', budget: 'exhausted' });
    expect(s.context.reason).toBe('client review');
    const { next, reactions } = step(s, { type: 'SET_LIMIT', figures: { ...OVER, limit: 100 } });
    expect(next.value).toMatchObject({ lifecycle: 'paused', budget: 'ok' });
    expect(reactions).toEqual([]);
  });

  it('without budget enforcement (BUDGET_CHECK_ENABLED=false) an exhausted budget is announced but pauses nothing', () => {
    const { next, reactions } = step(snapshotAt({ policy: { enforce: false } }), { type: 'BUDGET', figures: OVER });
    expect(next.value).toMatchObject({ lifecycle: 'active', budget: 'exhausted' });
    expect(types(reactions)).toEqual(['announceBudget']);
  });

  it('a project resumed by hand at its limit is paused again by the next refused reservation, or amounts over the limit', () => {
    const s = step(snapshotAt({ level: 'exhausted', state: 'paused', reason: BUDGET_EXHAUSTED }), { type: 'RESUME' }).next;
    expect(step(s, { type: 'BUDGET', figures: AT.exhausted }).next.value).toMatchObject({ lifecycle: 'active' });
    expect(step(s, { type: 'RESERVATION_REFUSED' }).next.value).toMatchObject({ lifecycle: 'paused', budget: 'exhausted' });
    expect(step(s, { type: 'BUDGET', figures: OVER }).next.value).toMatchObject({ lifecycle: 'paused', budget: 'exhausted' });
  });

  it('no limit is always ok; a zero limit is exhausted', () => {
    expect(budgetLevelStateOf(step(snapshotAt(), { type: 'BUDGET', figures: { limit: null, spent: 1e6, reserved: 0 } }).next)).toBe('ok');
    expect(budgetLevelStateOf(step(snapshotAt(), { type: 'BUDGET', figures: { limit: 0, spent: 0, reserved: 0 } }).next)).toBe('exhausted');
  });
});

describe('project machine: approval requests', () => {
  const DUE = 1_000;
  const events = (approvalId: string): Record<string, ProjectEvent> => ({
    REMIND: { type: 'REMIND', approvalId, at: 10 },
    'DECIDE approved': { type: 'DECIDE', approvalId, decision: 'approved', by: 'director', comment: 'lovely', at: 10 },
    'DECIDE rejected': { type: 'DECIDE', approvalId, decision: 'rejected', by: 'director', comment: 'darker', at: 10, shots: [2] },
    'EXPIRE before its expiry': { type: 'EXPIRE', approvalId, at: DUE - 1 },
    'EXPIRE at its expiry': { type: 'EXPIRE', approvalId, at: DUE },
  });
  const policies: TimeoutPolicy[] = ['remind', 'approve', 'reject'];

  /** What each open request becomes; decided or expired ones refuse every event. */
  function expected(name: string, policy: TimeoutPolicy): { status: ApprovalStep; reactions: ProjectReaction[] } | null {
    switch (name) {
      case 'REMIND':
        return { status: 'reminded', reactions: [{ type: 'announceReminder', approvalId: 'a1' }] };
      case 'DECIDE approved':
        return { status: 'approved', reactions: [{ type: 'applyApproval', approvalId: 'a1' }] };
      case 'DECIDE rejected':
        return { status: 'rejected', reactions: [{ type: 'applyRejection', approvalId: 'a1', shots: [2] }] };
      case 'EXPIRE at its expiry': {
        const expiry = { type: 'announceExpiry' as const, approvalId: 'a1', policy };
        if (policy === 'remind') return { status: 'reminded', reactions: [{ type: 'announceReminder', approvalId: 'a1' }, expiry] };
        if (policy === 'approve') return { status: 'approved', reactions: [{ type: 'applyApproval', approvalId: 'a1' }, expiry] };
        return { status: 'rejected', reactions: [{ type: 'applyRejection', approvalId: 'a1' }, expiry] };
      }
      default:
        return null;
    }
  }

  for (const policy of policies) {
    for (const status of APPROVAL_STEPS) {
      for (const [name, event] of Object.entries(events('a1'))) {
        const outcome = status === 'requested' || status === 'reminded' ? expected(name, policy) : null;
        it(`policy ${policy}: ${status} + ${name} → ${outcome?.status ?? 'refused'}`, () => {
          const before = snapshotAt({ policy: { timeoutPolicy: policy, timeoutMs: 60_000 }, approvals: { a1: entry(status, { expiresAt: DUE }) } });
          const { next, reactions, allowed } = step(before, event);
          expect(allowed).toBe(outcome !== null);
          if (!outcome) {
            expect(next).toBe(before);
            return;
          }
          const a1 = next.context.approvals.a1!;
          expect(a1.status).toBe(outcome.status);
          expect(reactions).toEqual(outcome.reactions);
          if (outcome.status === 'reminded') {
            // It waits another APPROVAL_TIMEOUT from the reminder.
            expect(a1.expiresAt).toBe((event as { at: number }).at + 60_000);
            expect(a1.reminders).toBe(before.context.approvals.a1!.reminders + 1);
            expect(next.value).toMatchObject({ approvals: 'open' });
          } else {
            expect(a1.decidedBy).toBe(event.type === 'EXPIRE' ? TIMEOUT_DECIDER : 'director');
            // The last open request decided: none open.
            expect(next.value).toMatchObject({ approvals: 'none' });
          }
        });
      }
    }
  }

  it('a request is taken once: a new one opens, the same one again is refused, an unknown one cannot be decided', () => {
    const request: ProjectEvent = { type: 'REQUEST_APPROVAL', approvalId: 'a1', checkpoint: 'SCENE_WRITTEN', expiresAt: DUE };
    const first = step(snapshotAt(), request);
    expect(first.allowed).toBe(true);
    expect(first.next.value).toMatchObject({ approvals: 'open' });
    expect(first.next.context.approvals.a1).toMatchObject({ status: 'requested', checkpoint: 'SCENE_WRITTEN', expiresAt: DUE });
    expect(first.reactions).toEqual([{ type: 'announceRequest', approvalId: 'a1' }]);
    expect(step(first.next, request).allowed).toBe(false);
    expect(step(first.next, { ...request, approvalId: 'a2' }).allowed).toBe(true);
    expect(step(first.next, events('nope')['DECIDE approved']!).allowed).toBe(false);
  });

  it('a request never expires without an expiry', () => {
    const s = snapshotAt({ approvals: { a1: entry('requested', { expiresAt: null }) } });
    expect(step(s, { type: 'EXPIRE', approvalId: 'a1', at: Number.MAX_SAFE_INTEGER }).allowed).toBe(false);
  });

  for (const state of ['completed', 'cancelled'] as const) {
    for (const policy of policies) {
      it(`a request of a ${state} project expires unanswered, whatever the policy (${policy})`, () => {
        const s = snapshotAt({ state, policy: { timeoutPolicy: policy }, approvals: { a1: entry('requested', { expiresAt: DUE }) } });
        const { next, reactions } = step(s, { type: 'EXPIRE', approvalId: 'a1', at: DUE });
        expect(next.context.approvals.a1).toMatchObject({ status: 'expired', decidedBy: TIMEOUT_DECIDER });
        expect(reactions).toEqual([{ type: 'announceExpiry', approvalId: 'a1', policy }]);
      });
    }
  }

  it('with two open requests, deciding one leaves the other open', () => {
    const s = snapshotAt({ approvals: { a1: entry('requested'), a2: entry('reminded') } });
    const { next } = step(s, events('a1')['DECIDE approved']!);
    expect(next.value).toMatchObject({ approvals: 'open' });
    expect(step(next, events('a2')['DECIDE rejected']!).next.value).toMatchObject({ approvals: 'none' });
  });
});

describe('project machine: persistence', () => {
  it('a snapshot and its persisted form give the same decisions after a round trip through resolveProjectSnapshot', () => {
    let s = snapshotAt();
    for (const event of [
      { type: 'REQUEST_APPROVAL', approvalId: 'a1', checkpoint: 'SCENE_WRITTEN', expiresAt: 1_000 },
      { type: 'BUDGET', figures: AT.warning },
      { type: 'EXPIRE', approvalId: 'a1', at: 1_000 },
      { type: 'PAUSE', reason: 'manual' },
    ] satisfies ProjectEvent[]) {
      s = step(s, event).next;
    }
    const persisted = JSON.parse(JSON.stringify(projectMachine.getPersistedSnapshot(s))) as { value: { lifecycle: ProjectState; budget: BudgetLevel }; context: ProjectSnapshot['context'] };
    const restored = resolveProjectSnapshot({
      projectId: 'p',
      state: persisted.value.lifecycle,
      reason: persisted.context.reason,
      level: persisted.value.budget,
      budget: persisted.context.budget,
      policy: persisted.context.policy,
      approvals: persisted.context.approvals,
    });
    expect(decisionKey(restored)).toBe(decisionKey(s));
    const decide: ProjectEvent = { type: 'DECIDE', approvalId: 'a1', decision: 'approved', by: 'x', comment: null, at: 2_000 };
    expect(decisionKey(step(restored, decide).next)).toBe(decisionKey(step(s, decide).next));
  });

  it('the figures are not decisions: a BUDGET that crosses nothing leaves the decision key as it is', () => {
    const s = snapshotAt({ level: 'warning' });
    expect(decisionKey(step(s, { type: 'BUDGET', figures: AT.ok }).next)).toBe(decisionKey(s));
  });
});
