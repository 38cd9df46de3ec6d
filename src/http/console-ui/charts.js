// The project's timeline (a Gantt of its stages) and its budget over time, as SVG sized
// to the card's width in pixels (so text keeps its size).
import { useState, useEffect, useRef } from 'preact/hooks';
import { html, useNow } from './ui.js';
import { money, toMs, duration, plural, STATUS_LABEL, TASK_STATUSES } from './format.js';

/** The width of an element, followed (ResizeObserver). */
function useWidth(initial = 720) {
  const ref = useRef(null);
  const [w, setW] = useState(initial);
  useEffect(() => {
    const el = ref.current;
    if (!el) return undefined;
    const set = () => setW(Math.max(280, Math.floor(el.clientWidth)));
    set();
    if (typeof ResizeObserver === 'undefined') return undefined;
    const ro = new ResizeObserver(set);
    ro.observe(el);
    return () => ro.disconnect();
  }, []);
  return [ref, w];
}

const pad2 = (n) => String(n).padStart(2, '0');
function clock(ms, withSeconds) {
  const d = new Date(ms);
  return withSeconds ? `${pad2(d.getHours())}:${pad2(d.getMinutes())}:${pad2(d.getSeconds())}` : `${pad2(d.getHours())}:${pad2(d.getMinutes())}`;
}

/** Up to `count` round tick times between t0 and t1. */
function timeTicks(t0, t1, count) {
  const span = Math.max(1, t1 - t0);
  const steps = [1e3, 5e3, 10e3, 15e3, 30e3, 60e3, 120e3, 300e3, 600e3, 900e3, 1800e3, 3600e3, 7200e3, 21600e3, 43200e3, 86400e3];
  const step = steps.find((s) => span / s <= count) ?? Math.ceil(span / count / 86400e3) * 86400e3;
  const out = [];
  for (let t = Math.ceil(t0 / step) * step; t <= t1; t += step) out.push(t);
  return { ticks: out, seconds: step < 60e3 };
}

function stageTone(s) {
  const st = s.statuses ?? {};
  if (st.FAILED) return 'FAILED';
  if (st.RUNNING) return 'RUNNING';
  if (st.WAITING_APPROVAL) return 'WAITING_APPROVAL';
  const total = TASK_STATUSES.reduce((n, k) => n + (st[k] ?? 0), 0);
  if (total && (st.COMPLETED ?? 0) === total) return 'COMPLETED';
  if (total && (st.CANCELLED ?? 0) === total) return 'CANCELLED';
  if (s.startedAt && !s.endedAt) return 'RUNNING';
  if (s.endedAt) return 'COMPLETED';
  return 'PENDING';
}

/** One row per task type: a bar from its first start to its last end (or now). */
export function Timeline({ spans }) {
  const [ref, width] = useWidth();
  const now = useNow(5000);
  const rows = spans ?? [];
  if (!rows.length) return html`<div ref=${ref} class="empty-inline muted">No stages yet.</div>`;
  const starts = rows.map((s) => toMs(s.startedAt)).filter(Number.isFinite);
  const ends = rows.map((s) => (s.startedAt ? (s.endedAt ? toMs(s.endedAt) : now) : NaN)).filter(Number.isFinite);
  const t0 = starts.length ? Math.min(...starts) : now;
  const t1 = Math.max(t0 + 1000, ...ends);
  const labelW = Math.min(190, Math.round(width * 0.3));
  const right = 16;
  const rowH = 26;
  const top = 22;
  const hgt = top + rows.length * rowH + 6;
  const plotW = Math.max(40, width - labelW - right);
  const x = (t) => labelW + ((t - t0) / (t1 - t0)) * plotW;
  const { ticks, seconds } = timeTicks(t0, t1, Math.max(2, Math.floor(plotW / 90)));
  return html`<div ref=${ref} class="chart-wrap">
    <svg class="timeline" width=${width} height=${hgt} viewBox=${`0 0 ${width} ${hgt}`} role="img" aria-label="Timeline of the stages">
      <g class="axis">${ticks.map((t) => html`<g><line class="grid" x1=${x(t)} x2=${x(t)} y1=${top - 4} y2=${hgt - 4} /><text class="tick" x=${x(t)} y=${12} text-anchor="middle">${clock(t, seconds)}</text></g>`)}</g>
      ${rows.map((s, i) => {
        const y = top + i * rowH;
        const tone = stageTone(s);
        const a = toMs(s.startedAt);
        const b = s.endedAt ? toMs(s.endedAt) : now;
        const started = Number.isFinite(a);
        const bx = started ? x(a) : labelW;
        const bw = started ? Math.max(3, x(b) - x(a)) : 0;
        const counts = TASK_STATUSES.filter((k) => s.statuses?.[k]).map((k) => `${s.statuses[k]} ${STATUS_LABEL[k]}`).join(', ');
        const info = started ? `${plural(s.tasks, 'task')} · ${duration(b - a)}${s.endedAt ? '' : '…'}` : `${plural(s.tasks, 'task')} · not started`;
        return html`<g class="row" data-type=${s.taskType} data-status=${tone}>
          <title>${`${s.taskType}: ${counts || 'no tasks'}${started ? `, ${duration(b - a)}` : ''}`}</title>
          ${i % 2 === 0 && html`<rect class="band" x="0" y=${y} width=${width} height=${rowH} />`}
          <text class="row-label" x="8" y=${y + rowH / 2} dominant-baseline="middle">${s.taskType.length > labelW / 6.6 ? `${s.taskType.slice(0, Math.floor(labelW / 6.6) - 1)}…` : s.taskType}</text>
          ${started && html`<rect class=${`span ${s.endedAt ? '' : 'open'}`} x=${bx} y=${y + 6} width=${bw} height=${rowH - 12} rx="4" />`}
          ${(() => {
            const tw = info.length * 5.9;
            const after = !started || bx + bw + 6 + tw <= width - 4 || bx - labelW < tw + 6;
            const tx = !started ? labelW + 4 : after ? bx + bw + 6 : bx - 6;
            return html`<text class="row-info" x=${tx} y=${y + rowH / 2} text-anchor=${after ? 'start' : 'end'} dominant-baseline="middle">${info}</text>`;
          })()}
        </g>`;
      })}
    </svg>
  </div>`;
}

function moneyTicks(max) {
  const raw = max / 3;
  const mag = 10 ** Math.floor(Math.log10(raw || 1));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((s) => s >= raw) ?? raw;
  const out = [];
  for (let v = 0; v <= max + 1e-9; v += step) out.push(v);
  return out;
}

/** Spent and reserved (stacked areas), the forecast (dashed) and the limit, over time. */
export function BudgetChart({ points, limit, live = true }) {
  const [ref, width] = useWidth();
  const pts = (points ?? []).map((p) => ({ t: toMs(p.at), spent: +p.spent || 0, reserved: +p.reserved || 0, forecast: +p.forecast || 0 }))
    .filter((p) => Number.isFinite(p.t)).sort((a, b) => a.t - b.t);
  if (!pts.length) return html`<div ref=${ref} class="empty-inline muted">No budget history yet.</div>`;
  const now = Date.now();
  const last = pts[pts.length - 1];
  // A running project's figures hold until now; a finished one's chart ends with its last change.
  if (live && last.t < now) pts.push({ ...last, t: now });
  if (pts.length === 1) pts.unshift({ ...pts[0], t: pts[0].t - 60e3 });
  const hgt = 180;
  const left = 54;
  const right = 12;
  const top = 12;
  const bottom = 24;
  const t0 = pts[0].t;
  const t1 = Math.max(t0 + 1000, pts[pts.length - 1].t);
  const ymax = Math.max(limit ?? 0, ...pts.map((p) => Math.max(p.forecast, p.spent + p.reserved)), 0.01) * 1.1;
  const x = (t) => left + ((t - t0) / (t1 - t0)) * (width - left - right);
  const y = (v) => top + (1 - v / ymax) * (hgt - top - bottom);
  // Budget figures hold until the next change: steps, not slopes.
  const stepLine = (f) => pts.map((p, i) => (i === 0 ? `M${x(p.t)},${y(f(p))}` : `H${x(p.t)} V${y(f(p))}`)).join(' ');
  const area = (hi, lo) => {
    const upper = pts.map((p, i) => (i === 0 ? `M${x(p.t)},${y(hi(p))}` : `H${x(p.t)} V${y(hi(p))}`)).join(' ');
    const rev = [...pts].reverse();
    const lower = rev.map((p, i) => (i === 0 ? `L${x(p.t)},${y(lo(p))}` : `V${y(lo(p))} H${x(p.t)}`)).join(' ');
    return `${upper} ${lower} Z`;
  };
  const { ticks, seconds } = timeTicks(t0, t1, Math.max(2, Math.floor((width - left) / 110)));
  return html`<div ref=${ref} class="chart-wrap">
    <div class="chart-legend"><span class="lg spent"><i></i>spent</span><span class="lg reserved"><i></i>reserved</span><span class="lg forecast"><i></i>forecast</span>${limit != null && html`<span class="lg limit"><i></i>limit ${money(limit)}</span>`}</div>
    <svg class="budget-chart" width=${width} height=${hgt} viewBox=${`0 0 ${width} ${hgt}`} role="img" aria-label=${`Budget over time: ${money(last.spent)} spent, ${money(last.reserved)} reserved, forecast ${money(last.forecast)}`}>
      <g class="axis">
        ${moneyTicks(ymax / 1.1).map((v) => html`<g><line class="grid" x1=${left} x2=${width - right} y1=${y(v)} y2=${y(v)} /><text class="tick" x=${left - 6} y=${y(v)} text-anchor="end" dominant-baseline="middle">${money(v)}</text></g>`)}
        ${ticks.map((t) => html`<text class="tick" x=${x(t)} y=${hgt - 6} text-anchor="middle">${clock(t, seconds)}</text>`)}
      </g>
      <path class="area-reserved" d=${area((p) => p.spent + p.reserved, (p) => p.spent)} />
      <path class="area-spent" d=${area((p) => p.spent, () => 0)} />
      <path class="line-spent" d=${stepLine((p) => p.spent)} />
      <path class="line-forecast" d=${stepLine((p) => p.forecast)} />
      ${limit != null && html`<line class="line-limit" x1=${left} x2=${width - right} y1=${y(limit)} y2=${y(limit)} />`}
    </svg>
  </div>`;
}
