import type { AnyStateMachine, AnyStateNode } from 'xstate';

/**
 * Renders a machine's top-level states and transitions as a Mermaid `stateDiagram-v2`,
 * read from the machine definition itself (so the README diagram cannot drift: a test
 * compares them). Guarded transitions carry the guard name in brackets.
 */
export function toMermaid(machine: AnyStateMachine): string {
  const root = machine.root;
  const lines = ['stateDiagram-v2'];
  const initial = root.initial?.target?.[0];
  if (initial) lines.push(`  [*] --> ${initial.key}`);
  for (const node of Object.values(root.states) as AnyStateNode[]) {
    for (const [eventType, transitions] of node.transitions) {
      for (const t of transitions) {
        const targets = t.target?.length ? t.target.map((n: AnyStateNode) => n.key) : [node.key];
        for (const target of targets) lines.push(`  ${node.key} --> ${target}: ${eventLabel(eventType)}${guardLabel(t.guard)}`);
      }
    }
    for (const t of node.always ?? []) {
      for (const target of t.target ?? []) lines.push(`  ${node.key} --> ${target.key}: always`);
    }
    if (node.type === 'final') lines.push(`  ${node.key} --> [*]`);
  }
  return lines.join('\n');
}

/** XState's generated event names, shortened: `after interval`, `done`, `error`. */
function eventLabel(eventType: string): string {
  const after = /^xstate\.after\.([^.]+)\./.exec(eventType);
  if (after) return `after ${after[1]}`;
  if (eventType.startsWith('xstate.done.actor.')) return 'done';
  if (eventType.startsWith('xstate.error.actor.')) return 'error';
  return eventType;
}

function guardLabel(guard: unknown): string {
  if (!guard) return '';
  if (typeof guard === 'string') return ` [${guard}]`;
  if (typeof guard === 'object' && guard !== null && 'type' in guard) {
    const { type, params } = guard as { type: string; params?: unknown };
    const shown = params && typeof params === 'object' ? Object.values(params).join(', ') : params;
    return ` [${type}${shown === undefined ? '' : ` ${String(shown)}`}]`;
  }
  return ' [guarded]';
}

/** A machine's definition as JSON (the format the Stately editor imports). */
export function toDefinitionJson(machine: AnyStateMachine): unknown {
  return machine.root.definition;
}
