import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { CliError } from '../cli/exit-codes.js';
import { loadMapperModule, type MapperContext } from './load-module.js';

const dir = mkdtempSync(join(tmpdir(), 'flowlb-cli-mapper-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

let n = 0;
function moduleFile(source: string): string {
  const file = join(dir, `m${n++}.mjs`);
  writeFileSync(file, source);
  return file;
}

const context: MapperContext = { vip: { address: '192.0.2.1', port: 4433 }, snatAddress: '192.0.2.1', configFile: 'c.yaml', log: null };
const client = { address: '203.0.113.5', port: 40000 };
const HINT = 'export default a FlowMapper ({ findFlow(client, packets) { … } }) or a function, sync or async, that returns one';

async function failure(spec: string, options?: { timeoutMs?: number }): Promise<CliError> {
  try {
    await loadMapperModule(spec, context, { cwd: dir, ...options });
  } catch (e) {
    expect(e).toBeInstanceOf(CliError);
    expect((e as CliError).exitCode).toBe(2);
    return e as CliError;
  }
  throw new Error('expected the module to be refused');
}

describe('loadMapperModule', () => {
  it('takes a default export that is a FlowMapper', async () => {
    const file = moduleFile(`export default { findFlow: (c) => ({ action: 'forward', flow: { dstAddr: { address: '10.0.0.1', port: c.port } } }) };`);
    const m = await loadMapperModule(file, context);
    expect(m.findFlow(client, [])).toEqual({ action: 'forward', flow: { dstAddr: { address: '10.0.0.1', port: 40000 } } });
  });

  it('calls a sync function and hands it the context', async () => {
    const file = moduleFile(`export default (ctx) => ({ findFlow: () => ({ action: 'forward', flow: { dstAddr: ctx.vip } }) });`);
    const m = await loadMapperModule(file, context);
    expect(m.findFlow(client, [])).toEqual({ action: 'forward', flow: { dstAddr: context.vip } });
  });

  it('awaits an async function', async () => {
    const file = moduleFile(`
      export default async function make(ctx) {
        await new Promise((r) => setTimeout(r, 10));
        return { findFlow: async () => ({ action: 'drop', reason: ctx.configFile }), reload() { return 'reloaded'; } };
      }`);
    const m = await loadMapperModule(file, context);
    expect(await m.findFlow(client, [])).toEqual({ action: 'drop', reason: 'c.yaml' });
    expect(m.reload?.()).toBe('reloaded');
  });

  it('instantiates a class', async () => {
    const file = moduleFile(`export default class Sticky { constructor(ctx) { this.ctx = ctx; } findFlow() { return { action: 'wait' }; } }`);
    const m = await loadMapperModule(file, context);
    expect(m.findFlow(client, [])).toEqual({ action: 'wait' });
  });

  it('resolves a relative path against the working directory', async () => {
    const file = moduleFile(`export default { findFlow: () => ({ action: 'wait' }) };`);
    const m = await loadMapperModule(`./${file.slice(dir.length + 1)}`, context, { cwd: dir });
    expect(m.findFlow(client, [])).toEqual({ action: 'wait' });
  });

  it.each([
    ['export const findFlow = () => ({ action: "wait" });', `the module has no default export (it exports findFlow); ${HINT}`],
    ['export default 42;', `the default export is number 42; ${HINT}`],
    ['export default { find: () => 1 };', `the default export is an object without a findFlow method (keys: find); ${HINT}`],
    ['export default () => ({ findflow() {} });', `the default export is a function, but it returned an object without a findFlow method (keys: findflow); ${HINT}`],
    ['export default async () => undefined;', `the default export is a function, but it returned undefined; ${HINT}`],
    ['export default () => { throw new Error("no backends configured"); };', 'the default export threw while creating the mapper: no backends configured'],
    ['export default async () => { throw new Error("cannot reach the registry"); };', 'the default export threw while creating the mapper: cannot reach the registry'],
  ])('refuses %s', async (source, message) => {
    const file = moduleFile(source);
    const e = await failure(file);
    expect(e.message).toBe(`--mapper ${file}: ${message}`);
  });

  it('refuses a module that does not parse or throws on import', async () => {
    const bad = moduleFile('export default {');
    expect((await failure(bad)).message).toMatch(new RegExp(`^--mapper ${bad}: cannot load the module: `));
    const throws = moduleFile('throw new Error("boom at import");');
    expect((await failure(throws)).message).toBe(`--mapper ${throws}: cannot load the module: boom at import`);
  });

  it('refuses a missing file or a folder', async () => {
    expect((await failure('./nope.mjs')).message).toBe(`--mapper ./nope.mjs: cannot find ${join(dir, 'nope.mjs')}`);
    expect((await failure(dir)).message).toBe(`--mapper ${dir}: ${dir} is not a file`);
  });

  it('gives up on a factory that never settles', async () => {
    const file = moduleFile('export default () => new Promise(() => {});');
    expect((await failure(file, { timeoutMs: 50 })).message).toBe(
      `--mapper ${file}: the default export threw while creating the mapper: the mapper factory did not settle within 0.05 s`,
    );
  });
});
