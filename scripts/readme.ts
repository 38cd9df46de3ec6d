/** The Mermaid block of a machine between `<!-- NAME:begin -->` and `<!-- NAME:end -->`. */
export function diagramOf(readme: string, name: string): string | null {
  const match = new RegExp(`<!-- ${name}:begin -->\\n\`\`\`mermaid\\n([\\s\\S]*?)\\n\`\`\`\\n<!-- ${name}:end -->`).exec(readme);
  return match ? match[1]! : null;
}

export function replaceDiagram(readme: string, name: string, mermaid: string): string {
  const re = new RegExp(`<!-- ${name}:begin -->[\\s\\S]*?<!-- ${name}:end -->`);
  if (!re.test(readme)) throw new Error(`README has no ${name} markers`);
  return readme.replace(re, `<!-- ${name}:begin -->\n\`\`\`mermaid\n${mermaid}\n\`\`\`\n<!-- ${name}:end -->`);
}

import { taskMachine } from '../src/machines/task-machine.js';
import { projectMachine } from '../src/machines/project-machine.js';
import { schedulerMachine } from '../src/machines/scheduler-machine.js';

/** The README's diagram markers and the machines they show. */
export const MACHINE_DIAGRAMS = {
  'task-machine': taskMachine,
  'project-machine': projectMachine,
  'scheduler-machine': schedulerMachine,
} as const;

import { SETTINGS } from '../src/config/settings.js';

/** A table cell's text: a `|` would end the cell (GitHub's Markdown takes `\|`). */
const cell = (text: string) => text.replaceAll('|', '\\|');

/** The README's table of environment variables, from the settings list. */
export function configTable(): string {
  const rows = SETTINGS.map((s) => {
    const def = s.default === undefined ? '—' : typeof s.default === 'object' ? '(none)' : `\`${String(s.default)}\``;
    return `| \`${s.env}\` | ${cell(s.description)} | ${cell(s.unit)} | ${def} |`;
  });
  return ['| variable | meaning | unit | default |', '|---|---|---|---|', ...rows].join('\n');
}

/** Replaces the text between `<!-- NAME:begin -->` and `<!-- NAME:end -->`. */
export function replaceBlock(readme: string, name: string, text: string): string {
  const re = new RegExp(`<!-- ${name}:begin -->[\\s\\S]*?<!-- ${name}:end -->`);
  if (!re.test(readme)) throw new Error(`README has no ${name} markers`);
  return readme.replace(re, `<!-- ${name}:begin -->\n${text}\n<!-- ${name}:end -->`);
}

import { TaskTypeCatalog } from '../src/domain/task-types.js';

/** The README's table of the default task types, from the catalogue. */
export function taskTypesTable(): string {
  const catalog = new TaskTypeCatalog();
  const rows = catalog.list().map((t) => {
    const timeout = t.timeoutMs ? `${t.timeoutMs / 60_000} min` : 'TASK_TIMEOUT';
    return `| \`${t.name}\` | ${t.agent} | ${t.priority} | ${timeout} | ${catalog.estimateCost(t.name).toFixed(2)} | ${t.description} |`;
  });
  return ['| task type | agent | priority | timeout | estimate (default input) | what it does |', '|---|---|---|---|---|---|', ...rows].join('\n');
}
