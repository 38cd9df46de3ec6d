import { describe, expect, it } from 'vitest';
import { artifactsOf, defaultResolver, guessMediaType, recogniseArtifacts, resolveHref, type ArtifactResolver } from '../../src/console/artifacts.js';

/** What the review console recognises in an output, and where it lets a browser load it. */

const DIR = { artifactsDir: '/srv/artifacts' };
const NONE = { artifactsDir: null };
const task = (output: Record<string, unknown> | null, input: Record<string, unknown> = {}) => ({ taskId: 'tsk_1', input, output });

describe('resolveHref', () => {
  it('gives https and http URLs as they are', () => {
    expect(resolveHref('https://cdn.example/a b.png?sig=1', NONE)).toBe('https://cdn.example/a b.png?sig=1');
    expect(resolveHref('http://localhost:9000/a.mp4', DIR)).toBe('http://localhost:9000/a.mp4');
    expect(resolveHref('https://', DIR)).toBeNull();
  });

  it('gives data: URIs of images, videos and plain text; refuses HTML and the rest', () => {
    for (const uri of ['data:image/svg+xml;base64,PHN2Zz4=', 'data:image/png;base64,iVBO', 'data:video/mp4;base64,AAAA', 'data:text/plain;charset=utf-8,hello', 'data:,hello', 'DATA:IMAGE/PNG;base64,x']) {
      expect(resolveHref(uri, NONE), uri).toBe(uri);
    }
    for (const uri of ['data:text/html,<script>alert(1)</script>', 'data:text/html;base64,PHNjcmlwdD4=', 'data:TEXT/HTML,x', 'data:application/javascript,alert(1)', 'data:application/xhtml+xml,x', 'data:image/png;base64']) {
      expect(resolveHref(uri, DIR), uri).toBeNull();
    }
  });

  it('serves a relative path under /artifacts/, each segment URL-encoded', () => {
    expect(resolveHref('frames/shot 1.png', DIR)).toBe('/artifacts/frames/shot%201.png');
    expect(resolveHref('./a/./b#c?.png', DIR)).toBe('/artifacts/a/b%23c%3F.png');
    expect(resolveHref('frames/%E2%98%85.png', DIR)).toBe('/artifacts/frames/%E2%98%85.png');
    expect(resolveHref('frames/shot 1.png', NONE)).toBeNull();
  });

  it('refuses traversal: .., percent-encoded .., encoded separators, backslashes', () => {
    for (const uri of ['../secret.png', 'frames/../../etc/passwd', 'frames/..', '%2e%2e/secret', 'frames/%2E%2E/%2e%2e/x', 'frames/.%2e/x', 'a%2f..%2fb', 'a%2F..%2F..%2Fetc', 'frames\\..\\x', 'a%5c..%5cb', '%zz.png', '', '.', './']) {
      expect(resolveHref(uri, DIR), uri).toBeNull();
    }
  });

  it('serves a file: URI or an absolute path inside artifactsDir; refuses one outside it', () => {
    expect(resolveHref('file:///srv/artifacts/frames/a%20b.png', DIR)).toBe('/artifacts/frames/a%20b.png');
    expect(resolveHref('file:/srv/artifacts/x.png', DIR)).toBe('/artifacts/x.png');
    expect(resolveHref('file://localhost/srv/artifacts/x.png', { artifactsDir: '/srv/artifacts/' })).toBe('/artifacts/x.png');
    expect(resolveHref('/srv/artifacts/x.png', DIR)).toBe('/artifacts/x.png');
    for (const uri of [
      'file:///etc/passwd',
      '/etc/passwd',
      'file:///srv/artifacts',
      'file:///srv/artifacts/',
      'file:///srv/artifacts-private/x.png',
      '/srv/artifacts-private/x.png',
      'file:///srv/artifacts/../secret.png',
      'file:///srv/artifacts/%2e%2e/secret.png',
      '/srv/artifacts/frames/%2E%2E/%2E%2E/x',
      'file://otherhost/srv/artifacts/x.png',
      'file:relative/x.png',
    ]) {
      expect(resolveHref(uri, DIR), uri).toBeNull();
    }
    expect(resolveHref('file:///srv/artifacts/x.png', NONE)).toBeNull();
    expect(resolveHref('file:///srv/artifacts/x.png', { artifactsDir: 'relative/dir' })).toBeNull();
  });

  it('gives null for s3:, gs: and other schemes (an ArtifactResolver may sign them)', () => {
    for (const uri of ['s3://bucket/key.png', 'gs://bucket/key.png', 'javascript:alert(1)', 'ftp://host/x', 'vbscript:x', 'C:\\frames\\x.png']) {
      expect(resolveHref(uri, DIR), uri).toBeNull();
    }
  });
});

describe('guessMediaType', () => {
  it.each([
    ['a.png', 'image/png'],
    ['A.PNG', 'image/png'],
    ['s3://b/k.jpg', 'image/jpeg'],
    ['https://x/y.jpeg?sig=1#t', 'image/jpeg'],
    ['x.webp', 'image/webp'],
    ['x.gif', 'image/gif'],
    ['x.svg', 'image/svg+xml'],
    ['x.mp4', 'video/mp4'],
    ['x.webm', 'video/webm'],
    ['x.mov', 'video/quicktime'],
    ['notes.txt', 'text/plain'],
    ['README.md', 'text/plain'],
    ['s3://artifacts/tsk_1', 'application/octet-stream'],
    ['x.bin', 'application/octet-stream'],
    ['https://x.example/dir.png/file', 'application/octet-stream'],
    ['data:image/svg+xml;base64,PHN2Zz4=', 'image/svg+xml'],
    ['data:Video/MP4;base64,AAAA', 'video/mp4'],
    ['data:,hello', 'text/plain'],
    ['data:text/html,<b>', 'text/html'],
  ])('%s → %s', (uri, mediaType) => {
    expect(guessMediaType(uri)).toBe(mediaType);
  });
});

describe('recogniseArtifacts', () => {
  it('lists the artifacts entries, then image, video and preview, then other URI fields', () => {
    const found = recogniseArtifacts(
      task({
        artifacts: [
          { uri: 's3://frames/sheet.png', mediaType: 'image/png', title: 'Storyboard sheet' },
          { uri: 'https://cdn.example/k.webp', mediaType: 'image/webp', shotIndex: 2 },
        ],
        image: 'frames/1.png',
        video: 's3://renders/1.mp4',
        preview: 'data:image/svg+xml;base64,PHN2Zz4=',
        mask: 'gs://masks/1.png',
        notes: 'data:text/plain,hello',
        script: 'INT. LIGHTHOUSE - NIGHT',
        count: 3,
        link: 'mailto:someone',
      }),
    );
    expect(found).toEqual([
      { uri: 's3://frames/sheet.png', mediaType: 'image/png', title: 'Storyboard sheet', taskId: 'tsk_1' },
      { uri: 'https://cdn.example/k.webp', mediaType: 'image/webp', shotIndex: 2, taskId: 'tsk_1' },
      { uri: 'frames/1.png', mediaType: 'image/png', taskId: 'tsk_1' },
      { uri: 's3://renders/1.mp4', mediaType: 'video/mp4', taskId: 'tsk_1' },
      { uri: 'data:image/svg+xml;base64,PHN2Zz4=', mediaType: 'image/svg+xml', taskId: 'tsk_1' },
      { uri: 'gs://masks/1.png', mediaType: 'image/png', taskId: 'tsk_1' },
      { uri: 'data:text/plain,hello', mediaType: 'text/plain', taskId: 'tsk_1' },
    ]);
  });

  it('names each URI once: the first naming (an artifacts entry, with its media type and title) wins', () => {
    const uri = 'data:image/svg+xml;base64,PHN2Zz4=';
    const found = recogniseArtifacts(task({ image: uri, artifacts: [{ uri, mediaType: 'image/svg+xml', shotIndex: 1, title: 'Keyframe, shot 2' }, { uri, mediaType: 'image/png' }], thumbnail: uri }));
    expect(found).toEqual([{ uri, mediaType: 'image/svg+xml', shotIndex: 1, title: 'Keyframe, shot 2', taskId: 'tsk_1' }]);
  });

  it("takes the shot from the entry, else the task's input.shotIndex, else output.shotIndex", () => {
    const output = { image: 's3://f/1.png', artifacts: [{ uri: 's3://f/a.png', mediaType: 'image/png', shotIndex: 4 }, { uri: 's3://f/b.png', mediaType: 'image/png' }] };
    const shots = (input: Record<string, unknown>, extra: Record<string, unknown> = {}) => recogniseArtifacts(task({ ...output, ...extra }, input)).map((a) => a.shotIndex);
    expect(shots({ shotIndex: 2 })).toEqual([4, 2, 2]);
    expect(shots({}, { shotIndex: 3 })).toEqual([4, 3, 3]);
    expect(shots({ shotIndex: 2 }, { shotIndex: 3 })).toEqual([4, 2, 2]);
    expect(shots({})).toEqual([4, undefined, undefined]);
    expect(shots({ shotIndex: -1 }, { shotIndex: 'x' })).toEqual([4, undefined, undefined]);
    expect(shots({ shotIndex: 1.5 })).toEqual([4, undefined, undefined]);
  });

  it('leaves out entries that break the contract (rows stored before it), and media fields that are no URI', () => {
    const found = recogniseArtifacts(
      task({ artifacts: [{ uri: '../x.png', mediaType: 'image/png' }, { uri: 's3://ok.png' }, 'a.png', null, { uri: 's3://good.png', mediaType: 'image/png' }], image: 'a picture of the sea', video: '', preview: 42 }),
    );
    expect(found.map((a) => a.uri)).toEqual(['s3://good.png']);
    expect(recogniseArtifacts(task({ artifacts: 'nope', image: 's3://a.png' })).map((a) => a.uri)).toEqual(['s3://a.png']);
  });

  it('takes at most 100 entries, and as many other URI fields (rows stored before the contract)', () => {
    const artifacts = Array.from({ length: 150 }, (_, i) => ({ uri: `s3://a/${i}.png`, mediaType: 'image/png' }));
    const fields = Object.fromEntries(Array.from({ length: 150 }, (_, i) => [`f${i}`, `s3://f/${i}.png`]));
    const found = recogniseArtifacts(task({ artifacts, ...fields, image: 's3://i.png' }));
    expect(found).toHaveLength(201);
    expect(found[100]!.uri).toBe('s3://i.png');
  });

  it('finds nothing in no output, or one without URIs', () => {
    expect(recogniseArtifacts(task(null))).toEqual([]);
    expect(recogniseArtifacts(task({ passed: true, issues: [] }))).toEqual([]);
    expect(recogniseArtifacts(task({ url: `https://x.example/${'a'.repeat(2_001)}` }))).toEqual([]);
  });

  it('recognises what the simulated agents name today (s3:// URIs)', () => {
    expect(recogniseArtifacts(task({ image: 's3://frames/tsk_9.png', shotIndex: 1 }, { shotIndex: 1 }))).toEqual([{ uri: 's3://frames/tsk_9.png', mediaType: 'image/png', shotIndex: 1, taskId: 'tsk_1' }]);
    expect(recogniseArtifacts(task({ artifact: 's3://artifacts/tsk_9' }))).toEqual([{ uri: 's3://artifacts/tsk_9', mediaType: 'application/octet-stream', taskId: 'tsk_1' }]);
  });
});

describe('artifactsOf', () => {
  const output = {
    image: 's3://frames/1.png',
    artifacts: [{ uri: 'frames/1.png', mediaType: 'image/png', shotIndex: 0 }, { uri: 'data:text/html,<script>alert(1)</script>', mediaType: 'text/html' }],
  };

  it('resolves each artifact with the default resolver: resolveHref over the artifacts folder', async () => {
    const views = await artifactsOf(task(output), defaultResolver(DIR));
    expect(views).toEqual([
      { uri: 'frames/1.png', mediaType: 'image/png', shotIndex: 0, taskId: 'tsk_1', href: '/artifacts/frames/1.png' },
      { uri: 'data:text/html,<script>alert(1)</script>', mediaType: 'text/html', taskId: 'tsk_1', href: null },
      { uri: 's3://frames/1.png', mediaType: 'image/png', taskId: 'tsk_1', href: null },
    ]);
  });

  it("takes an embedder's resolver, sync or async (an s3 URI signed), and a failing one gives null", async () => {
    const seen: { uri: string; mediaType: string }[] = [];
    const signer: ArtifactResolver = async (a) => {
      seen.push(a);
      await Promise.resolve();
      if (a.uri.startsWith('s3://')) return `https://bucket.example/${a.uri.slice(5)}?X-Amz-Signature=abc`;
      return resolveHref(a.uri, DIR);
    };
    const views = await artifactsOf(task(output), signer);
    expect(views.map((v) => v.href)).toEqual(['/artifacts/frames/1.png', null, 'https://bucket.example/frames/1.png?X-Amz-Signature=abc']);
    expect(seen).toContainEqual({ uri: 's3://frames/1.png', mediaType: 'image/png' });
    const failing: ArtifactResolver = (a) => {
      if (a.uri.startsWith('s3://')) throw new Error('signing is down');
      return a.uri.startsWith('frames/') ? Promise.reject(new Error('no')) : 'https://x.example/';
    };
    expect((await artifactsOf(task(output), failing)).map((v) => v.href)).toEqual([null, 'https://x.example/', null]);
    expect(await artifactsOf(task(null), signer)).toEqual([]);
  });
});
