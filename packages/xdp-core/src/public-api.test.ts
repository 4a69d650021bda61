import { closeSync, openSync, readlinkSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { describePrivileged } from '@flowlb/testkit';
import * as api from './index.js';
import { BpfMap, Link, Program } from './index.js';
import { native, type NativeMap, type NativeObject, type NativeProgram } from './native.js';
import { FIXTURE_MAPS_SOURCE, compileBpf, type CompiledObjects } from './testing/bpf-fixtures.js';

/** A descriptor of this process, open on /dev/null: any handle that took it over would close it. */
function withSpareFd(fn: (fd: number) => void): void {
  const fd = openSync('/dev/null', 'r');
  try {
    fn(fd);
    expect(readlinkSync(`/proc/self/fd/${fd}`)).toBe('/dev/null');
  } finally {
    closeSync(fd);
  }
}

function isClass(value: unknown): value is new (...args: unknown[]) => unknown {
  return typeof value === 'function' && /^class\b/.test(Function.prototype.toString.call(value));
}

describe('the public API wraps no descriptor it did not open', () => {
  it('no exported class takes over a descriptor number handed to its constructor', () => {
    const classes = Object.entries(api as Record<string, unknown>).filter((e): e is [string, new (...args: unknown[]) => unknown] => isClass(e[1]));
    expect(classes.map(([name]) => name)).toEqual(expect.arrayContaining(['BpfMap', 'BpfObject', 'Link', 'Program', 'UdpSocket']));
    withSpareFd((fd) => {
      for (const [, C] of classes) {
        for (const args of [[fd], [fd, 'x'], [fd, 'x', 6], [{ fd }], [undefined, fd, 'x']]) {
          let made: unknown;
          try {
            made = new C(...args);
          } catch {
            continue;
          }
          try {
            (made as { close?: () => void }).close?.();
          } catch {
            // half-made: nothing to close
          }
        }
      }
    });
  });

  it('Link, Program and BpfMap cannot be constructed directly', () => {
    const fake = { fd: 0, info: { name: 'x' }, close: () => {} };
    expect(() => new (Link as unknown as new (...a: unknown[]) => Link)(fake)).toThrow(/Link cannot be constructed directly/);
    expect(() => new (Program as unknown as new (...a: unknown[]) => Program)(fake)).toThrow(TypeError);
    expect(() => new (BpfMap as unknown as new (...a: unknown[]) => BpfMap)(fake)).toThrow(TypeError);
    expect(() => new (Link as unknown as new (...a: unknown[]) => Link)(Symbol('@flowlb/xdp-core own'), fake)).toThrow(TypeError);
  });

  it('the native addon exports no constructor of descriptor handles', () => {
    const addon = native() as unknown as Record<string, unknown>;
    for (const name of ['Map', 'Program', 'Link']) expect(addon[name], name).toBeUndefined();
  });
});

describePrivileged('native handles refuse a descriptor from JavaScript', () => {
  let fixture: CompiledObjects;
  let obj: NativeObject;
  let map: NativeMap;
  let prog: NativeProgram;

  beforeAll(async () => {
    fixture = compileBpf(FIXTURE_MAPS_SOURCE);
    obj = new (native().BpfObject)(fixture.objects[0]!);
    await obj.load();
    map = obj.map('small_hash');
    prog = obj.program('pass');
  });

  afterAll(() => {
    map?.close();
    prog?.close();
    obj?.close();
    fixture?.remove();
  });

  it('even through the constructor of a handle this package made', () => {
    withSpareFd((fd) => {
      for (const handle of [map, prog]) {
        const Ctor = Object.getPrototypeOf(handle).constructor as new (...args: unknown[]) => { close(): void };
        for (const args of [[fd, 'x', 6], [fd], [undefined, fd, 'x', 6], [{}, fd, 'x', 6]]) {
          expect(() => new Ctor(...args).close()).toThrow(/Illegal constructor/);
        }
      }
    });
  });
});
