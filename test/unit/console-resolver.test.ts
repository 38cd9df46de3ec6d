import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { artifactsOf } from '../../src/console/artifacts.js';
import { loadArtifactResolver } from '../../src/console/resolver-module.js';
import { ConfigError } from '../../src/errors.js';

/** ARTIFACT_RESOLVER: the operator's module that signs artifact URIs; what it answers is checked before a browser gets it. */

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'lap-resolver-'));
  await writeFile(
    join(dir, 'sign.mjs'),
    "export default async ({ uri }) => uri.startsWith('s3://') ? `https://bucket.example/${uri.slice(5)}?X-Signature=abc` : null;\n",
  );
  await writeFile(join(dir, 'named.mjs'), "export function resolveArtifact({ uri }) { return uri.replace('gs://', 'https://storage.example/'); }\n");
  await writeFile(join(dir, 'nothing.mjs'), 'export const answer = 42;\n');
  await writeFile(join(dir, 'broken.mjs'), 'export default (;\n');
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

const task = { taskId: 't1', input: { shotIndex: 2 }, output: { image: 's3://frames/t1.png', video: 'gs://renders/t1.mp4' } };

describe('loadArtifactResolver', () => {
  it('takes the default export, or resolveArtifact, and its answers become the hrefs', async () => {
    const sign = await loadArtifactResolver(join(dir, 'sign.mjs'));
    const views = await artifactsOf(task, sign);
    expect(views.find((a) => a.uri === 's3://frames/t1.png')).toMatchObject({ href: 'https://bucket.example/frames/t1.png?X-Signature=abc', mediaType: 'image/png', shotIndex: 2 });
    expect(views.find((a) => a.uri.startsWith('gs:'))?.href).toBeNull();
    const named = await loadArtifactResolver('named.mjs', dir);
    expect((await artifactsOf(task, named)).find((a) => a.uri.startsWith('gs:'))?.href).toBe('https://storage.example/renders/t1.mp4');
  });

  it('refuses a module that cannot be loaded or exports no function, naming ARTIFACT_RESOLVER', async () => {
    for (const file of ['nothing.mjs', 'broken.mjs', 'missing.mjs']) {
      const err = await loadArtifactResolver(join(dir, file)).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(ConfigError);
      expect((err as ConfigError).problems[0]!.key).toBe('ARTIFACT_RESOLVER');
    }
  });

  it('gives a browser nothing a resolver answers that could run: javascript:, data:text/html, protocol-relative', async () => {
    for (const bad of ['javascript:alert(1)', 'data:text/html,<script>alert(1)</script>', '//evil.example/x.png', 'vbscript:x', ' https://x.example/a.png']) {
      const views = await artifactsOf(task, () => bad);
      expect(views.every((a) => a.href === null), bad).toBe(true);
    }
    // A resolver that throws leaves that artifact as text, the others as they resolve.
    const views = await artifactsOf(task, ({ uri }) => {
      if (uri.startsWith('gs:')) throw new Error('signing failed');
      return '/artifacts/t1.png';
    });
    expect(views.map((a) => a.href)).toEqual(['/artifacts/t1.png', null]);
  });
});
