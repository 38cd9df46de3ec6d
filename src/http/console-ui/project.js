// Project (/projects/<id>): header and actions, the live task graph, the timeline, the
// budget over time, the checkpoint history.
import { useState } from 'preact/hooks';
import { html, usePage, useNow, Page, ProjectStateBadge, BudgetBar, TaskProgress, ActionMessage } from './ui.js';
import { api, errorText } from './api.js';
import { TaskGraph } from './graph.js';
import { Timeline, BudgetChart } from './charts.js';
import { time, fullTime, humanize, money, duration, toMs } from './format.js';

function Actions({ project, actions, reload }) {
  const [busy, setBusy] = useState(null);
  const [msg, setMsg] = useState(null);
  const [draft, setDraft] = useState(null);
  const limit = project.budget?.limit ?? null;
  const a = actions ?? {};

  async function run(name, body, done) {
    setBusy(name);
    setMsg(null);
    try {
      await api.control(project.projectId, body);
      setMsg({ outcome: done });
      if (name === 'set-budget') setDraft(null);
    } catch (err) {
      setMsg({ error: errorText(err), code: err.code ?? '' });
    } finally {
      setBusy(null);
      reload();
    }
  }

  const pause = () => run('pause', { action: 'pause' }, 'Paused: no new task starts; running ones finish.');
  const resume = () => run('resume', { action: 'resume' }, 'Resumed.');
  const retry = () => run('retry', { action: 'retry' }, 'Retrying: the failed tasks are planned again.');
  const cancel = () => {
    const reason = window.prompt(`Cancel “${project.title || project.projectId}”? Its unfinished tasks are cancelled; this cannot be undone.\n\nReason (optional):`, '');
    if (reason === null) return;
    const body = { action: 'cancel' };
    if (reason.trim()) body.reason = reason.trim();
    run('cancel', body, 'Cancelled.');
  };
  const setBudget = (e) => {
    e.preventDefault();
    const raw = (draft ?? (limit == null ? '' : String(limit))).trim();
    if (raw === '') return run('set-budget', { action: 'set_budget', limit: null }, 'The budget limit is removed.');
    const n = Number(raw);
    if (!Number.isFinite(n) || n < 0) {
      setMsg({ error: 'The limit must be a number of dollars, 0 or more (empty: no limit)', code: 'ERR_VALIDATION' });
      return undefined;
    }
    return run('set-budget', { action: 'set_budget', limit: n }, `The budget limit is now ${money(n)}.`);
  };

  const btn = (name, label, onClick, allowed, cls = '') => html`<button type="button" class=${`btn ${cls}`} data-action=${name}
      disabled=${!allowed || busy !== null} aria-busy=${busy === name ? 'true' : undefined} onClick=${onClick}>${busy === name ? `${label}…` : label}</button>`;

  return html`<div class="actions-block">
    <div class="actions">
      ${btn('pause', 'Pause', pause, a.pause)}
      ${btn('resume', 'Resume', resume, a.resume)}
      ${btn('retry', 'Retry', retry, a.retry)}
      ${btn('cancel', 'Cancel…', cancel, a.cancel, 'danger-ghost')}
      <form class="budget-form" onSubmit=${setBudget}>
        <label class="input-group" title="The budget limit in dollars; empty for none">
          <span class="prefix">$</span>
          <input name="budget-limit" type="number" min="0" step="0.01" inputmode="decimal" placeholder="no limit"
            value=${draft ?? (limit == null ? '' : String(limit))} disabled=${!a.setBudget} onInput=${(e) => setDraft(e.currentTarget.value)} aria-label="Budget limit (dollars)" />
        </label>
        <button type="submit" class="btn" data-action="set-budget" disabled=${!a.setBudget || busy !== null}>${busy === 'set-budget' ? 'Setting…' : 'Set budget'}</button>
      </form>
    </div>
    <${ActionMessage} msg=${msg} />
  </div>`;
}

function CheckpointHistory({ checkpoints }) {
  if (!checkpoints || !checkpoints.length) return html`<div class="empty-inline muted">No checkpoint reached yet.</div>`;
  return html`<div class="table-wrap"><table class="checkpoints">
    <thead><tr><th>Checkpoint</th><th>Status</th><th>Requested</th><th>Decided</th><th>By</th><th>Comment</th></tr></thead>
    <tbody>${checkpoints.map((c) => html`<tr key=${c.approvalId} data-checkpoint-row data-checkpoint=${c.checkpoint} data-status=${c.status} data-approval=${c.approvalId}>
      <td><span class="mono">${c.checkpoint}</span></td>
      <td><span class="decision-badge" data-status=${c.status}>${c.status}</span>${c.status === 'pending' ? html` <a class="small" href=${`/inbox#review-${encodeURIComponent(c.approvalId)}`}>Review →</a>` : null}</td>
      <td class="nowrap" title=${fullTime(c.requestedAt)}>${time(c.requestedAt)}</td>
      <td class="nowrap" title=${fullTime(c.decidedAt)}>${c.decidedAt ? time(c.decidedAt) : html`<span class="muted">${c.expiresAt ? `expires ${time(c.expiresAt)}` : '—'}</span>`}</td>
      <td>${c.by ?? html`<span class="muted">—</span>`}</td>
      <td class="comment-cell">${c.comment ? html`<span class="comment">${c.comment}</span>` : html`<span class="muted">—</span>`}</td>
    </tr>`)}</tbody>
  </table></div>`;
}

// Everything about this project re-fetches the page: transitions (new tasks too), budget,
// state, approvals.
const relevantFor = (id) => (e) => e.kind !== 'dlq' && e.body && e.body.projectId === id;

export function ProjectPage({ id }) {
  const page = usePage(`/api/projects/${encodeURIComponent(id)}`, relevantFor(id));
  const now = useNow(30000);
  return html`<${Page} name="project" page=${page}>${(d) => {
    const p = d.project;
    const pending = (d.checkpoints ?? []).filter((c) => c.status === 'pending');
    return html`
      <div class="crumbs"><a href="/">Projects</a><span>/</span><span class="mono">${p.projectId}</span></div>
      <section class="card project-head" data-project=${p.projectId} data-state=${p.state}>
        <div class="head-row">
          <div class="head-title">
            <h1>${p.title || p.projectId}</h1>
            <div class="head-meta"><${ProjectStateBadge} state=${p.state} reason=${p.reason} />
              <span class="muted small">created ${time(p.createdAt)} · updated ${duration(now - toMs(p.updatedAt))} ago</span></div>
          </div>
          <div class="head-budget"><${BudgetBar} budget=${p.budget} /></div>
        </div>
        <div class="head-row second">
          <${TaskProgress} tasks=${p.tasks} />
          ${pending.length ? html`<div class="chips">${pending.map((c) => html`<a class="chip checkpoint attention" href=${`/inbox#review-${encodeURIComponent(c.approvalId)}`} data-checkpoint=${c.checkpoint}>
            <span class="chip-label">Review ${humanize(c.checkpoint)}</span><span class="chip-meta">${duration(now - toMs(c.requestedAt))}</span></a>`)}</div>` : null}
        </div>
        <${Actions} project=${p} actions=${d.actions} reload=${page.reload} />
      </section>
      <section class="card">
        <div class="card-head"><h2>Task graph</h2><span class="muted small">${d.graph?.nodes?.length ?? 0} tasks · click a task for its details</span></div>
        <${TaskGraph} graph=${d.graph} />
      </section>
      <div class="grid-2">
        <section class="card">
          <div class="card-head"><h2>Timeline</h2><span class="muted small">by stage</span></div>
          <${Timeline} spans=${d.timeline} />
        </section>
        <section class="card">
          <div class="card-head"><h2>Budget over time</h2></div>
          <${BudgetChart} points=${d.budgetHistory} limit=${p.budget?.limit ?? null} live=${p.state === 'active' || p.state === 'paused'} />
        </section>
      </div>
      <section class="card">
        <div class="card-head"><h2>Checkpoints</h2><span class="muted small">approval history</span></div>
        <${CheckpointHistory} checkpoints=${d.checkpoints} />
      </section>`;
  }}<//>`;
}
