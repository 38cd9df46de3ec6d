// One review: what is judged (script, shot plan, video and keyframes, or a payload), the
// cost of approving, and the decision (comment, reviewer, Approve / Reject).
import { useState, useRef, useEffect } from 'preact/hooks';
import { html, Artifact, BudgetBar, ActionMessage } from './ui.js';
import { api, errorText, metaReviewer, safeHref } from './api.js';
import { reviewerName, setReviewerName, onReviewerName } from './store.js';
import { money, duration, toMs, time, fullTime, humanize, prettyJson, compactJson, plural, shotLabel } from './format.js';

function cell(v) {
  if (v == null) return html`<span class="muted">—</span>`;
  if (typeof v === 'string') return v;
  if (typeof v === 'number' || typeof v === 'boolean') return html`<span class="num">${String(v)}</span>`;
  return html`<code class="json-inline">${compactJson(v)}</code>`;
}

function ScriptView({ script }) {
  return html`<div class="script-wrap"><div class="script-text">${typeof script === 'string' ? script : prettyJson(script)}</div></div>`;
}

function ShotPlan({ shots, columns }) {
  const rows = Array.isArray(shots) ? shots : [];
  const cols = Array.isArray(columns) && columns.length ? columns : [...new Set(rows.flatMap((r) => (r && typeof r === 'object' ? Object.keys(r) : [])))];
  return html`<div class="table-wrap"><table class="shot-plan">
    <thead><tr><th class="num" title="The shot as counted from 1">Shot</th>${cols.map((c) => html`<th>${humanize(c)}</th>`)}</tr></thead>
    <tbody>${rows.map((r, i) => html`<tr data-shot=${String(i)}><td class="num muted">${i + 1}</td>${cols.map((c) => html`<td>${cell(r?.[c])}</td>`)}</tr>`)}</tbody>
  </table></div>`;
}

function VideoView({ video, keyframes, selectable, selected, toggle, disabled }) {
  const frames = Array.isArray(keyframes) ? keyframes : [];
  return html`<div class="video-review">
    <div class="player">${video ? html`<${Artifact} artifact=${video} frame />` : html`<div class="player-empty muted">No video to show</div>`}</div>
    ${video && video.title ? html`<p class="muted small">${video.title}</p>` : null}
    ${frames.length ? html`<div class="keyframes">
      <div class="keyframes-head"><h4>Keyframes</h4>${selectable ? html`<span class="muted small">Click the shots to redo, then Reject.</span>` : null}</div>
      <div class="keyframe-grid">${frames.map((k, i) => {
        const idx = Number.isInteger(k.shotIndex) ? k.shotIndex : i;
        const src = safeHref(k.href);
        const img = src && String(k.mediaType || '').toLowerCase().startsWith('image/')
          ? html`<img src=${src} alt=${k.title || shotLabel(idx)} />`
          : html`<div class="kf-missing"><code class="uri">${k.uri}</code></div>`;
        const caption = html`<span class="kf-caption">${shotLabel(idx)}</span>`;
        if (!selectable) return html`<figure class="keyframe" data-keyframe=${String(idx)} title=${k.title || shotLabel(idx)}>${img}${caption}</figure>`;
        const on = selected.has(idx);
        return html`<button type="button" class=${`keyframe selectable ${on ? 'selected' : ''}`} data-keyframe=${String(idx)} aria-pressed=${on ? 'true' : 'false'}
            disabled=${disabled} onClick=${() => toggle(idx)} title=${on ? `${shotLabel(idx)}: to redo` : `Select ${shotLabel(idx)} to redo`}>
          ${img}<span class="check" aria-hidden="true">✓</span>${caption}</button>`;
      })}</div>
    </div>` : null}
  </div>`;
}

export function ReviewContent({ review, selected, toggle, disabled }) {
  const c = review.content ?? { kind: 'payload', payload: {} };
  switch (c.kind) {
    case 'script': return html`<${ScriptView} script=${c.script} />`;
    case 'shots': return html`<${ShotPlan} shots=${c.shots} columns=${c.columns} />`;
    case 'video': return html`<${VideoView} video=${c.video} keyframes=${c.keyframes} selectable=${typeof review.shots === 'number'}
        selected=${selected} toggle=${toggle} disabled=${disabled} />`;
    default: return html`<pre class="code payload">${prettyJson(c.payload ?? c)}</pre>`;
  }
}

const POLICY = { reject: 'then rejected automatically', approve: 'then approved automatically', remind: 'then a reminder' };

function expiryText(review, now) {
  if (!review.expiresAt) return 'no expiry';
  const left = toMs(review.expiresAt) - now;
  const policy = review.expiryPolicy ? `, ${POLICY[review.expiryPolicy] ?? `then ${review.expiryPolicy}`}` : '';
  return left > 0 ? `expires in ${duration(left)}${policy}` : `expired ${duration(-left)} ago${policy}`;
}

/**
 * @param {{ review: any, now: number, focused?: boolean, onActed: (review: any, phase: 'sending'|'decided'|'refused') => void, onDismiss?: (approvalId: string) => void, reload: () => void }} p
 */
export function ReviewCard({ review, now, focused = false, onActed, onDismiss, reload }) {
  const [comment, setComment] = useState('');
  const [reviewer, setReviewer] = useState(() => reviewerName(metaReviewer));
  useEffect(() => onReviewerName(setReviewer), []);
  const [selected, setSelected] = useState(() => new Set());
  const [busy, setBusy] = useState(null);
  const [msg, setMsg] = useState(null);
  const [done, setDone] = useState(null);
  const reviewerRef = useRef(null);
  const preview = typeof review.shots === 'number';
  const closed = done != null || (msg && (msg.code === 'ERR_APPROVAL' || msg.code === 'ERR_PROJECT_NOT_FOUND'));

  const toggle = (i) => setSelected((s) => {
    const n = new Set(s);
    if (n.has(i)) n.delete(i);
    else n.add(i);
    return n;
  });
  const saveReviewer = (v) => setReviewerName(v);

  async function decide(decision) {
    const by = reviewer.trim();
    if (!by) {
      setMsg({ error: 'Enter your name as the reviewer first', code: 'ERR_VALIDATION' });
      reviewerRef.current?.focus();
      return;
    }
    const body = { approvalId: review.approvalId, decision, by };
    if (comment.trim()) body.comment = comment.trim();
    const shots = [...selected].sort((a, b) => a - b);
    if (decision === 'rejected' && preview && shots.length) body.shots = shots;
    setBusy(decision);
    setMsg(null);
    // Kept in the list from now on: a refresh between the server's accepting the decision
    // and its reply here (the events it causes come first) must not unmount this card.
    onActed(review, 'sending');
    try {
      await api.decide(review.projectId, body);
      const at = time(new Date().toISOString());
      const what = decision === 'approved'
        ? `Approved by ${by} at ${at}${review.approving?.tasks ? ` — ${plural(review.approving.tasks, 'task')} starting` : ''}`
        : `Rejected by ${by} at ${at} — ${preview ? (shots.length ? `${shots.map(shotLabel).join(', ')} to redo` : 'every shot is redone') : 'sent back for revision'}`;
      setDone({ decision, text: what });
      setMsg({ outcome: what });
      onActed(review, 'decided');
    } catch (err) {
      setMsg({ error: errorText(err), code: err.code ?? '' });
      onActed(review, 'refused');
    } finally {
      setBusy(null);
      reload();
    }
  }

  const n = selected.size;
  const rejectLabel = preview ? (n ? `Reject ${plural(n, 'shot')}` : 'Reject all shots') : 'Reject';
  const b = review.budget;
  const projectHref = `/projects/${encodeURIComponent(review.projectId)}`;
  return html`<article class=${`card review ${focused ? 'focused' : ''} ${done ? `decided ${done.decision}` : ''}`} id=${`review-${review.approvalId}`}
      data-review=${review.approvalId} data-checkpoint=${review.checkpoint} data-project-id=${review.projectId}>
    <header class="review-head">
      <div>
        <div class="review-title"><a href=${projectHref} class="project-link">${review.projectTitle || review.projectId}</a>
          <span class="chip checkpoint static"><span class="chip-label">${humanize(review.checkpoint)}</span></span></div>
        <div class="muted small"><span class="mono">${review.checkpoint}</span> · requested <span title=${fullTime(review.requestedAt)}>${time(review.requestedAt)}</span></div>
      </div>
      <div class="review-times">
        <div class="waited"><span class="muted small">waiting</span> <strong>${duration(now - toMs(review.requestedAt))}</strong></div>
        <div class="muted small expiry" title=${review.expiresAt ? fullTime(review.expiresAt) : ''}>${expiryText(review, now)}</div>
      </div>
    </header>
    ${done
      ? html`<div class=${`outcome ${done.decision}`}><${ActionMessage} msg=${msg} /><p class="muted small outcome-foot">This review is closed; it leaves the inbox with the next refresh.</p></div>`
      : html`
      <div class="review-body"><${ReviewContent} review=${review} selected=${selected} toggle=${toggle} disabled=${closed || busy !== null} /></div>
      <div class="review-cost">
        <div class="cost-figures"><span class="muted small">Cost so far</span><${BudgetBar} budget=${b} /></div>
        <div class="cost-approve">
          <div>Approving starts <strong>${plural(review.approving?.tasks ?? 0, 'task')}</strong>, est. <strong>${money(review.approving?.estimatedCost ?? 0)}</strong></div>
          <div class=${`small ${b?.exceedsBudget ? 'danger' : 'muted'}`}>Forecast ${money(b?.forecast)}${b?.limit != null ? ` of ${money(b.limit)}` : ''}${b?.exceedsBudget ? ' — exceeds the budget' : ''}</div>
        </div>
      </div>
      <form class="decision" onSubmit=${(e) => e.preventDefault()}>
        <label class="field grow"><span class="field-label">Comment</span>
          <textarea name="comment" rows="2" placeholder=${preview ? 'What should change in the shots? (recommended when rejecting)' : 'What should change? (recommended when rejecting)'}
            value=${comment} onInput=${(e) => setComment(e.currentTarget.value)} disabled=${closed}></textarea></label>
        <div class="decision-side">
          <label class="field"><span class="field-label">Reviewer</span>
            <input ref=${reviewerRef} name="reviewer" required autocomplete="name" placeholder="your name" value=${reviewer}
              onInput=${(e) => saveReviewer(e.currentTarget.value)} disabled=${closed} /></label>
          <div class="decision-buttons">
            <button type="button" class="btn reject" data-action="reject" disabled=${closed || busy !== null} onClick=${() => decide('rejected')}>${busy === 'rejected' ? 'Rejecting…' : rejectLabel}</button>
            <button type="button" class="btn primary approve" data-action="approve" disabled=${closed || busy !== null} onClick=${() => decide('approved')}>${busy === 'approved' ? 'Approving…' : 'Approve'}</button>
          </div>
        </div>
      </form>
      ${preview && !closed ? html`<p class="muted small hint">${n ? `Rejecting redoes ${n === 1 ? 'this shot' : `these ${n} shots`}: ${[...selected].sort((x, y) => x - y).map(shotLabel).join(', ')}.` : `No shot selected: rejecting redoes all ${plural(review.shots, 'shot')}.`}</p>` : null}
      <${ActionMessage} msg=${msg} />
      ${closed && review.closedHere && onDismiss ? html`<p class="outcome-foot"><button type="button" class="btn small ghost" data-action="dismiss" onClick=${() => onDismiss(review.approvalId)}>Dismiss</button></p>` : null}`}
  </article>`;
}
