import { describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { toMermaid } from '../../src/machines/mermaid.js';
import { configTable, diagramOf, MACHINE_DIAGRAMS, taskTypesTable } from '../../scripts/readme.js';

describe('README', () => {
  const readme = readFileSync(new URL('../../README.md', import.meta.url), 'utf8');

  for (const [name, machine] of Object.entries(MACHINE_DIAGRAMS)) {
    it(`shows the ${name} exactly as defined (run \`npm run docs\` to update)`, () => {
      expect(diagramOf(readme, name)).toBe(toMermaid(machine));
    });
  }

  it('documents every environment variable as the settings define it (run `npm run docs`)', () => {
    expect(readme).toContain(`<!-- config-table:begin -->\n${configTable()}\n<!-- config-table:end -->`);
  });

  it('lists the default task types as the catalogue defines them', () => {
    expect(readme).toContain(`<!-- task-types:begin -->\n${taskTypesTable()}\n<!-- task-types:end -->`);
  });

  it('opens with the two commands of a new user', () => {
    const start = readme.slice(0, 400);
    expect(start).toContain('npm ci && npm run demo');
    expect(start).toContain('npm ci && npm test');
  });
});
