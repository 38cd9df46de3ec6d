import type { AnyStateMachine, AnyStateNode } from 'xstate';

/**
 * Renders a machine's states and transitions as a Mermaid `stateDiagram-v2`, read from
 * the machine definition itself (so the README diagram cannot drift: a test compares
 * them). Guarded transitions carry the guard in brackets (a combined guard: the
 * transition's `description`). A parallel machine is drawn as
 * one composite state whose regions are separated by `--` (Mermaid's concurrency), each
 * region a composite state of its own.
 */
export function toMermaid(machine: AnyStateMachine): string {
  const root = machine.root;
  const lines = ['stateDiagram-v2'];
  if (root.type === 'parallel') {
    lines.push(`  state ${root.key} {`);
    const regions = Object.values(root.states) as AnyStateNode[];
    regions.forEach((region, i) => {
      if (i > 0) lines.push('    --');
      lines.push(`    state ${region.key} {`);
      lines.push(...statesOf(region, '      '));
      lines.push('    }');
    });
    lines.push('  }');
    return lines.join('\n');
  }
  lines.push(...statesOf(root, '  '));
  return lines.join('\n');
}

/** The initial state, transitions and final markers of a node's child states. */
function statesOf(parent: AnyStateNode, indent: string): string[] {
  const lines: string[] = [];
  const initial = parent.initial?.target?.[0];
  if (initial) lines.push(`${indent}[*] --> ${initial.key}`);
  for (const node of Object.values(parent.states) as AnyStateNode[]) {
    for (const [eventType, transitions] of node.transitions) {
      for (const t of transitions) {
        const targets = t.target?.length ? t.target.map((n: AnyStateNode) => n.key) : [node.key];
        for (const target of targets) lines.push(`${indent}${node.key} --> ${target}: ${eventLabel(eventType)}${guardLabel(t.guard, t.description)}`);
      }
    }
    for (const t of node.always ?? []) {
      for (const target of t.target ?? []) lines.push(`${indent}${node.key} --> ${target.key}: always${guardLabel(t.guard, t.description)}`);
    }
    if (node.type === 'final') lines.push(`${indent}${node.key} --> [*]`);
  }
  return lines;
}

/** XState's generated event names, shortened: `after interval`, `done`, `error`. */
function eventLabel(eventType: string): string {
  const after = /^xstate\.after\.([^.]+)\./.exec(eventType);
  if (after) return `after ${after[1]}`;
  if (eventType.startsWith('xstate.done.actor.')) return 'done';
  if (eventType.startsWith('xstate.error.actor.')) return 'error';
  return eventType;
}

/** A named guard with its params; a combinator (`and`, `or`, `not`, `stateIn`) by the transition's description. */
function guardLabel(guard: unknown, description: string | undefined): string {
  if (!guard) return '';
  if (typeof guard === 'string') return ` [${guard}]`;
  if (typeof guard === 'object' && guard !== null && 'type' in guard) {
    const { type, params } = guard as { type: string; params?: unknown };
    const shown = params && typeof params === 'object' ? Object.values(params).join(', ') : params;
    return ` [${type}${shown === undefined ? '' : ` ${String(shown)}`}]`;
  }
  return ` [${description ?? 'guarded'}]`;
}

/** A machine's definition as JSON (the format the Stately editor imports). */
export function toDefinitionJson(machine: AnyStateMachine): unknown {
  return machine.root.definition;
}
