// Dead letters (/dead-letters): the tasks given up on, and the messages the bus refused.
import { html, usePage, Page, Empty } from './ui.js';
import { timeMs, fullTime, time } from './format.js';

const relevant = (e) => e.kind === 'dlq' || (e.kind === 'status' && e.body && e.body.to === 'FAILED');

export function DeadLettersPage() {
  const page = usePage('/api/dead-letters', relevant);
  return html`<${Page} name="dead-letters" page=${page}>${(d) => html`
    <div class="page-head"><div><h1>Dead letters</h1><p class="sub">What the orchestrator gave up on, and what it refused.</p></div></div>
    <section class="card">
      <div class="card-head"><h2>Tasks given up on</h2><span class="muted small">${d.tasks?.length ?? 0}</span></div>
      ${!d.tasks?.length ? html`<div class="empty-inline muted" data-empty-tasks>None.</div>` : html`<div class="table-wrap"><table class="dead-tasks">
        <thead><tr><th>Task</th><th>Project</th><th>Reason</th><th>Last error</th><th class="num">Attempts</th><th>When</th></tr></thead>
        <tbody>${d.tasks.map((t) => html`<tr key=${t.id} data-dead-task=${t.taskId}>
          <td><a class="mono" href=${`/tasks/${encodeURIComponent(t.taskId)}`}>${t.taskId}</a></td>
          <td><a class="mono" href=${`/projects/${encodeURIComponent(t.projectId)}`}>${t.projectId}</a></td>
          <td>${t.reason}</td>
          <td class="error-cell">${t.lastError ? html`<span class="mono small">${t.lastError}</span>` : html`<span class="muted">—</span>`}</td>
          <td class="num">${t.attempts}</td>
          <td class="nowrap small" title=${fullTime(t.at)}>${time(t.at)}</td>
        </tr>`)}</tbody>
      </table></div>`}
    </section>
    <section class="card">
      <div class="card-head"><h2>Rejected messages</h2><span class="muted small">${d.messages?.length ?? 0}</span></div>
      ${!d.messages?.length ? html`<div class="empty-inline muted" data-empty-messages>None.</div>` : html`<div class="table-wrap"><table class="rejected">
        <thead><tr><th class="num">Seq</th><th>When</th><th>Subject</th><th>Reason</th><th>Payload</th></tr></thead>
        <tbody>${d.messages.map((m) => html`<tr key=${m.seq} data-rejected=${String(m.seq)}>
          <td class="num mono small">${m.seq}</td>
          <td class="nowrap mono small" title=${fullTime(m.at)}>${timeMs(m.at)}</td>
          <td class="mono small">${m.subject}</td>
          <td>${m.reason}</td>
          <td class="payload-cell"><details><summary class="small">${m.data.length > 60 ? `${m.data.slice(0, 60)}…` : m.data || '(empty)'}</summary><pre class="code small">${pretty(m.data)}</pre></details></td>
        </tr>`)}</tbody>
      </table></div>`}
    </section>
  `}<//>`;
}

/** The payload pretty-printed when it is JSON, as it came otherwise. @param {string} s */
function pretty(s) {
  try {
    return JSON.stringify(JSON.parse(s), null, 2);
  } catch {
    return s;
  }
}
