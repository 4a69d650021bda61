import type { TestProject } from 'vitest/node';
import { packAll, type Packed } from './pack.js';
import { makeTempDir, removeTempDir } from './temp.js';

declare module 'vitest' {
  export interface ProvidedContext {
    /** The tarballs of every published package, packed once for all test files. */
    packed: Packed[];
  }
}

/** Packs what is built now; building is the turbo `test` task's dependency (see turbo.json), not this file's job. */
export default async function setup(project: TestProject): Promise<() => void> {
  const dir = makeTempDir('pack');
  try {
    project.provide('packed', await packAll(dir));
  } catch (err) {
    removeTempDir(dir);
    throw err;
  }
  return () => removeTempDir(dir);
}
