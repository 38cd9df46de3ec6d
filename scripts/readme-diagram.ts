// Rewrites the Mermaid diagram of the task machine in README.md from the machine definition.
import { readFileSync, writeFileSync } from 'node:fs';
import { taskMachine } from '../src/machines/task-machine.js';
import { toMermaid } from '../src/machines/mermaid.js';
import { replaceDiagram } from './readme.js';

const path = new URL('../README.md', import.meta.url);
writeFileSync(path, replaceDiagram(readFileSync(path, 'utf8'), 'task-machine', toMermaid(taskMachine)));
