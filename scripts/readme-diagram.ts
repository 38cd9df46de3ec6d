// Rewrites the Mermaid diagrams of the machines in README.md from their definitions.
import { readFileSync, writeFileSync } from 'node:fs';
import { MACHINE_DIAGRAMS } from './readme.js';
import { toMermaid } from '../src/machines/mermaid.js';
import { replaceDiagram } from './readme.js';

const path = new URL('../README.md', import.meta.url);
let readme = readFileSync(path, 'utf8');
for (const [name, machine] of Object.entries(MACHINE_DIAGRAMS)) readme = replaceDiagram(readme, name, toMermaid(machine));
writeFileSync(path, readme);
