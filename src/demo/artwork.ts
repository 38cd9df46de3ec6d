/**
 * Demo artwork: SVG pictures drawn from a shot's description, so that the review console
 * has something real to show when the agents are simulated (SimulatedAgents' `artwork`).
 * Pure string builders: the same description always gives the same picture. Every text
 * taken from a shot or a title is XML-escaped (it is agent and user text); nothing runs a
 * script (the preview is animated with SMIL).
 */

/** A shot as the pictures read it: any object; `description` (else `prompt`) and `durationSeconds` are used when they are there. */
export type ArtworkShot = unknown;

export interface ArtworkOptions {
  /** A line shown across the top (a revision: `revised: darker ending`). */
  note?: string;
}

export interface PreviewOptions extends ArtworkOptions {
  /** The final render: a FINAL badge and an audio wave. */
  final?: boolean;
}

const W = 640;
const H = 360;
/** Seconds a shot is shown when it names no (valid) durationSeconds. */
export const DEFAULT_SHOT_SECONDS = 4;

// ---------------------------------------------------------------------------------------
// Text

/** Characters XML 1.0 does not allow even escaped (C0 controls but tab and newlines, U+FFFE/F) and unpaired surrogates. */
const NOT_XML = /[\u0000-\u0008\u000b\u000c\u000e-\u001f\ufffe\uffff]|[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/g;
const ENTITIES: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&apos;' };

/** `text` as XML character data or an attribute value: markup escaped, characters XML refuses replaced by U+FFFD. */
export function escapeXml(text: string): string {
  return text.replace(NOT_XML, '\ufffd').replace(/[&<>"']/g, (c) => ENTITIES[c]!);
}

/** At most `max` code points of `text` (an ellipsis when it was longer), whitespace runs as one space. */
function cut(text: string, max: number): string {
  const flat = text.replace(/\s+/g, ' ').trim();
  if (flat.length <= max) return flat;
  const points = Array.from(flat);
  return points.length <= max ? flat : `${points.slice(0, max - 1).join('').trimEnd()}…`;
}

/** `text` in at most `lines` lines of at most `width` characters, broken at spaces, the last one cut. */
function wrap(text: string, width: number, lines: number): string[] {
  const words = cut(text, width * lines + 1).split(' ');
  const out: string[] = [];
  let line = '';
  for (const word of words) {
    if (line && line.length + 1 + word.length > width) {
      out.push(line);
      line = word;
    } else line = line ? `${line} ${word}` : word;
  }
  if (line) out.push(line);
  if (out.length <= lines) return out.map((l) => cut(l, width));
  return [...out.slice(0, lines - 1), cut(`${out[lines - 1]!} ${out.slice(lines).join(' ')}`, width)];
}

/** The description a shot is drawn from: its `description`, else its `prompt`, else "Shot n". */
export function shotDescription(shot: ArtworkShot, index: number): string {
  if (typeof shot === 'string' && shot.trim()) return shot;
  if (typeof shot === 'object' && shot !== null) {
    const { description, prompt } = shot as { description?: unknown; prompt?: unknown };
    if (typeof description === 'string' && description.trim()) return description;
    if (typeof prompt === 'string' && prompt.trim()) return prompt;
  }
  return `Shot ${index + 1}`;
}

/** The seconds a shot lasts: its `durationSeconds` when a positive number (at most 600), else DEFAULT_SHOT_SECONDS. */
export function shotSeconds(shot: ArtworkShot): number {
  const d = typeof shot === 'object' && shot !== null ? (shot as { durationSeconds?: unknown }).durationSeconds : undefined;
  return typeof d === 'number' && Number.isFinite(d) && d > 0 ? Math.min(d, 600) : DEFAULT_SHOT_SECONDS;
}

// ---------------------------------------------------------------------------------------
// Drawing

/** FNV-1a, 32 bits. */
function hash(text: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

/** mulberry32: numbers in [0, 1) from a seed. */
function randomFrom(seed: number): () => number {
  let a = seed;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296;
  };
}

interface Palette {
  /** The id of its sky's gradient. */
  id: string;
  skyTop: string;
  skyBottom: string;
  sea: string;
  land: string;
  light: string;
  ink: string;
}

const DAY: Palette[] = [
  { id: 'd0', skyTop: '#7ec8f2', skyBottom: '#e8f6ff', sea: '#2f7fb5', land: '#6b8f4e', light: '#ffd75e', ink: '#263238' },
  { id: 'd1', skyTop: '#f4a261', skyBottom: '#ffe8c2', sea: '#3d6f8e', land: '#8a6d3b', light: '#fff1a8', ink: '#3b2a1a' },
  { id: 'd2', skyTop: '#9ad1c6', skyBottom: '#f1fbf7', sea: '#1f7a7a', land: '#5d7f4f', light: '#fff4c4', ink: '#1d3330' },
  { id: 'd3', skyTop: '#c49bd8', skyBottom: '#ffe0ec', sea: '#5a5f9e', land: '#6e5a7e', light: '#ffe6a0', ink: '#2d2240' },
];
const NIGHT: Palette[] = [
  { id: 'n0', skyTop: '#0b1026', skyBottom: '#27325e', sea: '#101a3a', land: '#151a28', light: '#f4f1d0', ink: '#05070f' },
  { id: 'n1', skyTop: '#120c2c', skyBottom: '#3a2f6b', sea: '#171338', land: '#1c1830', light: '#e9e4ff', ink: '#07050f' },
];
const STORM: Palette = { id: 'st', skyTop: '#3b4250', skyBottom: '#7d8694', sea: '#2f3b46', land: '#343a40', light: '#dfe6ee', ink: '#15191d' };
const DUSK: Palette = { id: 'du', skyTop: '#3d2c6b', skyBottom: '#f28c5a', sea: '#3b3f73', land: '#3a2d3f', light: '#ffcf73', ink: '#1b1424' };

/** What a description asks for, by its words. */
function motifs(description: string) {
  const has = (re: RegExp) => re.test(description);
  return {
    night: has(/\b(night|moon\w*|midnight|stars?|darkness)\b/i),
    dusk: has(/\b(dusk|sunset|twilight|evening|dawn|sunrise)\b/i),
    storm: has(/\b(storm\w*|rain\w*|lightning|thunder\w*|gale|tempest)\b/i),
    sea: has(/\b(sea|ocean|waves?|surf|tide|water|boat|shore|beach|bottle)\b/i),
    lighthouse: has(/\b(lighthouse|lamp|beacon|tower|gallery)\b/i),
    bottle: has(/\b(bottle|letter|message)\b/i),
    figure: has(/\b(keeper|man|woman|girl|boy|child|figure|person|she|he|sailor)\b/i),
    boat: has(/\b(boat|ship|sail\w*|fisherm[ae]n)\b/i),
    gulls: has(/\b(gulls?|birds?)\b/i),
    beach: has(/\b(beach|sand|shore)\b/i),
  };
}

const n = (x: number) => Math.round(x).toString();

/**
 * The picture of one description, in a 640×360 box, and the palette its sky's gradient is
 * from (the document defines each gradient once: see skies).
 */
function scene(description: string): { body: string; palette: Palette } {
  const seed = hash(description);
  const rnd = randomFrom(seed);
  const m = motifs(description);
  const p = m.storm ? STORM : m.night ? NIGHT[seed % NIGHT.length]! : m.dusk ? DUSK : DAY[seed % DAY.length]!;
  const horizon = 210 + Math.floor(rnd() * 50);
  const parts: string[] = [];
  parts.push(`<rect width="${W}" height="${H}" fill="url(#${p.id})"/>`);
  if (m.night && !m.storm) {
    const stars: string[] = [];
    for (let i = 0; i < 12; i++) stars.push(`M${n(rnd() * W)} ${n(rnd() * (horizon - 40))}h1.6`);
    parts.push(`<path d="${stars.join('')}" stroke="#fff" stroke-width="1.6" stroke-linecap="round" opacity=".8"/>`);
  }
  // The sun or the moon (none in a storm).
  if (!m.storm) {
    const cx = n(80 + rnd() * 480);
    const cy = n(50 + rnd() * (horizon - 110));
    if (m.night) parts.push(`<circle cx="${cx}" cy="${cy}" r="22" fill="${p.light}"/><circle cx="${n(Number(cx) + 9)}" cy="${n(Number(cy) - 6)}" r="19" fill="${p.skyTop}"/>`);
    else parts.push(`<circle cx="${cx}" cy="${cy}" r="${m.dusk ? 34 : 26}" fill="${p.light}" opacity=".95"/>`);
  } else {
    const clouds: string[] = [];
    for (let i = 0; i < 5; i++) clouds.push(`<ellipse cx="${n(rnd() * W)}" cy="${n(30 + rnd() * 60)}" rx="${n(70 + rnd() * 60)}" ry="${n(18 + rnd() * 14)}"/>`);
    parts.push(`<g fill="#22262c" opacity=".55">${clouds.join('')}</g>`);
    const x = 120 + rnd() * 400;
    parts.push(`<path d="M${n(x)} 70l-18 46h14l-12 44 34-58h-15l14-32z" fill="#fff6b0"/>`);
  }
  // The sea, or land.
  if (m.sea || m.lighthouse || !m.figure) {
    parts.push(`<rect y="${horizon}" width="${W}" height="${H - horizon}" fill="${p.sea}"/>`);
    const waves: string[] = [];
    for (let row = 0; row < 4; row++) {
      const y = horizon + 14 + row * ((H - horizon) / 4);
      const x0 = rnd() * 60;
      waves.push(`M${n(x0)} ${n(y)}q20 -6 40 0${'t40 0'.repeat(14)}`);
    }
    parts.push(`<path d="${waves.join('')}" fill="none" stroke="#fff" stroke-width="1.5" opacity="${m.storm ? '.5' : '.25'}"/>`);
  } else {
    parts.push(`<path d="M0 ${horizon}q160 -${n(20 + rnd() * 30)} 320 0t320 0V${H}H0z" fill="${p.land}"/>`);
  }
  if (m.beach) parts.push(`<path d="M0 ${H}V${H - 50}q200 -30 420 10t220 10V${H}z" fill="#e3c98f"/>`);
  // A cliff with the lighthouse (and where a figure stands on it).
  let cliffTop: { x: number; y: number } | null = null;
  if (m.lighthouse) {
    const left = rnd() < 0.5;
    const base = left ? 90 + rnd() * 80 : 470 + rnd() * 80;
    const top = horizon - 30;
    const cliff = left ? `M0 ${H}V${top}h${n(base + 60)}l40 ${H - top}z` : `M${W} ${H}V${top}H${n(base - 60)}l-40 ${H - top}z`;
    parts.push(`<path d="${cliff}" fill="${p.land}"/>`);
    cliffTop = { x: base + (left ? 38 : -38), y: top };
    const towerTop = top - 120;
    if (m.night || m.storm || m.dusk) {
      const dir = left ? 1 : -1;
      parts.push(`<path d="M${n(base)} ${towerTop - 12}l${dir * 420} -60v110z" fill="${p.light}" opacity=".28"/>`);
    }
    parts.push(
      `<path d="M${n(base - 18)} ${top}l6 -120h24l6 120z" fill="#f5f5f0"/>`,
      `<path d="M${n(base - 16)} ${top - 30}h32l-1.5 -22h-29zM${n(base - 13.5)} ${top - 78}h27l-1 -20h-25z" fill="#c0392b"/>`,
      `<rect x="${n(base - 10)}" y="${towerTop - 22}" width="20" height="20" fill="${p.light}"/>`,
      `<path d="M${n(base - 15)} ${towerTop - 22}h30l-15 -14z" fill="${p.ink}"/>`,
    );
  }
  if (m.boat) {
    const x = 200 + rnd() * 240;
    const y = horizon + 20;
    parts.push(`<path d="M${n(x)} ${y}h60l-10 12h-40z" fill="${p.ink}"/><path d="M${n(x + 30)} ${y - 2}v-44l26 42z" fill="#f8f4ea"/>`);
  }
  if (m.bottle) {
    const x = 260 + rnd() * 160;
    const y = m.beach ? H - 40 : horizon + 40;
    const tilt = n(-30 + rnd() * 60);
    parts.push(
      `<g transform="translate(${n(x)} ${y}) rotate(${tilt})"><rect x="-8" y="-26" width="16" height="30" rx="5" fill="#3fa66b" opacity=".85"/><rect x="-3.5" y="-38" width="7" height="14" fill="#3fa66b" opacity=".85"/><rect x="-4" y="-42" width="8" height="5" fill="#8d6e63"/><rect x="-4" y="-18" width="8" height="14" fill="#f3e9d2"/></g>`,
    );
  }
  if (m.figure) {
    const onCliff = cliffTop !== null && !m.beach && !m.boat;
    const x = onCliff ? cliffTop!.x : 140 + rnd() * 360;
    const y = onCliff ? cliffTop!.y : m.beach ? H - 46 : horizon + 2;
    parts.push(`<g fill="${p.ink}"><circle cx="${n(x)}" cy="${y - 52}" r="8"/><path d="M${n(x - 10)} ${y}l3 -42h14l3 42h-7l-3 -24l-3 24z"/></g>`);
  }
  if (m.gulls) {
    const gulls: string[] = [];
    for (let i = 0; i < 4; i++) gulls.push(`M${n(100 + rnd() * 440)} ${n(60 + rnd() * 80)}q6 -7 12 0q6 -7 12 0`);
    parts.push(`<path d="${gulls.join('')}" fill="none" stroke="${p.ink}" stroke-width="2"/>`);
  }
  if (m.storm) {
    const rain: string[] = [];
    for (let i = 0; i < 16; i++) rain.push(`M${n(rnd() * W)} ${n(rnd() * H)}l-6 16`);
    parts.push(`<path d="${rain.join('')}" stroke="#dfe6ee" stroke-width="1.2" opacity=".6"/>`);
  }
  return { body: parts.join(''), palette: p };
}

/** The sky gradients of these scenes' palettes, each once. */
function skies(scenes: readonly { palette: Palette }[]): string {
  const palettes = [...new Set(scenes.map((s) => s.palette))];
  const gradients = palettes.map((p) => `<linearGradient id="${p.id}" x2="0" y2="1"><stop offset="0" stop-color="${p.skyTop}"/><stop offset="1" stop-color="${p.skyBottom}"/></linearGradient>`);
  return `<defs>${gradients.join('')}</defs>`;
}

/** The caption band: `SHOT n · title` (and `extra` on the right), the description in two lines. */
function caption(description: string, index: number, title: string | undefined, extra = ''): string {
  const heading = `SHOT ${index + 1}${title ? ` · ${cut(title, 60)}` : ''}`;
  const lines = wrap(description, 92, 2);
  return (
    `<rect y="298" width="${W}" height="62" fill="#000" opacity=".6"/>` +
    `<text x="14" y="316" class="h">${escapeXml(heading)}${extra ? `<tspan x="626" text-anchor="end">${escapeXml(extra)}</tspan>` : ''}</text>` +
    lines.map((line, i) => `<text x="14" y="${334 + i * 16}" class="d">${escapeXml(line)}</text>`).join('')
  );
}

function banner(note: string | undefined): string {
  if (!note) return '';
  return `<rect width="${W}" height="26" fill="#c0392b" opacity=".9"/><text x="14" y="18" class="h">${escapeXml(cut(note, 90))}</text>`;
}

const STYLE = '<style>.h{font:700 13px sans-serif;fill:#fff}.d{font:12px sans-serif;fill:#eee}.t{font:700 20px sans-serif;fill:#222}.c{font:11px sans-serif;fill:#333}</style>';

function open(width: number, height: number, label: string): string {
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" role="img" aria-label="${escapeXml(cut(label, 200))}">${STYLE}`;
}

/** The keyframe of shot `index` (0-based), 640×360: drawn from its description, captioned with the shot number, the title and the description. */
export function keyframeSvg(shot: ArtworkShot, index: number, title?: string, options: ArtworkOptions = {}): string {
  const description = shotDescription(shot, index);
  const drawn = scene(description);
  return (
    open(W, H, `Shot ${index + 1}: ${description}`) +
    `<title>${escapeXml(`Shot ${index + 1}${title ? ` · ${cut(title, 200)}` : ''}`)}</title><desc>${escapeXml(cut(description, 500))}</desc>` +
    skies([drawn]) +
    drawn.body +
    banner(options.note) +
    caption(description, index, title) +
    '</svg>'
  );
}

/** One sheet with a panel per shot (the keyframe's drawing, scaled), each captioned under it. */
export function storyboardSheetSvg(shots: readonly ArtworkShot[], title?: string, options: ArtworkOptions = {}): string {
  const pw = 240;
  const ph = 135;
  const gap = 16;
  const cols = Math.max(1, Math.min(4, shots.length));
  const rows = Math.max(1, Math.ceil(shots.length / cols));
  const top = options.note ? 74 : 52;
  const cell = ph + 44;
  const width = cols * pw + (cols + 1) * gap;
  const height = top + rows * cell + gap;
  const heading = `Storyboard${title ? ` · ${cut(title, 80)}` : ''} — ${shots.length} shot${shots.length === 1 ? '' : 's'}`;
  const drawn = shots.map((shot, i) => scene(shotDescription(shot, i)));
  const panels = shots.map((shot, i) => {
    const x = gap + (i % cols) * (pw + gap);
    const y = top + Math.floor(i / cols) * cell;
    const lines = wrap(shotDescription(shot, i), 40, 2);
    return (
      `<svg x="${x}" y="${y}" width="${pw}" height="${ph}" viewBox="0 0 ${W} ${H}">${drawn[i]!.body}</svg>` +
      `<rect x="${x}" y="${y}" width="${pw}" height="${ph}" fill="none" stroke="#333"/>` +
      `<text x="${x}" y="${y + ph + 15}" class="c"><tspan font-weight="700">${i + 1}.</tspan> ${escapeXml(lines[0] ?? '')}</text>` +
      (lines[1] ? `<text x="${x}" y="${y + ph + 29}" class="c">${escapeXml(lines[1])}</text>` : '')
    );
  });
  return (
    open(width, height, heading) +
    `<title>${escapeXml(heading)}</title>` +
    skies(drawn) +
    `<rect width="${width}" height="${height}" fill="#faf7f0"/>` +
    `<text x="${gap}" y="34" class="t">${escapeXml(heading)}</text>` +
    (options.note ? `<text x="${gap}" y="58" class="c" fill="#c0392b">${escapeXml(cut(options.note, 100))}</text>` : '') +
    panels.join('') +
    '</svg>'
  );
}

/** m:ss */
function clock(seconds: number): string {
  const s = Math.round(seconds);
  return `${Math.floor(s / 60)}:${String(s % 60).padStart(2, '0')}`;
}

/** Seconds (or a fraction of a loop) to three decimals. */
const fine = (x: number) => (Math.round(x * 1_000) / 1_000).toString();

/** The final's audio wave: bars pulsing (CSS keyframes, each bar its own phase). */
const WAVE =
  '<style>.w rect{transform-box:fill-box;transform-origin:50% 100%;animation:w .9s ease-in-out infinite alternate}@keyframes w{from{transform:scaleY(.25)}to{transform:scaleY(1)}}</style>' +
  `<g class="w" fill="#fff" opacity=".75">${Array.from({ length: 20 }, (_, i) => {
    const h = [14, 24, 30, 18, 26, 10, 22][i % 7]!;
    return `<rect x="${440 + i * 9}" y="${292 - h}" width="5" height="${h}" style="animation-delay:-${fine((i * 0.37) % 0.9)}s"/>`;
  }).join('')}</g>`;

/**
 * The "preview video": an animated SVG (SMIL, no script) showing each shot's frame for its
 * `durationSeconds` (default 4 s) in turn, looping, with a progress bar. Without SMIL (a
 * static render) it shows the first frame. `final`: the final render (a FINAL badge, an
 * audio wave).
 */
export function previewSvg(shots: readonly ArtworkShot[], title?: string, options: PreviewOptions = {}): string {
  const seconds = shots.map(shotSeconds);
  const total = seconds.reduce((a, b) => a + b, 0) || DEFAULT_SHOT_SECONDS;
  const dur = `${fine(total)}s`;
  const label = `${options.final ? 'Final' : 'Preview'}${title ? ` · ${cut(title, 80)}` : ''} — ${shots.length} shot${shots.length === 1 ? '' : 's'}, ${clock(total)}`;
  const drawn = shots.map((shot, i) => scene(shotDescription(shot, i)));
  let start = 0;
  const frames = shots.map((shot, i) => {
    const from = start / total;
    start += seconds[i]!;
    const to = start / total;
    const description = shotDescription(shot, i);
    // Discrete: shown from `from` to `to` of each loop.
    const [values, keyTimes] =
      shots.length === 1 ? ['1', '0'] : i === 0 ? ['1;0', `0;${fine(to)}`] : i === shots.length - 1 ? ['0;1', `0;${fine(from)}`] : ['0;1;0', `0;${fine(from)};${fine(to)}`];
    return (
      `<g class="frame" opacity="${i === 0 ? 1 : 0}">` +
      `<animate attributeName="opacity" calcMode="discrete" values="${values}" keyTimes="${keyTimes}" dur="${dur}" repeatCount="indefinite"/>` +
      drawn[i]!.body +
      caption(description, i, title, `${i + 1}/${shots.length} · ${clock(start - seconds[i]!)}–${clock(start)}`) +
      '</g>'
    );
  });
  const badge = options.final ? `<rect x="${W - 86}" y="10" width="76" height="26" rx="4" fill="#c0392b"/><text x="${W - 48}" y="28" class="h" text-anchor="middle">FINAL</text>` : '';
  return (
    open(W, H, label) +
    `<title>${escapeXml(label)}</title>` +
    skies(drawn) +
    `<rect width="${W}" height="${H}" fill="#000"/>` +
    (frames.length ? frames.join('') : `<text x="${W / 2}" y="${H / 2}" class="h" text-anchor="middle">no shots</text>`) +
    banner(options.note) +
    (options.final ? WAVE : '') +
    badge +
    `<rect y="${H - 4}" width="${W}" height="4" fill="#fff" opacity=".25"/>` +
    `<rect y="${H - 4}" width="0" height="4" fill="#e74c3c"><animate attributeName="width" from="0" to="${W}" dur="${dur}" repeatCount="indefinite"/></rect>` +
    '</svg>'
  );
}

/** `data:image/svg+xml;base64,…` */
export function dataUri(svg: string): string {
  return `data:image/svg+xml;base64,${Buffer.from(svg, 'utf8').toString('base64')}`;
}
