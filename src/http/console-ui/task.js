// Task (/tasks/<id>): what it is, its input and output, artifacts, last error, and the
// audit log of its transitions.
import { html, usePage, Page, StatusBadge, Artifact, JsonBlock } from './ui.js';
import { money, timeMs, fullTime, duration, toMs } from './format.js';

const relevantFor = (id, projectId) => (e) =>
  (e.kind === 'status' && e.body && e.body.taskId === id) || (e.kind === 'project' && projectId && e.body && e.body.projectId === projectId);

function Fact({ label, children }) {
  return html`<div class="fact"><dt>${label}</dt><dd>${children}</dd></div>`;
}

export function TaskPage({ id }) {
  let projectId = null;
  const page = usePage(`/api/tasks/${encodeURIComponent(id)}`, (e) => relevantFor(id, projectId)(e));
  if (page.data) projectId = page.data.projectId;
  return html`<${Page} name="task" page=${page}>${(t) => {
    const ran = t.startedAt && (t.completedAt || t.status === 'RUNNING') ? (t.completedAt ? toMs(t.completedAt) : Date.now()) - toMs(t.startedAt) : NaN;
    return html`
    <div class="crumbs"><a href="/">Projects</a><span>/</span><a href=${`/projects/${encodeURIComponent(t.projectId)}`} class="mono">${t.projectId}</a><span>/</span><span class="mono">${t.taskId}</span></div>
    <section class="card task-head" data-task=${t.taskId} data-status=${t.status}>
      <div class="head-row">
        <div class="head-title">
          <h1 class="mono">${t.taskType}</h1>
          <div class="head-meta"><${StatusBadge} status=${t.status} />${t.origin && t.origin !== 'work' ? html`<span class="origin-tag">${t.origin}</span>` : null}
            <span class="muted small mono">${t.taskId}</span></div>
        </div>
      </div>
      <dl class="facts">
        <${Fact} label="Agent"><span class="mono">${t.agent}</span><//>
        <${Fact} label="Attempts">${t.attempts} / ${t.maxAttempts}<//>
        <${Fact} label="Estimated cost">${money(t.estimatedCost)}<//>
        <${Fact} label="Actual cost">${money(t.actualCost)}<//>
        <${Fact} label="Fencing token"><span class="mono">${t.fencingToken ?? '—'}</span><//>
        <${Fact} label="Priority">${t.priority}<//>
        <${Fact} label="Created"><span title=${fullTime(t.createdAt)}>${timeMs(t.createdAt)}</span><//>
        <${Fact} label="Started"><span title=${fullTime(t.startedAt)}>${t.startedAt ? timeMs(t.startedAt) : '—'}</span><//>
        <${Fact} label="Completed"><span title=${fullTime(t.completedAt)}>${t.completedAt ? timeMs(t.completedAt) : '—'}</span><//>
        <${Fact} label=${t.status === 'RUNNING' ? 'Running for' : 'Ran for'}>${Number.isFinite(ran) ? duration(ran) : '—'}<//>
      </dl>
      ${t.dependencies && t.dependencies.length ? html`<div class="deps"><span class="muted small">Depends on</span>
        ${t.dependencies.map((d) => html`<a class="chip mono" href=${`/tasks/${encodeURIComponent(d)}`}>${d}</a>`)}</div>` : null}
    </section>
    ${t.lastError ? html`<section class="error-box" role="alert"><h3>Last error</h3><pre>${t.lastError}</pre></section>` : null}
    ${t.artifacts && t.artifacts.length ? html`<section class="card">
      <div class="card-head"><h2>Artifacts</h2><span class="muted small">${t.artifacts.length}</span></div>
      <div class="artifact-grid">${t.artifacts.map((a) => html`<figure class="artifact" data-media-type=${a.mediaType}>
        <${Artifact} artifact=${a} />
        <figcaption><span>${a.title || (a.shotIndex != null ? `Shot ${a.shotIndex + 1}` : '')}</span> <span class="muted mono small">${a.mediaType}</span></figcaption>
      </figure>`)}</div>
    </section>` : null}
    <div class="grid-2">
      <section class="card"><${JsonBlock} value=${t.input} summary="Input" /></section>
      <section class="card">${t.output ? html`<${JsonBlock} value=${t.output} summary="Output" />` : html`<div class="json-empty"><strong>Output</strong> <span class="muted">none yet</span></div>`}</section>
    </div>
    <section class="card">
      <div class="card-head"><h2>Transitions</h2><span class="muted small">audit log</span></div>
      <div class="table-wrap"><table class="transitions">
        <thead><tr><th>Time</th><th>From → to</th><th>Event</th><th>By</th><th class="num">Fencing token</th><th>Detail</th></tr></thead>
        <tbody>${(t.transitions ?? []).map((tr) => html`<tr data-transition data-to=${tr.to}>
          <td class="mono nowrap small">${timeMs(tr.at)}</td>
          <td class="nowrap">${tr.from ? html`<${StatusBadge} status=${tr.from} />` : html`<span class="muted">—</span>`} <span class="arrow">→</span> <${StatusBadge} status=${tr.to} /></td>
          <td class="mono small">${tr.event}</td>
          <td class="mono small">${tr.by}</td>
          <td class="num mono small">${tr.fencingToken ?? '—'}</td>
          <td>${tr.detail ? html`<details class="detail"><summary class="small">detail</summary><pre class="code small">${JSON.stringify(tr.detail, null, 2)}</pre></details>` : html`<span class="muted">—</span>`}</td>
        </tr>`)}</tbody>
      </table></div>
    </section>`;
  }}<//>`;
}
