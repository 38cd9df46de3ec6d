import { readFileSync } from 'node:fs';
import { ValidationError } from '../errors.js';
import { Pipeline, type PipelineInput } from '../domain/pipeline.js';

/** Reads a JSON pipeline definition (the shape of `VIDEO_PIPELINE`) and validates it. */
export function loadPipelineFile(path: string): PipelineInput {
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(path, 'utf8'));
  } catch (err) {
    throw new ValidationError(`cannot read the pipeline file ${path}: ${(err as Error).message}`, [], { cause: err });
  }
  const parsed = Pipeline.safeParse(raw);
  if (!parsed.success) {
    throw new ValidationError(`invalid pipeline file ${path}`, parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`));
  }
  return raw as PipelineInput;
}
