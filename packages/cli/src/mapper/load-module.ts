import { stat } from 'node:fs/promises';
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import type { FlowMapper, UdpEndpoint } from '@flowlb/mapper-api';
import { CliError, EXIT } from '../cli/exit-codes.js';

/** What a mapper factory is called with. */
export interface MapperContext {
  vip: UdpEndpoint;
  snatAddress: string;
  /** The config file `flowlb run` was started with. */
  configFile: string;
  /** A pino logger for the mapper's own lines. */
  log: unknown;
}

/** A mapper may also reload its own configuration (on SIGHUP) and release resources (on stop). */
export type LoadedMapper = FlowMapper & { reload?: () => unknown; close?: () => unknown };

const SHAPE_HINT =
  'export default a FlowMapper ({ findFlow(client, packets) { … } }) or a function, sync or async, that returns one';

const FACTORY_TIMEOUT_MS = 30_000;

function describe(v: unknown): string {
  if (v === null) return 'null';
  if (v === undefined) return 'undefined';
  if (Array.isArray(v)) return 'an array';
  if (typeof v === 'object') return `an object without a findFlow method (keys: ${Object.keys(v as object).join(', ') || 'none'})`;
  return typeof v === 'string' ? `the string ${JSON.stringify(v)}` : `${typeof v} ${String(v)}`;
}

function isMapper(v: unknown): v is LoadedMapper {
  return typeof v === 'object' && v !== null && typeof (v as { findFlow?: unknown }).findFlow === 'function';
}

function isClass(fn: Function): boolean {
  return /^class[\s{]/.test(Function.prototype.toString.call(fn));
}

async function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      p,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`${what} did not settle within ${ms / 1000} s`)), ms);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Loads `--mapper`: an ES module whose default export is a FlowMapper, a function (sync or async) returning one, or
 * a class whose instances are one. Every way this can go wrong is a usage error naming the module and the fix.
 */
export async function loadMapperModule(
  specifier: string,
  context: MapperContext,
  options: { cwd?: string; timeoutMs?: number } = {},
): Promise<LoadedMapper> {
  const file = resolve(options.cwd ?? process.cwd(), specifier);
  const fail = (message: string, cause?: unknown): never => {
    throw new CliError(`--mapper ${specifier}: ${message}`, EXIT.USAGE, { cause });
  };
  try {
    if (!(await stat(file)).isFile()) fail(`${file} is not a file`);
  } catch (error) {
    if (error instanceof CliError) throw error;
    fail(`cannot find ${file}`, error);
  }

  let mod: Record<string, unknown>;
  try {
    mod = (await import(pathToFileURL(file).href)) as Record<string, unknown>;
  } catch (error) {
    return fail(`cannot load the module: ${(error as Error).message}`, error);
  }
  if (!('default' in mod) || mod.default === undefined) {
    const named = Object.keys(mod);
    return fail(`the module has no default export${named.length ? ` (it exports ${named.join(', ')})` : ''}; ${SHAPE_HINT}`);
  }
  const exported = mod.default;
  if (isMapper(exported)) return exported;
  if (typeof exported !== 'function') return fail(`the default export is ${describe(exported)}; ${SHAPE_HINT}`);

  let made: unknown;
  try {
    made = isClass(exported)
      ? new (exported as new (ctx: MapperContext) => unknown)(context)
      : await withTimeout(Promise.resolve((exported as (ctx: MapperContext) => unknown)(context)), options.timeoutMs ?? FACTORY_TIMEOUT_MS, 'the mapper factory');
  } catch (error) {
    return fail(`the default export threw while creating the mapper: ${(error as Error).message ?? String(error)}`, error);
  }
  if (isMapper(made)) return made;
  return fail(`the default export is a function, but it returned ${describe(made)}; ${SHAPE_HINT}`);
}
