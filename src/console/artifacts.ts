import { ARTIFACT_URI_MAX, MAX_OUTPUT_ARTIFACTS, OutputArtifact, uriScheme } from '../domain/artifacts.js';
import type { ArtifactView } from '../ports/console.js';

/**
 * What the review console shows of a task's output: its artifacts, recognised (which
 * fields name something to look at, what it is) and resolved (where a browser loads it).
 * Pure: the one hook with effects is the ArtifactResolver an embedder passes.
 */

/**
 * Where a browser loads an artifact, or null when it cannot: an embedder's hook, to sign
 * URLs (an `s3://` URI → a presigned `https://` one). The default is resolveHref.
 */
export type ArtifactResolver = (artifact: { uri: string; mediaType: string }) => string | null | Promise<string | null>;

/** An artifact as recognised, before it is resolved. */
export type RecognisedArtifact = Omit<ArtifactView, 'href'>;

/** The output fields that name an image or a video whatever their URI looks like (a relative path too). */
const MEDIA_FIELDS = ['image', 'video', 'preview'] as const;
/** A URI among the other fields: `scheme://…` (as the operator's task query recognises them), or a data: URI. */
const URI = /^[a-z][a-z0-9+.-]*:\/\/\S+$/i;
const DATA_URI = /^data:[^,]*,/i;

const BY_EXTENSION: Record<string, string> = {
  png: 'image/png',
  jpg: 'image/jpeg',
  jpeg: 'image/jpeg',
  webp: 'image/webp',
  gif: 'image/gif',
  svg: 'image/svg+xml',
  mp4: 'video/mp4',
  webm: 'video/webm',
  mov: 'video/quicktime',
  txt: 'text/plain',
  md: 'text/plain',
};
const UNKNOWN = 'application/octet-stream';

/** The media type a URI says it has: its data: prefix, or its file extension. */
export function guessMediaType(uri: string): string {
  if (uriScheme(uri) === 'data') {
    const declared = /^data:([^;,]*)/i.exec(uri)![1]!.trim().toLowerCase();
    // RFC 2397: no media type is text/plain.
    return declared === '' ? 'text/plain' : declared;
  }
  // The last segment of the path, without a query or a fragment.
  const path = uri.replace(/[?#].*$/s, '');
  const last = path.slice(path.lastIndexOf('/') + 1);
  const dot = last.lastIndexOf('.');
  if (dot === -1) return UNKNOWN;
  return BY_EXTENSION[last.slice(dot + 1).toLowerCase()] ?? UNKNOWN;
}

function shotIndexOf(value: unknown): number | undefined {
  return typeof value === 'number' && Number.isInteger(value) && value >= 0 ? value : undefined;
}

/**
 * The artifacts a task's output names, each once (by URI; the first naming wins): the
 * entries of `output.artifacts` (entries that break the contract are left out: a result's
 * are checked when it arrives, older rows are not), then the `image`, `video` and `preview`
 * fields, then any other top-level string field that is a URI (`scheme://…` or `data:`);
 * at most MAX_OUTPUT_ARTIFACTS of the entries, and as many of the other fields.
 * A media type not named is guessed from the URI; the shot is the entry's, else the task's
 * (`input.shotIndex`, else `output.shotIndex`).
 */
export function recogniseArtifacts(task: { taskId: string; input: Record<string, unknown>; output: Record<string, unknown> | null }): RecognisedArtifact[] {
  const output = task.output;
  if (!output) return [];
  const taskShot = shotIndexOf(task.input.shotIndex) ?? shotIndexOf(output.shotIndex);
  const found = new Map<string, RecognisedArtifact>();
  const add = (uri: string, mediaType: string | undefined, shotIndex: number | undefined, title: string | undefined) => {
    if (found.has(uri)) return;
    const shot = shotIndex ?? taskShot;
    found.set(uri, {
      uri,
      mediaType: mediaType ?? guessMediaType(uri),
      ...(shot === undefined ? {} : { shotIndex: shot }),
      ...(title === undefined ? {} : { title }),
      taskId: task.taskId,
    });
  };
  if (Array.isArray(output.artifacts)) {
    for (const entry of output.artifacts.slice(0, MAX_OUTPUT_ARTIFACTS)) {
      const parsed = OutputArtifact.safeParse(entry);
      if (parsed.success) add(parsed.data.uri, parsed.data.mediaType, parsed.data.shotIndex, parsed.data.title);
    }
  }
  for (const field of MEDIA_FIELDS) {
    const value = output[field];
    // A URI or a path: no spaces, unless it is a data: URI.
    if (typeof value === 'string' && (DATA_URI.test(value) || (value.length > 0 && value.length <= ARTIFACT_URI_MAX && !/\s/.test(value)))) add(value, undefined, undefined, undefined);
  }
  let others = 0;
  for (const [field, value] of Object.entries(output)) {
    if (others === MAX_OUTPUT_ARTIFACTS) break;
    if (field === 'artifacts' || (MEDIA_FIELDS as readonly string[]).includes(field) || typeof value !== 'string') continue;
    if (DATA_URI.test(value) || (value.length <= ARTIFACT_URI_MAX && URI.test(value))) {
      add(value, undefined, undefined, undefined);
      others++;
    }
  }
  return [...found.values()];
}

/**
 * The task's artifacts (recogniseArtifacts), each with where a browser loads it: what
 * `resolve` answers (all at once). A resolver that fails gives null for that artifact (shown
 * as its URI, not loaded): one failed signature does not take the page down.
 */
export async function artifactsOf(
  task: { taskId: string; input: Record<string, unknown>; output: Record<string, unknown> | null },
  resolve: ArtifactResolver,
): Promise<ArtifactView[]> {
  const recognised = recogniseArtifacts(task);
  const hrefs = await Promise.all(
    recognised.map(async (a) => {
      try {
        const href = await resolve({ uri: a.uri, mediaType: a.mediaType });
        // Whatever a resolver answers, a browser is only given what displays and runs nothing.
        return typeof href === 'string' && SAFE_HREF.test(href) ? href : null;
      } catch {
        return null;
      }
    }),
  );
  return recognised.map((a, i) => ({ ...a, href: hrefs[i]! }));
}

/** What a resolver may hand a browser: http(s) URLs, this site's paths, data: images, videos and plain text. */
const SAFE_HREF = /^(https?:\/\/[^\s]+|\/(?!\/)[^\s]*|data:(image|video)\/[a-z0-9.+-]+[;,][^\s]*|data:text\/plain[;,][^\s]*)$/i;

/** The default resolver: resolveHref over the served folder. */
export function defaultResolver(options: { artifactsDir: string | null }): ArtifactResolver {
  return ({ uri }) => resolveHref(uri, options);
}

/** The media types of data: URIs a browser is given: they display, and run nothing (not text/html, not application/*). */
const SHOWN_DATA = /^(image\/[a-z0-9][a-z0-9!#$&^_.+-]*|video\/[a-z0-9][a-z0-9!#$&^_.+-]*|text\/plain|text\/markdown)$/;

/**
 * Where a browser loads `uri`, or null when it cannot or must not:
 * - `https:` and `http:` URLs as they are (when they parse);
 * - `data:` URIs of images, videos and plain text (a `data:text/html` page is the agent's
 *   markup, untrusted: null);
 * - a relative path, a `file:` URI or an absolute path inside `artifactsDir`:
 *   `/artifacts/<the path from it>`, each segment URL-encoded; one outside it, with a `..`
 *   segment (percent-encoded too), or with no `artifactsDir`: null;
 * - any other scheme (`s3:`, `gs:`…): null (an ArtifactResolver may sign it).
 */
export function resolveHref(uri: string, options: { artifactsDir: string | null }): string | null {
  const scheme = uriScheme(uri);
  if (scheme === 'https' || scheme === 'http') return parses(uri) ? uri : null;
  if (scheme === 'data') {
    const declared = /^data:([^;,]*)[^,]*,/i.exec(uri);
    if (!declared) return null;
    const mediaType = declared[1]!.trim().toLowerCase() || 'text/plain';
    return SHOWN_DATA.test(mediaType) ? uri : null;
  }
  if (options.artifactsDir === null) return null;
  if (scheme === 'file') return underDir(filePath(uri), options.artifactsDir);
  if (scheme !== null) return null;
  if (uri.startsWith('/')) return underDir(uri.split('/'), options.artifactsDir);
  return served(uri.split('/'));
}

function parses(uri: string): boolean {
  try {
    new URL(uri);
    return true;
  } catch {
    return false;
  }
}

/** The raw segments of a `file:` URI's path (`file:///a/b`, `file:/a/b`, `file://localhost/a/b`), or null for another host. */
function filePath(uri: string): string[] | null {
  let rest = uri.slice('file:'.length).replace(/[?#].*$/s, '');
  if (rest.startsWith('//')) {
    const slash = rest.indexOf('/', 2);
    const host = slash === -1 ? rest.slice(2) : rest.slice(2, slash);
    if (host !== '' && host.toLowerCase() !== 'localhost') return null;
    rest = slash === -1 ? '' : rest.slice(slash);
  }
  return rest.startsWith('/') ? rest.split('/') : null;
}

/** `/artifacts/…` for an absolute path's raw segments when they lie inside `dir` (an absolute path; a relative one holds no absolute path). */
function underDir(segments: string[] | null, dir: string): string | null {
  if (!segments || !dir.startsWith('/')) return null;
  const path = clean(segments);
  const base = clean(dir.split('/'), false);
  if (!path || !base || path.length <= base.length) return null;
  if (base.some((segment, i) => path[i] !== segment)) return null;
  return link(path.slice(base.length));
}

/** `/artifacts/…` for a relative path's raw segments. */
function served(segments: string[]): string | null {
  const path = clean(segments);
  return path && path.length > 0 ? link(path) : null;
}

/**
 * The segments percent-decoded, without the empty and `.` ones; null when one is `..`, cannot
 * be decoded, or holds a separator (`/` or `\` once decoded) or a control character.
 */
function clean(segments: string[], decode = true): string[] | null {
  const out: string[] = [];
  for (const raw of segments) {
    let segment: string;
    try {
      segment = decode ? decodeURIComponent(raw) : raw;
    } catch {
      return null;
    }
    if (segment === '..' || /[/\\\u0000-\u001f\u007f]/.test(segment)) return null;
    if (segment !== '' && segment !== '.') out.push(segment);
  }
  return out;
}

function link(segments: string[]): string {
  return `/artifacts/${segments.map(encodeURIComponent).join('/')}`;
}
