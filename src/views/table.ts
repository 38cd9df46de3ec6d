/**
 * Aligned tables for the command line's human output: a header row in capitals, columns
 * separated by two spaces, numbers right-aligned, long cells cut with `…` (the last column
 * is never cut: it may run on). Widths count code points, so `█` and `…` take one column.
 */
export interface Column {
  header: string;
  /** Right-aligned (numbers, amounts). */
  right?: boolean;
  /** Cells longer than this are cut with `…`; default 60. */
  max?: number;
}

const width = (text: string): number => [...text].length;

export function cutText(text: string, max: number): string {
  const flat = text.replace(/\s*\n\s*/g, ' ⏎ ');
  const chars = [...flat];
  return chars.length <= max ? flat : `${chars.slice(0, Math.max(1, max - 1)).join('')}…`;
}

export function table(columns: readonly Column[], rows: readonly (readonly string[])[]): string {
  const last = columns.length - 1;
  const cells = rows.map((row) => columns.map((c, i) => (i === last ? (row[i] ?? '').replace(/\s*\n\s*/g, ' ⏎ ') : cutText(row[i] ?? '', c.max ?? 60))));
  const widths = columns.map((c, i) => Math.max(width(c.header), ...cells.map((r) => width(r[i]!))));
  const pad = (text: string, i: number): string => {
    const fill = ' '.repeat(Math.max(0, widths[i]! - width(text)));
    if (columns[i]!.right) return fill + text;
    return i === last ? text : text + fill;
  };
  const line = (r: readonly string[]) => r.map(pad).join('  ').trimEnd();
  return [line(columns.map((c) => c.header.toUpperCase())), ...cells.map(line)].join('\n');
}

export function money(n: number): string {
  return `$${n.toFixed(2)}`;
}

/** A bar of `width` cells: `done` of `total` filled. */
export function bar(done: number, total: number, cells = 10): string {
  const filled = total > 0 ? Math.round((Math.min(done, total) / total) * cells) : 0;
  return '█'.repeat(filled) + '░'.repeat(cells - filled);
}

/** `2026-12-03T07:09:47.123Z` as `2026-12-03 07:09:47Z` (seconds are enough for a person). */
export function when(iso: string | null | undefined): string {
  if (!iso) return '—';
  const m = /^(\d{4}-\d\d-\d\d)T(\d\d:\d\d:\d\d)(?:\.\d+)?(Z|[+-]\d\d:\d\d)$/.exec(iso);
  return m ? `${m[1]} ${m[2]}${m[3]}` : iso;
}

/** Wraps `text` at `cols` columns, each line indented by `indent` (paragraphs and line breaks kept). */
export function wrap(text: string, indent: string, cols = 88): string {
  const out: string[] = [];
  for (const paragraph of text.split('\n')) {
    let line = '';
    for (const word of paragraph.split(/\s+/).filter(Boolean)) {
      if (line && width(line) + 1 + width(word) > cols) {
        out.push(indent + line);
        line = word;
      } else line = line ? `${line} ${word}` : word;
    }
    out.push(indent + line);
  }
  return out.join('\n');
}
