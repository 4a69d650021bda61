import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import {
  FLOWS_MAX_DEFAULT,
  NEW_CLIENT_RATE_MAX,
  FLOW_F_CONFIRMED,
  FLOW_F_REPLIED,
  FLOW_F_REVERSE,
  FLOW_KEY_OFFSETS,
  FLOW_KEY_SIZE,
  FLOW_VALUE_OFFSETS,
  FLOW_VALUE_SIZE,
  FLOW_F_TARGET_MASK,
  FLOW_F_TARGET_SHIFT,
  MAX_TARGET_SLOT,
} from './layout.js';

/*
 * The per-target structs have no codec in this package: @flowlb/xdp-core's forwarder reads and writes them. Their
 * layout is pinned here all the same, next to the flags that name their slots, since tools in other languages read
 * them from the pinned maps too.
 */
const TARGET_LAYOUT = { fields: { addr: 0, port: 4, pad: 6 }, size: 8 };
const TARGET_STATS_LAYOUT = { fields: { fwdPackets: 0, fwdBytes: 8, revPackets: 16, revBytes: 24, icmpUnreachable: 32 }, size: 40 };

const headerPath = fileURLToPath(new URL('../../../bpf/include/flowlb.h', import.meta.url));
const header = readFileSync(headerPath, 'utf8');

const TYPE_SIZES: Record<string, number> = { __u8: 1, __u16: 2, __u32: 4, __u64: 8 };

function camel(name: string): string {
  return name.replace(/_([a-z])/g, (_, c: string) => c.toUpperCase());
}

/** Field offsets and size of a struct in the header, laid out by the C rules for naturally aligned scalars. */
function layoutFromText(struct: string): { fields: Record<string, number>; size: number } {
  const body = new RegExp(`struct\\s+${struct}\\s*\\{([^}]*)\\}`).exec(header)?.[1];
  if (body === undefined) throw new Error(`struct ${struct} not found in ${headerPath}`);
  const fields: Record<string, number> = {};
  let offset = 0;
  let align = 1;
  for (const m of body.replace(/\/\*[\s\S]*?\*\//g, '').matchAll(/(\w+)\s+(\w+)\s*;/g)) {
    const size = TYPE_SIZES[m[1]!];
    if (size === undefined) throw new Error(`unexpected type ${m[1]} in struct ${struct}`);
    offset = Math.ceil(offset / size) * size;
    fields[camel(m[2]!)] = offset;
    offset += size;
    align = Math.max(align, size);
  }
  return { fields, size: Math.ceil(offset / align) * align };
}

function defineOf(name: string): number {
  const m = new RegExp(`#define\\s+${name}\\s+(0x[0-9a-fA-F]+|\\d+)[uUlL]*\\b`).exec(header);
  if (!m) throw new Error(`#define ${name} not found`);
  return Number(m[1]);
}

describe('layout against bpf/include/flowlb.h, as text', () => {
  it('has the fields of struct flow_key in order, at the codec offsets', () => {
    const { fields, size } = layoutFromText('flow_key');
    expect(fields).toEqual(FLOW_KEY_OFFSETS);
    expect(Object.keys(fields)).toEqual(Object.keys(FLOW_KEY_OFFSETS));
    expect(size).toBe(FLOW_KEY_SIZE);
  });

  it('has the fields of struct flow_val in order, at the codec offsets', () => {
    const { fields, size } = layoutFromText('flow_val');
    expect(fields).toEqual(FLOW_VALUE_OFFSETS);
    expect(Object.keys(fields)).toEqual(Object.keys(FLOW_VALUE_OFFSETS));
    expect(size).toBe(FLOW_VALUE_SIZE);
  });

  it('has the flag and default size the package uses', () => {
    expect(defineOf('FLOWLB_F_REVERSE')).toBe(FLOW_F_REVERSE);
    expect(defineOf('FLOWLB_F_CONFIRMED')).toBe(FLOW_F_CONFIRMED);
    expect(defineOf('FLOWLB_F_REPLIED')).toBe(FLOW_F_REPLIED);
    expect(defineOf('FLOWLB_FLOWS_MAX_DEFAULT')).toBe(FLOWS_MAX_DEFAULT);
    expect(defineOf('FLOWLB_RATE_MAX')).toBe(NEW_CLIENT_RATE_MAX);
  });

  it('has the target slot bits and the highest slot the package uses', () => {
    expect(defineOf('FLOWLB_F_TARGET_SHIFT')).toBe(FLOW_F_TARGET_SHIFT);
    expect(defineOf('FLOWLB_TARGETS_MAX')).toBe(MAX_TARGET_SLOT);
    const mask = /#define\s+FLOWLB_F_TARGET_MASK\s+\((0x[0-9a-fA-F]+)[uU]?\s*<<\s*FLOWLB_F_TARGET_SHIFT\)/.exec(header);
    expect(mask, 'FLOWLB_F_TARGET_MASK as (bits << FLOWLB_F_TARGET_SHIFT)').not.toBeNull();
    expect(Number(mask![1]) << FLOW_F_TARGET_SHIFT).toBe(FLOW_F_TARGET_MASK);
    // Every slot fits in the mask, and slot 0 (none) is not among them.
    expect(FLOW_F_TARGET_MASK >>> FLOW_F_TARGET_SHIFT).toBe(MAX_TARGET_SLOT);
  });

  it('has struct flowlb_target and struct flowlb_target_stats as the forwarder encodes them', () => {
    expect(layoutFromText('flowlb_target')).toEqual(TARGET_LAYOUT);
    expect(layoutFromText('flowlb_target_stats')).toEqual(TARGET_STATS_LAYOUT);
  });
});

function findCompiler(): string | undefined {
  for (const cc of [process.env.CC, 'cc', 'clang', 'gcc']) {
    if (!cc) continue;
    try {
      execFileSync(cc, ['--version'], { stdio: 'ignore' });
      return cc;
    } catch {
      // try the next one
    }
  }
  return undefined;
}

const compiler = findCompiler();

describe.runIf(compiler)('layout against bpf/include/flowlb.h, as compiled by the C compiler', () => {
  const dir = mkdtempSync(join(tmpdir(), 'flowlb-layout-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  const keyFields = Object.keys(FLOW_KEY_OFFSETS);
  const valueFields = Object.keys(FLOW_VALUE_OFFSETS);
  const snake = (name: string) => name.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);

  function compiled(): Record<string, number> {
    const lines = [
      `printf("key_size %zu\\n", sizeof(struct flow_key));`,
      `printf("value_size %zu\\n", sizeof(struct flow_val));`,
      `printf("reverse %u\\n", (unsigned)FLOWLB_F_REVERSE);`,
      `printf("confirmed %u\\n", (unsigned)FLOWLB_F_CONFIRMED);`,
      `printf("max_default %u\\n", (unsigned)FLOWLB_FLOWS_MAX_DEFAULT);`,
      `printf("target_shift %u\\n", (unsigned)FLOWLB_F_TARGET_SHIFT);`,
      `printf("target_mask %u\\n", (unsigned)FLOWLB_F_TARGET_MASK);`,
      `printf("targets_max %u\\n", (unsigned)FLOWLB_TARGETS_MAX);`,
      `printf("target_size %zu\\n", sizeof(struct flowlb_target));`,
      `printf("target_stats_size %zu\\n", sizeof(struct flowlb_target_stats));`,
      ...Object.keys(TARGET_LAYOUT.fields).map((f) => `printf("target.${f} %zu\\n", offsetof(struct flowlb_target, ${snake(f)}));`),
      ...Object.keys(TARGET_STATS_LAYOUT.fields).map(
        (f) => `printf("target_stats.${f} %zu\\n", offsetof(struct flowlb_target_stats, ${snake(f)}));`,
      ),
      ...keyFields.map((f) => `printf("key.${f} %zu\\n", offsetof(struct flow_key, ${snake(f)}));`),
      ...valueFields.map((f) => `printf("value.${f} %zu\\n", offsetof(struct flow_val, ${snake(f)}));`),
    ];
    writeFileSync(
      join(dir, 'layout.c'),
      `#include <stddef.h>\n#include <stdio.h>\n#include "flowlb.h"\nint main(void) {\n${lines.join('\n')}\nreturn 0;\n}\n`,
    );
    // Where <linux/types.h> is missing (macOS), fall back to a stand-in; -idirafter keeps the real one first.
    mkdirSync(join(dir, 'fallback', 'linux'), { recursive: true });
    writeFileSync(
      join(dir, 'fallback', 'linux', 'types.h'),
      '#include <stdint.h>\ntypedef uint8_t __u8; typedef uint16_t __u16; typedef uint32_t __u32; typedef uint64_t __u64;\n',
    );
    const exe = join(dir, 'layout');
    execFileSync(compiler!, [
      '-std=c11',
      '-Wall',
      '-Werror',
      '-I',
      join(headerPath, '..'),
      '-idirafter',
      join(dir, 'fallback'),
      '-o',
      exe,
      join(dir, 'layout.c'),
    ]);
    const out = execFileSync(exe, { encoding: 'utf8' });
    return Object.fromEntries(
      out
        .trim()
        .split('\n')
        .map((line) => {
          const [name, value] = line.split(' ');
          return [name!, Number(value)];
        }),
    );
  }

  it('matches sizeof, offsetof and the #defines', () => {
    const c = compiled();
    expect(c.key_size).toBe(FLOW_KEY_SIZE);
    expect(c.value_size).toBe(FLOW_VALUE_SIZE);
    expect(c.reverse).toBe(FLOW_F_REVERSE);
    expect(c.confirmed).toBe(FLOW_F_CONFIRMED);
    expect(c.max_default).toBe(FLOWS_MAX_DEFAULT);
    for (const [f, offset] of Object.entries(FLOW_KEY_OFFSETS)) expect(c[`key.${f}`], `key.${f}`).toBe(offset);
    for (const [f, offset] of Object.entries(FLOW_VALUE_OFFSETS)) expect(c[`value.${f}`], `value.${f}`).toBe(offset);
  });

  it('matches the target slot #defines and the layout of the per-target structs', () => {
    const c = compiled();
    expect(c.target_shift).toBe(FLOW_F_TARGET_SHIFT);
    expect(c.target_mask).toBe(FLOW_F_TARGET_MASK);
    expect(c.targets_max).toBe(MAX_TARGET_SLOT);
    expect(c.target_size).toBe(TARGET_LAYOUT.size);
    expect(c.target_stats_size).toBe(TARGET_STATS_LAYOUT.size);
    for (const [f, offset] of Object.entries(TARGET_LAYOUT.fields)) expect(c[`target.${f}`], `target.${f}`).toBe(offset);
    for (const [f, offset] of Object.entries(TARGET_STATS_LAYOUT.fields)) {
      expect(c[`target_stats.${f}`], `target_stats.${f}`).toBe(offset);
    }
  });
});
