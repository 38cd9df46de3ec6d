// The live task graph: the server's layout (node centres and sizes, edge routes) drawn
// as SVG. Nodes are links to their task pages.
import { html } from './ui.js';
import { STATUS_LABEL, TASK_STATUSES } from './format.js';

/** An edge's route through its points, the bends rounded. @param {{x:number,y:number}[]} pts */
export function edgePath(pts) {
  const p = (pts ?? []).filter((q) => q && Number.isFinite(q.x) && Number.isFinite(q.y));
  if (p.length < 2) return '';
  let d = `M${p[0].x},${p[0].y}`;
  if (p.length === 2) return `${d} L${p[1].x},${p[1].y}`;
  for (let i = 1; i < p.length - 1; i++) {
    const mx = (p[i].x + p[i + 1].x) / 2;
    const my = (p[i].y + p[i + 1].y) / 2;
    d += i === p.length - 2 ? ` Q${p[i].x},${p[i].y} ${p[i + 1].x},${p[i + 1].y}` : ` Q${p[i].x},${p[i].y} ${mx},${my}`;
  }
  return d;
}

const CHAR_W = 6.4; // the node label's monospace advance at 11px

function fit(text, width) {
  const max = Math.max(3, Math.floor((width - 18) / CHAR_W));
  return text.length > max ? `${text.slice(0, max - 1)}…` : text;
}

function Node({ n }) {
  const x = n.x - n.width / 2;
  const y = n.y - n.height / 2;
  const shot = n.shotIndex != null ? `shot ${n.shotIndex + 1}` : null;
  const sub = [shot, STATUS_LABEL[n.status] ?? n.status, n.attempts > 1 ? `try ${n.attempts}` : null].filter(Boolean).join(' · ');
  const title = `${n.taskType}${shot ? ` (${shot})` : ''} — ${STATUS_LABEL[n.status] ?? n.status}${n.origin !== 'work' ? `, ${n.origin}` : ''}${n.attempts ? `, ${n.attempts} attempt${n.attempts === 1 ? '' : 's'}` : ''}`;
  const tag = n.origin === 'revision' || n.origin === 'repair' ? n.origin : null;
  const attrs = { class: 'node', 'data-task': n.taskId, 'data-type': n.taskType, 'data-status': n.status, 'data-origin': n.origin };
  if (n.shotIndex != null) attrs['data-shot'] = String(n.shotIndex);
  return html`<g ...${attrs}>
    <a href=${`/tasks/${encodeURIComponent(n.taskId)}`} aria-label=${title}>
      <title>${title}</title>
      <rect class="box" x=${x} y=${y} width=${n.width} height=${n.height} rx="8" ry="8" />
      <rect class="stripe" x=${x} y=${y + 8} width="3" height=${Math.max(0, n.height - 16)} rx="1.5" />
      <text class="label" x=${x + 12} y=${n.y - (n.height >= 40 ? 4 : 0)} dominant-baseline="middle">${fit(n.taskType, n.width)}</text>
      ${n.height >= 40 && html`<text class="sub" x=${x + 12} y=${n.y + 11} dominant-baseline="middle">${fit(sub, n.width + 10)}</text>`}
      ${tag && html`<g class="tag">
        <rect x=${x + n.width - tag.length * 5.6 - 14} y=${y - 7} width=${tag.length * 5.6 + 10} height="14" rx="7" />
        <text x=${x + n.width - tag.length * 2.8 - 9} y=${y} text-anchor="middle" dominant-baseline="middle">${tag}</text>
      </g>`}
    </a>
  </g>`;
}

/** @param {{ graph: {width:number,height:number,nodes:any[],edges:any[]} }} p */
export function TaskGraph({ graph }) {
  const g = graph ?? { width: 0, height: 0, nodes: [], edges: [] };
  if (!g.nodes || !g.nodes.length) return html`<div class="empty-inline muted">No tasks yet.</div>`;
  const pad = 12;
  const w = Math.max(1, g.width) + pad * 2;
  const hgt = Math.max(1, g.height) + pad * 2;
  const present = new Set(g.nodes.map((n) => n.status));
  const eventEdges = (g.edges ?? []).some((e) => e.kind === 'event');
  // Natural size, shrunk to the card's width down to 85% (then it scrolls), never enlarged.
  const style = { maxWidth: `${w}px`, minWidth: `${Math.round(w * 0.85)}px` };
  return html`<div class="graph-wrap">
    <div class="graph-scroll">
      <svg class="task-graph" viewBox=${`${-pad} ${-pad} ${w} ${hgt}`} width="100%" style=${style} preserveAspectRatio="xMinYMin meet" role="group" aria-label="Task graph">
        <defs>
          <marker id="lap-arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" orient="auto-start-reverse">
            <path class="arrowhead" d="M0,1 L9,5 L0,9 z" />
          </marker>
          <marker id="lap-arrow-event" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" orient="auto-start-reverse">
            <path class="arrowhead event" d="M0,1 L9,5 L0,9 z" />
          </marker>
        </defs>
        <g class="edges">${(g.edges ?? []).map((e) => html`<path key=${`${e.from}>${e.to}`} class=${`edge ${e.kind === 'event' ? 'event' : ''}`} data-from=${e.from} data-to=${e.to} data-kind=${e.kind ?? 'dependency'}
          d=${edgePath(e.points)} marker-end=${e.kind === 'event' ? 'url(#lap-arrow-event)' : 'url(#lap-arrow)'}><title>${e.kind === 'event' ? 'created by the event this task raised' : 'waits for this task'}</title></path>`)}</g>
        <g class="nodes">${g.nodes.map((n) => html`<${Node} key=${n.taskId} n=${n} />`)}</g>
      </svg>
    </div>
    <div class="legend">${TASK_STATUSES.filter((s) => present.has(s)).map((s) => html`<span class="legend-item" data-status=${s}><i class="dot"></i>${STATUS_LABEL[s]}</span>`)}
      <span class="legend-item origin"><i class="dash"></i>revision / repair</span>
      <span class="legend-item"><i class="edge-key"></i>depends on</span>
      ${eventEdges && html`<span class="legend-item"><i class="edge-key event"></i>created by an event (approval, rejection, failed QA)</span>`}
      ${g.truncated ? html`<span class="legend-item warn-text">${g.truncated} more task${g.truncated === 1 ? '' : 's'} not drawn (the graph shows the first ${g.nodes.length})</span>` : null}</div>
  </div>`;
}
