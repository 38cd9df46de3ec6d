import type { BudgetStatus, TaskStatusMessage } from '../domain/messages.js';
import type { TaskStatus } from '../domain/task.js';
import type { TaskRecord } from '../ports/task-store.js';

const STATES: readonly TaskStatus[] = ['WAITING_APPROVAL', 'PENDING', 'READY', 'RUNNING', 'COMPLETED', 'FAILED', 'CANCELLED'];

/**
 * The demo's live view: tasks per state, the current checkpoint and a budget bar,
 * redrawn in place on a terminal, or as plain lines (one per notable change) elsewhere.
 */
export class ProgressView {
  private readonly status = new Map<string, TaskStatus>();
  private checkpoint = '—';
  private budget: BudgetStatus | null = null;
  private drawn = 0;
  private lastLine = '';

  constructor(
    private readonly write: (text: string) => void,
    private readonly tty: boolean,
  ) {}

  onStatus(m: TaskStatusMessage): void {
    this.status.set(m.taskId, m.to);
    if (!this.tty && (m.to === 'COMPLETED' || m.to === 'FAILED' || m.to === 'CANCELLED' || m.to === 'RUNNING')) {
      this.line(`${m.to.padEnd(9)} ${m.taskType}${m.attempt > 1 ? ` (attempt ${m.attempt})` : ''}`);
    }
    this.render();
  }

  onCheckpoint(text: string): void {
    this.checkpoint = text;
    if (!this.tty) this.line(`CHECKPOINT ${text}`);
    this.render();
  }

  onBudget(b: BudgetStatus): void {
    this.budget = b;
    this.render();
  }

  note(text: string): void {
    if (this.tty) this.clear();
    this.write(`${text}\n`);
    this.drawn = 0;
    this.render();
  }

  /** Leaves the last frame on screen. */
  finish(): void {
    this.drawn = 0;
  }

  private line(text: string): void {
    if (text === this.lastLine) return;
    this.lastLine = text;
    this.write(`${text}\n`);
  }

  private render(): void {
    if (!this.tty) return;
    const counts = new Map<TaskStatus, number>();
    for (const s of this.status.values()) counts.set(s, (counts.get(s) ?? 0) + 1);
    const frame = [
      `tasks      ${STATES.map((s) => `${s.toLowerCase()} ${counts.get(s) ?? 0}`).join('  ')}`,
      `checkpoint ${this.checkpoint}`,
      `budget     ${this.budget ? budgetBar(this.budget) : '—'}`,
    ];
    this.clear();
    this.write(`${frame.join('\n')}\n`);
    this.drawn = frame.length;
  }

  private clear(): void {
    if (this.drawn > 0) this.write(`\x1b[${this.drawn}A\x1b[J`);
    this.drawn = 0;
  }
}

export function budgetBar(b: BudgetStatus, width = 30): string {
  if (b.limit === null) return `${money(b.spent)} spent, ${money(b.reserved)} reserved (no limit)`;
  const used = Math.min(1, b.ratio ?? 0);
  const spentPart = Math.round((Math.min(b.spent, b.limit) / (b.limit || 1)) * width);
  const reservedPart = Math.max(0, Math.round(used * width) - spentPart);
  const bar = '█'.repeat(spentPart) + '▒'.repeat(reservedPart) + '░'.repeat(Math.max(0, width - spentPart - reservedPart));
  return `[${bar}] ${money(b.spent)} spent + ${money(b.reserved)} reserved of ${money(b.limit)} (${b.level})`;
}

export function money(n: number): string {
  return `$${n.toFixed(2)}`;
}

/** The closing table: per task type, how many, attempts, cost. */
export function summaryTable(tasks: readonly TaskRecord[], budget: BudgetStatus, wallMs: number): string {
  const rows = new Map<string, { n: number; done: number; attempts: number; cost: number }>();
  for (const t of tasks) {
    const r = rows.get(t.taskType) ?? { n: 0, done: 0, attempts: 0, cost: 0 };
    r.n++;
    if (t.status === 'COMPLETED') r.done++;
    r.attempts += t.attempts;
    r.cost += t.actualCost ?? 0;
    rows.set(t.taskType, r);
  }
  const header = ['task type', 'tasks', 'completed', 'attempts', 'cost'];
  const body = [...rows.entries()]
    .sort((a, b) => b[1].cost - a[1].cost)
    .map(([type, r]) => [type, String(r.n), String(r.done), String(r.attempts), money(r.cost)]);
  const total = [...rows.values()].reduce((acc, r) => ({ n: acc.n + r.n, done: acc.done + r.done, attempts: acc.attempts + r.attempts, cost: acc.cost + r.cost }), { n: 0, done: 0, attempts: 0, cost: 0 });
  body.push(['total', String(total.n), String(total.done), String(total.attempts), money(total.cost)]);
  const widths = header.map((h, i) => Math.max(h.length, ...body.map((r) => r[i]!.length)));
  const fmt = (r: string[]) => `| ${r.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join(' | ')} |`;
  return [
    fmt(header),
    `|${widths.map((w, i) => (i === 0 ? '-'.repeat(w + 2) : `${'-'.repeat(w + 1)}:`)).join('|')}|`,
    ...body.map(fmt),
    '',
    `spent ${money(budget.spent)} of ${budget.limit === null ? 'no limit' : money(budget.limit)}${budget.limit ? ` (${((budget.spent / budget.limit) * 100).toFixed(1)} %)` : ''}, wall time ${(wallMs / 1000).toFixed(1)} s`,
  ].join('\n');
}
