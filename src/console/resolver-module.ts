import { isAbsolute, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { ConfigError } from '../errors.js';
import type { ArtifactResolver } from './artifacts.js';

/**
 * ARTIFACT_RESOLVER: an ES module of the operator's whose default export (or `resolveArtifact`)
 * maps an artifact to where a browser loads it — a presigned https URL for an `s3://` one,
 * say — or null to show it as text. A module that cannot be loaded, or exports no function,
 * fails the start with a ConfigError naming it.
 */
export async function loadArtifactResolver(path: string, cwd = process.cwd()): Promise<ArtifactResolver> {
  const file = isAbsolute(path) ? path : resolve(cwd, path);
  let module: { default?: unknown; resolveArtifact?: unknown };
  try {
    module = (await import(pathToFileURL(file).href)) as typeof module;
  } catch (err) {
    throw new ConfigError([{ key: 'ARTIFACT_RESOLVER', value: path, reason: `cannot load the module: ${(err as Error).message}` }]);
  }
  const fn = typeof module.resolveArtifact === 'function' ? module.resolveArtifact : module.default;
  if (typeof fn !== 'function') {
    throw new ConfigError([{ key: 'ARTIFACT_RESOLVER', value: path, reason: 'the module exports no function (a default export, or `resolveArtifact`)' }]);
  }
  return fn as ArtifactResolver;
}
