import { describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { taskMachine } from '../../src/machines/task-machine.js';
import { toMermaid } from '../../src/machines/mermaid.js';
import { diagramOf } from '../../scripts/readme.js';

describe('README', () => {
  const readme = readFileSync(new URL('../../README.md', import.meta.url), 'utf8');

  it('shows the task machine exactly as defined (run `npm run docs:machines` to update)', () => {
    expect(diagramOf(readme, 'task-machine')).toBe(toMermaid(taskMachine));
  });

  it('opens with the two commands of a new user', () => {
    const start = readme.slice(0, 400);
    expect(start).toContain('npm ci && npm run demo');
    expect(start).toContain('npm ci && npm test');
  });
});
