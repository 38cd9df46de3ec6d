import { z } from 'zod';

/**
 * What PostgreSQL can store, checked at the edge (the inbound schemas) so that a value the
 * database would refuse is a schema violation — dead-lettered on its first delivery — and
 * not a database error on every delivery:
 *
 * - strings without NUL (U+0000: TEXT refuses it, and JSONB refuses `\u0000`) and without
 *   unpaired UTF-16 surrogates (JSONB refuses `\ud800` alone; TEXT would store U+FFFD in
 *   its place), in every string, object keys included;
 * - JSON objects and arrays nested at most MAX_JSON_DEPTH levels deep (deeper ones make
 *   `JSON.stringify` and PostgreSQL's JSON parser run out of stack).
 *
 * Amounts are checked against their NUMERIC columns where their schemas are (task.ts Money,
 * BudgetLimit).
 */

/** Levels of objects and arrays a JSON value may nest (the value itself is level 1 when it is one). */
export const MAX_JSON_DEPTH = 64;

/** A NUL or a surrogate code unit: the characters to look at more closely. */
const SUSPECT = /[\u0000\uD800-\uDFFF]/;
/** A NUL, a high surrogate not followed by a low one, or a low surrogate not preceded by a high one. */
const UNSTORABLE = /\u0000|[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

/** Why PostgreSQL cannot store `text`, or null when it can. */
export function textProblem(text: string): string | null {
  if (!SUSPECT.test(text)) return null;
  const found = UNSTORABLE.exec(text);
  if (!found) return null;
  return found[0] === '\u0000'
    ? 'contains a NUL character (\\u0000), which PostgreSQL cannot store'
    : `contains an unpaired UTF-16 surrogate (\\u${found[0].charCodeAt(0).toString(16)}), which PostgreSQL cannot store`;
}

/** A string PostgreSQL can store (no NUL, no unpaired surrogate). */
export const StorableText = z.string().superRefine((text, ctx) => {
  const problem = textProblem(text);
  if (problem) ctx.addIssue({ code: 'custom', message: problem });
});

/**
 * The first thing in `value` PostgreSQL could not store as JSONB — a string or key (see
 * textProblem), with its path, or nesting deeper than `maxDepth` (reported at the root) —
 * or null when there is none. Stops at the depth limit, so any depth is safe to check
 * (the recursion is at most `maxDepth` calls deep).
 */
export function jsonProblem(value: unknown, maxDepth = MAX_JSON_DEPTH): { path: (string | number)[]; message: string } | null {
  const found = walk(value, 0, maxDepth);
  return found && { path: found.path.reverse(), message: found.message };
}

interface Found {
  /** From the problem up to the root (reversed at the end). */
  path: (string | number)[];
  message: string;
  atRoot: boolean;
}

function walk(value: unknown, depth: number, maxDepth: number): Found | null {
  if (typeof value === 'string') {
    const problem = textProblem(value);
    return problem ? { path: [], message: problem, atRoot: false } : null;
  }
  if (value === null || typeof value !== 'object') return null;
  if (depth >= maxDepth) return { path: [], message: `nested deeper than ${maxDepth} levels of objects and arrays`, atRoot: true };
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) {
      const found = walk(value[i], depth + 1, maxDepth);
      if (found) return within(found, i);
    }
    return null;
  }
  const record = value as Record<string, unknown>;
  for (const key of Object.keys(record)) {
    const problem = textProblem(key);
    if (problem) return { path: [], message: `key ${JSON.stringify(key)} ${problem}`, atRoot: false };
    const found = walk(record[key], depth + 1, maxDepth);
    if (found) return within(found, key);
  }
  return null;
}

function within(found: Found, step: string | number): Found {
  if (!found.atRoot) found.path.push(step);
  return found;
}

/** A JSON object PostgreSQL can store as JSONB: storable strings and keys, at most MAX_JSON_DEPTH levels. */
export const StorableJsonObject = z.record(z.string(), z.unknown()).superRefine((object, ctx) => {
  const problem = jsonProblem(object);
  if (problem) ctx.addIssue({ code: 'custom', path: problem.path, message: problem.message });
});
