import { z } from 'zod';
import { StorableText } from './storable.js';

/**
 * What a task's output may name as something to look at: `output.artifacts`, an array of
 * `{ uri, mediaType, shotIndex?, title? }` (the data contract). Checked where results are
 * (TaskResult): an output whose `artifacts` breaks this is a schema violation, dead-lettered
 * on its first delivery. An output without `artifacts` is not looked at.
 */

/** Entries `output.artifacts` may hold. */
export const MAX_OUTPUT_ARTIFACTS = 100;
/** Characters of a URI other than a `data:` one (a `data:` URI is bounded by the message alone: MAX_PAYLOAD_BYTES). */
export const ARTIFACT_URI_MAX = 2_000;
export const ARTIFACT_MEDIA_TYPE_MAX = 100;
export const ARTIFACT_TITLE_MAX = 200;

/** `https:`, `data:`, `s3:`…: RFC 3986's scheme, then a colon. */
const SCHEME = /^([A-Za-z][A-Za-z0-9+.-]*):/;
/** `type/subtype` (RFC 6838's restricted names). */
const MEDIA_TYPE = /^[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]*\/[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]*$/;
const CONTROL = /[\u0000-\u001f\u007f]/;

/** The URI's scheme, lower case (`https`, `data`…), or null for a path. */
export function uriScheme(uri: string): string | null {
  const found = SCHEME.exec(uri);
  return found ? found[1]!.toLowerCase() : null;
}

/**
 * Whether a path's segments (split on `/` and `\`, each percent-decoded as well as taken
 * as it is) include `..`: a way out of the folder it is read under.
 */
export function climbsOut(path: string): boolean {
  return path.split(/[/\\]/).some((segment) => segment === '..' || decoded(segment) === '..');
}

function decoded(segment: string): string | null {
  try {
    return decodeURIComponent(segment);
  } catch {
    return null;
  }
}

/** Why `uri` is not one an artifact may have, or null when it may. */
export function artifactUriProblem(uri: string): string | null {
  if (uri.length === 0) return 'expected a URI, got an empty string';
  const scheme = uriScheme(uri);
  if (scheme === 'data') return /^data:[^,]*,/i.test(uri) ? null : 'a data: URI needs a comma before its data (data:<media type>[;base64],<data>)';
  if (uri.length > ARTIFACT_URI_MAX) return `longer than ${ARTIFACT_URI_MAX} characters (${uri.length}); only a data: URI may be longer`;
  if (CONTROL.test(uri)) return 'contains a control character';
  if (scheme !== null) return null;
  if (uri.startsWith('/') || uri.startsWith('\\')) return 'expected a URI with a scheme (https:, data:, s3:, file:…) or a relative path, got an absolute path';
  if (climbsOut(uri)) return 'a relative path may not have a .. segment';
  return null;
}

export const ArtifactUri = StorableText.superRefine((uri, ctx) => {
  const problem = artifactUriProblem(uri);
  if (problem) ctx.addIssue({ code: 'custom', message: problem });
});

export const OutputArtifact = z.object({
  /** `https://…`, `data:image/svg+xml;base64,…`, `s3://…`, `file:///…`, or a path relative to the artifacts folder. */
  uri: ArtifactUri,
  /** `image/png`, `video/mp4`, `text/plain`… */
  mediaType: StorableText.max(ARTIFACT_MEDIA_TYPE_MAX).regex(MEDIA_TYPE, 'expected a media type type/subtype, such as image/png'),
  /** The shot it shows (an index of the shot plan). */
  shotIndex: z.number().int().nonnegative().optional(),
  title: StorableText.max(ARTIFACT_TITLE_MAX).optional(),
});
export type OutputArtifact = z.infer<typeof OutputArtifact>;

export const OutputArtifacts = z.array(OutputArtifact).max(MAX_OUTPUT_ARTIFACTS);
export type OutputArtifacts = z.infer<typeof OutputArtifacts>;

/**
 * The issues of an output's `artifacts` (none when it has none), with their paths from the
 * output (`artifacts.3.uri`) and a message naming the entry (its index, and its URI when it
 * has one).
 */
export function outputArtifactsIssues(output: Record<string, unknown>): { path: (string | number)[]; message: string }[] {
  if (!('artifacts' in output) || output.artifacts === undefined) return [];
  const parsed = OutputArtifacts.safeParse(output.artifacts);
  if (parsed.success) return [];
  const entries = Array.isArray(output.artifacts) ? (output.artifacts as unknown[]) : [];
  return parsed.error.issues.map((issue) => {
    const path = issue.path as (string | number)[];
    const index = typeof path[0] === 'number' ? path[0] : null;
    const message =
      index === null
        ? `expected an array of at most ${MAX_OUTPUT_ARTIFACTS} { uri, mediaType, shotIndex?, title? }: ${issue.message}`
        : `artifact ${index}${named(entries[index])}: ${issue.message}`;
    return { path: ['artifacts', ...path], message };
  });
}

/** ` (uri "s3://…")` when the entry has a string uri, cut to 80 characters. */
function named(entry: unknown): string {
  const uri = typeof entry === 'object' && entry !== null ? (entry as { uri?: unknown }).uri : undefined;
  if (typeof uri !== 'string') return '';
  const shown = uri.length > 80 ? `${uri.slice(0, /[\uD800-\uDBFF]/.test(uri[79]!) ? 79 : 80)}…` : uri;
  return ` (uri ${JSON.stringify(shown)})`;
}
