// Rewrites the generated parts of README.md: the machine diagrams and the configuration table.
import { readFileSync, writeFileSync } from 'node:fs';
import { MACHINE_DIAGRAMS } from './readme.js';
import { toMermaid } from '../src/machines/mermaid.js';
import { configTable, replaceBlock, replaceDiagram, taskTypesTable } from './readme.js';

const path = new URL('../README.md', import.meta.url);
let readme = readFileSync(path, 'utf8');
for (const [name, machine] of Object.entries(MACHINE_DIAGRAMS)) readme = replaceDiagram(readme, name, toMermaid(machine));
readme = replaceBlock(readme, 'config-table', configTable());
readme = replaceBlock(readme, 'task-types', taskTypesTable());
writeFileSync(path, readme);
