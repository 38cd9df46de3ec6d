import { and, assign, not, or, setup, stateIn, stopChild, type AnyActorRef, type SnapshotFrom } from 'xstate';
import type { BudgetLevel } from '../domain/messages.js';
import { BUDGET_EXHAUSTED, type ApprovalStatus, type ProjectState } from '../domain/project.js';

/**
 * The project machine: pure, no I/O. Three parallel regions:
 *
 * - `lifecycle`: active ⇄ paused, active or paused → failed (a task failed for good) →
 *   active again on a retry, then completed or cancelled;
 * - `budget`: the highest level reached since the limit was last set (ok → warning →
 *   exhausted), from the amounts the SQL wrote (`BUDGET`) and the reservations it refused
 *   (`RESERVATION_REFUSED`). With the budget enforced, an active project is paused
 *   (`budget_exhausted`) when its budget is exhausted for good: a reservation was refused,
 *   or the amounts went over the limit (actual costs above the estimates). Amounts that
 *   reach the limit exactly are exhausted too, but pause nothing yet (work that costs
 *   nothing may still run; the next reservation that does not fit pauses). A new limit
 *   the amounts fit in resumes a project paused for its budget (`SET_LIMIT`);
 * - `approvals`: whether requests are open. The lifecycle of each checkpoint's request
 *   (requested, reminded, then approved, rejected or expired) is in the context, one entry
 *   per approval id; the timeout policy is EXPIRE's guarded transitions.
 *
 * The project actor persists each step (the snapshot, with a compare-and-set on the
 * project row's version) before anything else happens. What must happen after a step is
 * named by the actions it returns (`reactionsOf`): placeholders here, performed by the
 * orchestrator once the step is durable. The amounts themselves change only in SQL, under
 * the project row's lock; the machine never decides a reservation.
 */

export const PROJECT_MACHINE_VERSION = '2';

export { BUDGET_EXHAUSTED };
/** Who decides an approval request on its expiry (approve and reject policies). */
export const TIMEOUT_DECIDER = 'orchestrator:timeout';
export const EXPIRY_COMMENT = 'approval request expired';

export type TimeoutPolicy = 'reject' | 'approve' | 'remind';

/** The configuration the machine decides with (it is not state: the actor sets it on every restore). */
export interface ProjectPolicy {
  /** BUDGET_WARNING_THRESHOLD: ratio of the limit that raises the level to warning. */
  warningThreshold: number;
  /** BUDGET_CHECK_ENABLED: an exhausted budget pauses the project. */
  enforce: boolean;
  /** APPROVAL_TIMEOUT: how long a request (or a reminder) waits. */
  timeoutMs: number;
  /** APPROVAL_TIMEOUT_POLICY. */
  timeoutPolicy: TimeoutPolicy;
}

export const DEFAULT_PROJECT_POLICY: ProjectPolicy = { warningThreshold: 0.9, enforce: true, timeoutMs: 3_600_000, timeoutPolicy: 'remind' };

/** The amounts as the SQL wrote them. */
export interface BudgetFigures {
  limit: number | null;
  spent: number;
  reserved: number;
}

/** The lifecycle of one approval request. */
export type ApprovalStep = 'requested' | 'reminded' | 'approved' | 'rejected' | 'expired';
export const APPROVAL_STEPS: readonly ApprovalStep[] = ['requested', 'reminded', 'approved', 'rejected', 'expired'];

export interface ApprovalEntry {
  checkpoint: string;
  status: ApprovalStep;
  /** Epoch ms; null: never expires. */
  expiresAt: number | null;
  reminders: number;
  decidedBy: string | null;
  comment: string | null;
  decidedAt: number | null;
}

export interface ProjectContext {
  projectId: string;
  /** Why the project is paused, failed (naming the task) or was cancelled; null otherwise. */
  reason: string | null;
  /** The last error a supervised task actor reported (it does not take the project down). */
  lastChildError: string | null;
  /** The amounts as last seen (informative: the guards read the events' figures). */
  budget: BudgetFigures;
  policy: ProjectPolicy;
  /** Every approval request of the project, by approval id. */
  approvals: Record<string, ApprovalEntry>;
}

export type ProjectEvent =
  | { type: 'PAUSE'; reason: string }
  | { type: 'RESUME' }
  | { type: 'COMPLETE' }
  | { type: 'CANCEL'; reason: string }
  /** A task failed for good (its dependents cancelled): the project cannot finish as planned. */
  | { type: 'FAIL'; reason: string }
  /** A user retried the failed project (its failed tasks and their dependents were planned again). */
  | { type: 'RETRY' }
  /** The amounts changed (a reservation, a charge, a release). */
  | { type: 'BUDGET'; figures: BudgetFigures }
  /** A new limit (null: none), with the amounts as they are. */
  | { type: 'SET_LIMIT'; figures: BudgetFigures }
  /** The SQL refused a reservation: it does not fit in the limit. */
  | { type: 'RESERVATION_REFUSED' }
  | { type: 'REQUEST_APPROVAL'; approvalId: string; checkpoint: string; expiresAt: number | null }
  /** A reminder of an open request: it waits another APPROVAL_TIMEOUT and is announced again. */
  | { type: 'REMIND'; approvalId: string; at: number }
  | { type: 'DECIDE'; approvalId: string; decision: 'approved' | 'rejected'; by: string; comment: string | null; at: number; shots?: number[] }
  /** The request's expiry passed: the timeout policy applies (the request expires unanswered once the project is over). */
  | { type: 'EXPIRE'; approvalId: string; at: number };

/** The events about one approval request. */
export type ApprovalEvent = Extract<ProjectEvent, { approvalId: string }>;

/**
 * Supervision events, sent by the project actor's wrapper to its live actor only (never
 * persisted): SYNC adopts a snapshot another orchestrator process wrote; RELEASE_TASK
 * stops a task actor the project supervises (an evicted, non-final task).
 */
export type ProjectInternalEvent =
  | { type: 'SYNC'; state: ProjectState; reason: string | null; level: BudgetLevel; approvals: Record<string, ApprovalEntry> }
  | { type: 'RELEASE_TASK'; ref: AnyActorRef };

/** What must happen once a step is durable: the actions the step returned. */
export type ProjectReaction =
  /** Publish the project's state (`lap.projects.<id>`). */
  | { type: 'announceState' }
  /** The project is active again: its waiting work goes on. */
  | { type: 'resumeWork' }
  /** The project was cancelled: its tasks are cancelled. */
  | { type: 'cancelWork' }
  /** The budget level rose (once per crossing, across processes): publish the budget status. */
  | { type: 'announceBudget'; level: BudgetLevel }
  | { type: 'announceRequest'; approvalId: string }
  | { type: 'announceReminder'; approvalId: string }
  | { type: 'announceExpiry'; approvalId: string; policy: TimeoutPolicy }
  /** The approved request's tasks go on (and a final checkpoint completes the project). */
  | { type: 'applyApproval'; approvalId: string }
  /** The rejected request's tasks are cancelled and its revision is planned. */
  | { type: 'applyRejection'; approvalId: string; shots?: number[] };

export const REACTION_TYPES: readonly ProjectReaction['type'][] = [
  'announceState',
  'resumeWork',
  'cancelWork',
  'announceBudget',
  'announceRequest',
  'announceReminder',
  'announceExpiry',
  'applyApproval',
  'applyRejection',
];

/** The reactions among the actions a pure `transition()` returned, in order. */
export function reactionsOf(actions: readonly { type: string; params?: unknown }[]): ProjectReaction[] {
  const known = new Set<string>(REACTION_TYPES);
  return actions
    .filter((a) => known.has(a.type))
    .map((a) => ({ ...((a.params as object | undefined) ?? {}), type: a.type }) as ProjectReaction);
}

const LEVEL_RANK: Record<BudgetLevel, number> = { ok: 0, warning: 1, exhausted: 2 };

/** The level of amounts against their limit: the ratio (spent + reserved) / limit; a zero limit counts as 1. */
export function budgetLevelOf(figures: BudgetFigures, warningThreshold: number): BudgetLevel {
  if (figures.limit === null) return 'ok';
  const ratio = figures.limit === 0 ? 1 : (figures.spent + figures.reserved) / figures.limit;
  return ratio >= 1 ? 'exhausted' : ratio >= warningThreshold ? 'warning' : 'ok';
}

/** The `warning_level` column a level is written as (a percentage of the limit; 0: none). */
export function warningLevelOf(level: BudgetLevel, warningThreshold: number): number {
  return level === 'exhausted' ? 100 : level === 'warning' ? Math.round(warningThreshold * 100) : 0;
}

/** A request still waiting for its decision. */
export function isOpen(entry: ApprovalEntry | undefined): boolean {
  return entry?.status === 'requested' || entry?.status === 'reminded';
}

/** How an approval step is stored in the approvals table. */
export function storedStatus(step: ApprovalStep): ApprovalStatus {
  return step === 'requested' || step === 'reminded' ? 'pending' : step;
}

type Ev = ProjectEvent | ProjectInternalEvent;

const figuresOf = (event: Ev): BudgetFigures | null => (event.type === 'BUDGET' || event.type === 'SET_LIMIT' ? event.figures : null);

const sync = (state: ProjectState) => ({
  guard: { type: 'syncTo' as const, params: { state } },
  target: state,
  actions: 'adopt' as const,
});
const syncLevel = (level: BudgetLevel) => ({
  guard: { type: 'syncLevel' as const, params: { level } },
  target: level,
  actions: 'adopt' as const,
});
const level = (to: BudgetLevel, announce: boolean) => ({
  guard: { type: 'figuresAt' as const, params: { level: to } },
  target: to,
  actions: announce ? (['recordFigures', { type: 'announceBudget' as const, params: { level: to } }] as const) : (['recordFigures'] as const),
});

/** The project takes work (a refused reservation is then the budget's). */
const takesWork = or([stateIn('#project.lifecycle.active'), stateIn('#project.lifecycle.completed')]);

const pauseForBudget = {
  target: 'paused' as const,
  actions: [{ type: 'setReason' as const, params: { reason: BUDGET_EXHAUSTED } }, 'announceState'] as const,
};

/** The approval the event names. */
const entryOf = (context: ProjectContext, event: Ev): ApprovalEntry | undefined =>
  'approvalId' in event ? context.approvals[event.approvalId] : undefined;

const setEntry = (context: ProjectContext, approvalId: string, patch: Partial<ApprovalEntry>) => ({
  ...context.approvals,
  [approvalId]: { ...context.approvals[approvalId]!, ...patch },
});

const params = ({ event }: { event: Ev }) => ({ approvalId: (event as ApprovalEvent).approvalId });

export const projectMachine = setup({
  types: {
    context: {} as ProjectContext,
    events: {} as Ev,
    input: {} as { projectId: string; policy?: ProjectPolicy; budget?: BudgetFigures },
  },
  guards: {
    syncTo: ({ event }, p: { state: ProjectState }) => event.type === 'SYNC' && event.state === p.state,
    syncLevel: ({ event }, p: { level: BudgetLevel }) => event.type === 'SYNC' && event.level === p.level,
    syncOpen: ({ event }) => event.type === 'SYNC' && Object.values(event.approvals).some(isOpen),
    syncNoneOpen: ({ event }) => event.type === 'SYNC' && !Object.values(event.approvals).some(isOpen),
    enforcing: ({ context }) => context.policy.enforce,
    /** The event's amounts are at this level. */
    figuresAt: ({ context, event }, p: { level: BudgetLevel }) => {
      const figures = figuresOf(event);
      return figures !== null && budgetLevelOf(figures, context.policy.warningThreshold) === p.level;
    },
    /** The event's amounts are over their limit (not merely at it). */
    figuresOver: ({ event }) => {
      const figures = figuresOf(event);
      return figures !== null && figures.limit !== null && figures.spent + figures.reserved > figures.limit;
    },
    pausedForBudget: ({ context }) => context.reason === BUDGET_EXHAUSTED,
    isNewApproval: ({ context, event }) => event.type === 'REQUEST_APPROVAL' && context.approvals[event.approvalId] === undefined,
    isOpen: ({ context, event }) => isOpen(entryOf(context, event)),
    /** Open, and its expiry is at or before the event. */
    isDue: ({ context, event }) => {
      const entry = entryOf(context, event);
      return event.type === 'EXPIRE' && isOpen(entry) && entry!.expiresAt !== null && entry!.expiresAt <= event.at;
    },
    timeoutPolicy: ({ context }, p: { policy: TimeoutPolicy }) => context.policy.timeoutPolicy === p.policy,
    decisionIs: ({ event }, p: { decision: 'approved' | 'rejected' }) => event.type === 'DECIDE' && event.decision === p.decision,
    noneOpen: ({ context }) => !Object.values(context.approvals).some(isOpen),
  },
  actions: {
    // Reactions: placeholders, performed by the orchestrator after the step's commit.
    announceState: () => undefined,
    resumeWork: () => undefined,
    cancelWork: () => undefined,
    announceBudget: (_, _p: { level: BudgetLevel }) => undefined,
    announceRequest: (_, _p: { approvalId: string }) => undefined,
    announceReminder: (_, _p: { approvalId: string }) => undefined,
    announceExpiry: (_, _p: { approvalId: string; policy: TimeoutPolicy }) => undefined,
    applyApproval: (_, _p: { approvalId: string }) => undefined,
    applyRejection: (_, _p: { approvalId: string; shots?: number[] }) => undefined,

    keepReason: assign({
      reason: ({ event }) => (event.type === 'PAUSE' || event.type === 'CANCEL' || event.type === 'FAIL' ? event.reason : null),
    }),
    setReason: assign((_, p: { reason: string | null }) => ({ reason: p.reason })),
    adopt: assign(({ context, event }) =>
      event.type === 'SYNC' ? { reason: event.reason, approvals: event.approvals } : { reason: context.reason, approvals: context.approvals },
    ),
    releaseTask: stopChild(({ event }) => (event.type === 'RELEASE_TASK' ? event.ref : '')),
    recordFigures: assign({ budget: ({ context, event }) => figuresOf(event) ?? context.budget }),
    recordRequest: assign({
      approvals: ({ context, event }) =>
        event.type === 'REQUEST_APPROVAL'
          ? {
              ...context.approvals,
              [event.approvalId]: {
                checkpoint: event.checkpoint,
                status: 'requested',
                expiresAt: event.expiresAt,
                reminders: 0,
                decidedBy: null,
                comment: null,
                decidedAt: null,
              },
            }
          : context.approvals,
    }),
    /** The request waits another APPROVAL_TIMEOUT from the event. */
    remind: assign({
      approvals: ({ context, event }) => {
        if (event.type !== 'REMIND' && event.type !== 'EXPIRE') return context.approvals;
        const entry = context.approvals[event.approvalId]!;
        return setEntry(context, event.approvalId, { status: 'reminded', expiresAt: event.at + context.policy.timeoutMs, reminders: entry.reminders + 1 });
      },
    }),
    recordDecision: assign({
      approvals: ({ context, event }) =>
        event.type === 'DECIDE'
          ? setEntry(context, event.approvalId, { status: event.decision, decidedBy: event.by, comment: event.comment, decidedAt: event.at })
          : context.approvals,
    }),
    /** The expiry decides: approved, rejected (policies) or expired (the project is over). */
    expireAs: assign({
      approvals: ({ context, event }, p: { status: 'approved' | 'rejected' | 'expired' }) =>
        event.type === 'EXPIRE'
          ? setEntry(context, event.approvalId, { status: p.status, decidedBy: TIMEOUT_DECIDER, comment: EXPIRY_COMMENT, decidedAt: event.at })
          : context.approvals,
    }),
    recordChildError: assign({
      lastChildError: ({ event }) => String((event as unknown as { error?: unknown }).error ?? 'unknown error'),
    }),
  },
}).createMachine({
  id: 'project',
  version: PROJECT_MACHINE_VERSION,
  type: 'parallel',
  context: ({ input }) => ({
    projectId: input.projectId,
    reason: null,
    lastChildError: null,
    budget: input.budget ?? { limit: null, spent: 0, reserved: 0 },
    policy: input.policy ?? DEFAULT_PROJECT_POLICY,
    approvals: {},
  }),
  on: {
    RELEASE_TASK: { actions: 'releaseTask' },
    // A region whose state SYNC leaves as it is still adopts the reason and the approvals.
    SYNC: { actions: 'adopt' },
    // A task actor's error is recorded, never allowed to take the project actor down.
    'xstate.error.actor.*': { actions: 'recordChildError' },
  },
  states: {
    lifecycle: {
      initial: 'active',
      states: {
        active: {
          on: {
            SYNC: [sync('paused'), sync('failed'), sync('completed'), sync('cancelled')],
            PAUSE: { target: 'paused', actions: ['keepReason', 'announceState'] },
            COMPLETE: { target: 'completed', actions: ['keepReason', 'announceState'] },
            CANCEL: { target: 'cancelled', actions: ['keepReason', 'announceState', 'cancelWork'] },
            FAIL: { target: 'failed', actions: ['keepReason', 'announceState'] },
            // An exhausted budget pauses the project (with the budget enforced): amounts over
            // the limit, or a reservation that did not fit.
            BUDGET: { guard: and(['enforcing', 'figuresOver']), description: 'enforcing & figuresOver', ...pauseForBudget },
            SET_LIMIT: { guard: and(['enforcing', 'figuresOver']), description: 'enforcing & figuresOver', ...pauseForBudget },
            RESERVATION_REFUSED: { guard: 'enforcing', ...pauseForBudget },
          },
        },
        paused: {
          on: {
            SYNC: [sync('active'), sync('failed'), sync('completed'), sync('cancelled')],
            // Pausing again only updates the reason.
            PAUSE: { target: 'paused', actions: ['keepReason', 'announceState'] },
            RESUME: { target: 'active', actions: ['keepReason', 'announceState', 'resumeWork'] },
            CANCEL: { target: 'cancelled', actions: ['keepReason', 'announceState', 'cancelWork'] },
            // A failure outweighs a pause: what the user must act on is the failed task.
            FAIL: { target: 'failed', actions: ['keepReason', 'announceState'] },
            // A limit the amounts fit in resumes a project paused for its budget.
            SET_LIMIT: {
              guard: and(['pausedForBudget', not('figuresOver')]),
              description: 'pausedForBudget & !figuresOver',
              target: 'active',
              actions: [{ type: 'setReason', params: { reason: null } }, 'announceState', 'resumeWork'],
            },
          },
        },
        // A task failed for good: nothing new starts (as when paused) until a retry, which
        // planned the failed tasks and their cancelled dependents again, makes it active.
        failed: {
          on: {
            SYNC: [sync('active'), sync('paused'), sync('completed'), sync('cancelled')],
            // Another task failed for good: the reason names the latest.
            FAIL: { target: 'failed', actions: ['keepReason', 'announceState'] },
            RETRY: { target: 'active', actions: [{ type: 'setReason', params: { reason: null } }, 'announceState', 'resumeWork'] },
            PAUSE: { target: 'paused', actions: ['keepReason', 'announceState'] },
            CANCEL: { target: 'cancelled', actions: ['keepReason', 'announceState', 'cancelWork'] },
            // The events that end a project still end it (an agent may finish the work another way).
            COMPLETE: { target: 'completed', actions: ['keepReason', 'announceState'] },
          },
        },
        completed: { type: 'final' },
        cancelled: { type: 'final' },
      },
    },
    budget: {
      initial: 'ok',
      states: {
        ok: {
          on: {
            SYNC: [syncLevel('warning'), syncLevel('exhausted')],
            BUDGET: [level('exhausted', true), level('warning', true), { actions: 'recordFigures' }],
            SET_LIMIT: [level('exhausted', true), level('warning', true), { actions: 'recordFigures' }],
            RESERVATION_REFUSED: {
              guard: takesWork,
              description: 'in active | in completed',
              target: 'exhausted',
              actions: { type: 'announceBudget', params: { level: 'exhausted' } },
            },
          },
        },
        warning: {
          on: {
            SYNC: [syncLevel('ok'), syncLevel('exhausted')],
            BUDGET: [level('exhausted', true), { actions: 'recordFigures' }],
            // A new limit sets the level from the amounts again, down as well as up.
            SET_LIMIT: [level('exhausted', true), level('ok', false), { actions: 'recordFigures' }],
            RESERVATION_REFUSED: {
              guard: takesWork,
              description: 'in active | in completed',
              target: 'exhausted',
              actions: { type: 'announceBudget', params: { level: 'exhausted' } },
            },
          },
        },
        exhausted: {
          on: {
            SYNC: [syncLevel('ok'), syncLevel('warning')],
            BUDGET: { actions: 'recordFigures' },
            SET_LIMIT: [level('warning', false), level('ok', false), { actions: 'recordFigures' }],
          },
        },
      },
    },
    approvals: {
      initial: 'none',
      states: {
        none: {
          on: {
            SYNC: { guard: 'syncOpen', target: 'open', actions: 'adopt' },
            REQUEST_APPROVAL: { guard: 'isNewApproval', target: 'open', actions: ['recordRequest', { type: 'announceRequest', params }] },
          },
        },
        open: {
          // The last open request decided or expired.
          always: { guard: 'noneOpen', target: 'none' },
          on: {
            SYNC: { guard: 'syncNoneOpen', target: 'none', actions: 'adopt' },
            REQUEST_APPROVAL: { guard: 'isNewApproval', actions: ['recordRequest', { type: 'announceRequest', params }] },
            REMIND: { guard: 'isOpen', actions: ['remind', { type: 'announceReminder', params }] },
            DECIDE: [
              {
                guard: and(['isOpen', { type: 'decisionIs', params: { decision: 'approved' as const } }]),
                description: 'isOpen & decisionIs approved',
                actions: ['recordDecision', { type: 'applyApproval', params }],
              },
              {
                guard: 'isOpen',
                actions: [
                  'recordDecision',
                  { type: 'applyRejection', params: ({ event }) => ({ ...params({ event }), ...(event.type === 'DECIDE' && event.shots ? { shots: event.shots } : {}) }) },
                ],
              },
            ],
            // The timeout policy. A request of a project that is over expires unanswered.
            EXPIRE: [
              {
                guard: and(['isDue', or([stateIn('#project.lifecycle.completed'), stateIn('#project.lifecycle.cancelled')])]),
                description: 'isDue & (in completed | in cancelled)',
                actions: [{ type: 'expireAs', params: { status: 'expired' } }, { type: 'announceExpiry', params: expiryParams }],
              },
              {
                guard: and(['isDue', { type: 'timeoutPolicy', params: { policy: 'remind' as const } }]),
                description: 'isDue & timeoutPolicy remind',
                actions: ['remind', { type: 'announceReminder', params }, { type: 'announceExpiry', params: expiryParams }],
              },
              {
                guard: and(['isDue', { type: 'timeoutPolicy', params: { policy: 'approve' as const } }]),
                description: 'isDue & timeoutPolicy approve',
                actions: [{ type: 'expireAs', params: { status: 'approved' } }, { type: 'applyApproval', params }, { type: 'announceExpiry', params: expiryParams }],
              },
              {
                guard: and(['isDue', { type: 'timeoutPolicy', params: { policy: 'reject' as const } }]),
                description: 'isDue & timeoutPolicy reject',
                actions: [{ type: 'expireAs', params: { status: 'rejected' } }, { type: 'applyRejection', params }, { type: 'announceExpiry', params: expiryParams }],
              },
            ],
          },
        },
      },
    },
  },
});

function expiryParams({ context, event }: { context: ProjectContext; event: Ev }) {
  return { approvalId: (event as ApprovalEvent).approvalId, policy: context.policy.timeoutPolicy };
}

export type ProjectMachine = typeof projectMachine;
export type ProjectSnapshot = SnapshotFrom<ProjectMachine>;

interface RegionValues {
  lifecycle: ProjectState;
  budget: BudgetLevel;
  approvals: 'none' | 'open';
}

function regions(snapshot: ProjectSnapshot): RegionValues {
  return snapshot.value as unknown as RegionValues;
}

export function projectStateOf(snapshot: ProjectSnapshot): ProjectState {
  return regions(snapshot).lifecycle;
}

export function budgetLevelStateOf(snapshot: ProjectSnapshot): BudgetLevel {
  return regions(snapshot).budget;
}

/** Whether the project's lifecycle is over (completed or cancelled). */
export function isFinalProject(snapshot: ProjectSnapshot): boolean {
  const state = projectStateOf(snapshot);
  return state === 'completed' || state === 'cancelled';
}

/**
 * False when a BUDGET event with these figures would change nothing but the recorded
 * figures: the level only rises on BUDGET, and only amounts over the limit pause an active
 * project. Lets the caller skip the step (and its transition) on the hot path; a unit test
 * checks it against the machine's own `transition()`.
 */
export function budgetMayChange(snapshot: ProjectSnapshot, figures: BudgetFigures): boolean {
  const level = budgetLevelOf(figures, snapshot.context.policy.warningThreshold);
  if (LEVEL_RANK[level] > LEVEL_RANK[budgetLevelStateOf(snapshot)]) return true;
  const over = figures.limit !== null && figures.spent + figures.reserved > figures.limit;
  return over && snapshot.context.policy.enforce && projectStateOf(snapshot) === 'active';
}

/** What a snapshot is resolved from when none was stored (an old row) or it cannot be used. */
export interface ProjectSnapshotSource {
  projectId: string;
  state: ProjectState;
  reason: string | null;
  level: BudgetLevel;
  budget: BudgetFigures;
  policy: ProjectPolicy;
  approvals: Record<string, ApprovalEntry>;
}

/** A snapshot from its parts (public `resolveState`: no xstate internals). */
export function resolveProjectSnapshot(source: ProjectSnapshotSource): ProjectSnapshot {
  return projectMachine.resolveState({
    value: {
      lifecycle: source.state,
      budget: source.level,
      approvals: Object.values(source.approvals).some(isOpen) ? 'open' : 'none',
    },
    context: {
      projectId: source.projectId,
      reason: source.reason,
      lastChildError: null,
      budget: source.budget,
      policy: source.policy,
      approvals: source.approvals,
    },
  });
}

/** The snapshot's parts that are persisted decisions (the figures are the SQL's, the policy the config's). */
export function decisionKey(snapshot: ProjectSnapshot): string {
  const { reason, approvals } = snapshot.context;
  return JSON.stringify([snapshot.value, reason, approvals]);
}
