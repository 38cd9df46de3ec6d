// Projects (/): every project with its state, progress, budget and pending reviews.
import { html, usePage, useNow, Page, ProjectStateBadge, BudgetBar, TaskProgress, Empty } from './ui.js';
import { duration, humanize, toMs, time, fullTime } from './format.js';

const relevant = (e) => e.kind !== 'dlq';

export function ReviewChips({ reviews, now }) {
  if (!reviews || !reviews.length) return html`<span class="muted">—</span>`;
  return html`<div class="chips">${reviews.map((r) => html`<a class="chip checkpoint" href=${`/inbox#review-${encodeURIComponent(r.approvalId)}`}
      data-checkpoint=${r.checkpoint} title=${`Requested ${fullTime(r.requestedAt)}`}>
      <span class="chip-label">${humanize(r.checkpoint)}</span><span class="chip-meta">${duration(now - toMs(r.requestedAt))}</span></a>`)}</div>`;
}

export function ProjectsPage() {
  const page = usePage('/api/projects', relevant);
  const now = useNow(15000);
  return html`<${Page} name="projects" page=${page}>${(projects) => html`
    <div class="page-head">
      <div><h1>Projects</h1><p class="sub">${projects.length ? `${projects.length} project${projects.length === 1 ? '' : 's'}, the latest first` : ''}</p></div>
    </div>
    ${!projects.length
      ? html`<${Empty}><h2>No projects yet</h2><p>Projects appear here as soon as the orchestrator starts one.</p><//>`
      : html`<div class="table-wrap card"><table class="projects-table">
        <thead><tr><th>Project</th><th>State</th><th class="w-progress">Progress</th><th class="w-budget">Budget</th><th>Pending reviews</th><th class="num">Updated</th></tr></thead>
        <tbody>${projects.map((p) => html`<tr key=${p.projectId} data-project=${p.projectId} data-state=${p.state}>
          <td class="project-cell"><a class="project-title" href=${`/projects/${encodeURIComponent(p.projectId)}`}>${p.title || p.projectId}</a><div class="mono muted small">${p.projectId}</div></td>
          <td class="state-cell"><${ProjectStateBadge} state=${p.state} reason=${p.reason} /></td>
          <td><${TaskProgress} tasks=${p.tasks} /></td>
          <td><${BudgetBar} budget=${p.budget} compact /></td>
          <td><${ReviewChips} reviews=${p.pendingReviews} now=${now} /></td>
          <td class="num muted small" title=${fullTime(p.updatedAt)}>${time(p.updatedAt)}</td>
        </tr>`)}</tbody>
      </table></div>`}
  `}<//>`;
}
