import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { loadMappings, loadMappingsSync, mappingsFromObject, mappingsFromYaml, MappingsError } from './mappings.js';

/** The example from the original project's README, byte for byte. */
const SEED_EXAMPLE = `sniMappings:
    - fqdn: "<doamin-name>"
      ipv4: "<target-ipv4>"
      port: <target-port>
    - fqdn: "mydomain.rocks"
      ipv4: "1.2.3.4"
      port: 10001
`;

const SEED_FORMAT = `sniMappings:
    - fqdn: "foo.example"
      ipv4: "10.0.0.1"
      port: 10000
    - fqdn: "mydomain.rocks"
      ipv4: "1.2.3.4"
      port: 10001
`;

function errorOf(fn: () => unknown): MappingsError {
  try {
    fn();
  } catch (err) {
    if (err instanceof MappingsError) return err;
    throw err;
  }
  throw new Error('expected a MappingsError');
}

const tempDir = mkdtempSync(join(tmpdir(), 'flowlb-mappings-'));
afterAll(() => rmSync(tempDir, { recursive: true, force: true }));
let tempDirs = 0;

// A folder of its own per file, so that tests can give files the same name.
function tempFile(name: string, text: string): string {
  const dir = join(tempDir, String(tempDirs++));
  mkdirSync(dir);
  const file = join(dir, name);
  writeFileSync(file, text);
  return file;
}

describe('the original format', () => {
  it('loads unchanged', () => {
    const table = mappingsFromYaml(SEED_FORMAT);
    expect(table.rules.map((r) => [r.fqdn, r.targets])).toEqual([
      ['foo.example', [{ address: '10.0.0.1', port: 10000 }]],
      ['mydomain.rocks', [{ address: '1.2.3.4', port: 10001 }]],
    ]);
    expect(table.defaultTargets).toBeUndefined();
    expect(table.resolve('mydomain.rocks', 'c')).toMatchObject({ kind: 'target', target: { address: '1.2.3.4', port: 10001 } });
    expect(table.resolve('other.example', 'c')).toEqual({ kind: 'none', why: 'unknown-name' });
  });

  it('reports the placeholders of the README example as errors, with lines', () => {
    const err = errorOf(() => mappingsFromYaml(SEED_EXAMPLE, { file: 'mappings.yaml' }));
    expect(err.issues.map((i) => [i.line, i.entry?.index, i.key])).toEqual([
      [2, 0, 'fqdn'],
      [3, 0, 'ipv4'],
      [4, 0, 'port'],
    ]);
    expect(err).toMatchObject({ file: 'mappings.yaml', line: 2, entry: { index: 0, fqdn: '<doamin-name>' }, key: 'fqdn' });
    expect(err.message).toContain('3 problems');
    expect(err.message).toContain('mappings.yaml:4: sniMappings[0] (fqdn "<doamin-name>"): port: must be an integer');
  });
});

describe('the extensions', () => {
  const text = `
sniMappings:
  - fqdn: Foo.Example.
    ipv4: 10.0.0.1
    port: 4433
  - fqdn: "*.example.com"
    targets:
      - { ipv4: 10.0.1.1, port: 4433 }
      - { ipv4: 10.0.1.2, port: 4433 }
  - fqdn: "*.eu.example.com"
    targets:
      - ipv4: 10.0.2.1
        port: 5684
default: { ipv4: 10.0.9.9, port: 4433 }
`;

  it('reads several targets, wildcards and a default', () => {
    const table = mappingsFromYaml(text);
    expect(table.rules.map((r) => [r.name, r.wildcard, r.targets.length])).toEqual([
      ['foo.example', false, 1],
      ['example.com', true, 2],
      ['eu.example.com', true, 1],
    ]);
    expect(table.rules[0]!.fqdn).toBe('Foo.Example.');
    expect(table.defaultTargets).toEqual([{ address: '10.0.9.9', port: 4433 }]);
  });

  it('accepts default: drop, default with targets, and an empty list', () => {
    expect(mappingsFromYaml('sniMappings: []\ndefault: drop\n').defaultTargets).toBeUndefined();
    const t = mappingsFromYaml('sniMappings: []\ndefault:\n  targets:\n    - {ipv4: 10.0.0.1, port: 1}\n    - {ipv4: 10.0.0.2, port: 1}\n');
    expect(t.defaultTargets).toHaveLength(2);
    expect(t.rules).toEqual([]);
  });

  it('builds the same table from an object', () => {
    const table = mappingsFromObject({
      sniMappings: [{ fqdn: 'a.example', targets: [{ ipv4: '10.0.0.1', port: 1 }] }],
      default: 'drop',
    });
    expect(table.resolve('A.EXAMPLE.', 'k')).toMatchObject({ kind: 'target', match: 'exact' });
    expect(table.file).toBeUndefined();
  });

  it('freezes what it returns', () => {
    const table = mappingsFromYaml(text);
    expect(Object.isFrozen(table.rules)).toBe(true);
    expect(Object.isFrozen(table.rules[1]!.targets[0])).toBe(true);
  });
});

describe('bad mappings', () => {
  const issue = (doc: unknown) => errorOf(() => mappingsFromObject(doc, { file: 'm.yaml' }));

  it.each([
    [{ sniMappings: [{ fqdn: 'a.example', ipv4: '10.0.0.1' }] }, 0, 'port', 'missing'],
    [{ sniMappings: [{ fqdn: 'a.example', port: 1 }] }, 0, 'ipv4', 'missing'],
    [{ sniMappings: [{ fqdn: 'a.example', ipv4: '10.0.0.1', port: 0 }] }, 0, 'port', '1 to 65535'],
    [{ sniMappings: [{ fqdn: 'a.example', ipv4: '10.0.0.1', port: 65536 }] }, 0, 'port', '1 to 65535'],
    [{ sniMappings: [{ fqdn: 'a.example', ipv4: '10.0.0.1', port: '443' }] }, 0, 'port', 'got "443"'],
    [{ sniMappings: [{ fqdn: 'a.example', ipv4: '10.0.0.1', port: 1.5 }] }, 0, 'port', 'integer'],
    [{ sniMappings: [{ fqdn: 'a.example', ipv4: '10.0.0.256', port: 1 }] }, 0, 'ipv4', 'IPv4'],
    [{ sniMappings: [{ fqdn: 'a.example', ipv4: '10.0.0.01', port: 1 }] }, 0, 'ipv4', 'IPv4'],
    [{ sniMappings: [{ fqdn: 'a.example', ipv4: '10.0.0', port: 1 }] }, 0, 'ipv4', 'IPv4'],
    [{ sniMappings: [{ fqdn: 'a.example', ipv4: '::1', port: 1 }] }, 0, 'ipv4', 'IPv4'],
    [{ sniMappings: [{ fqdn: 'a.example', ipv4: 167772161, port: 1 }] }, 0, 'ipv4', 'IPv4'],
    [{ sniMappings: [{ ipv4: '10.0.0.1', port: 1 }] }, 0, 'fqdn', 'missing'],
    [{ sniMappings: [{ fqdn: 42, ipv4: '10.0.0.1', port: 1 }] }, 0, 'fqdn', 'must be a string'],
    [{ sniMappings: [{ fqdn: 'a..example', ipv4: '10.0.0.1', port: 1 }] }, 0, 'fqdn', 'empty label'],
    [{ sniMappings: [{ fqdn: '*', ipv4: '10.0.0.1', port: 1 }] }, 0, 'fqdn', 'default'],
    [{ sniMappings: [{ fqdn: 'a.example' }] }, 0, undefined, 'no target'],
    [{ sniMappings: [{ fqdn: 'a.example', ipv4: '10.0.0.1', port: 1, prot: 2 }] }, 0, 'prot', 'unknown key'],
    [{ sniMappings: [{ fqdn: 'a.example', ipv4: '10.0.0.1', port: 1, targets: [] }] }, 0, 'targets', 'not both'],
    [{ sniMappings: [{ fqdn: 'a.example', targets: [] }] }, 0, 'targets', 'non-empty'],
    [{ sniMappings: [{ fqdn: 'a.example', targets: { ipv4: '10.0.0.1', port: 1 } }] }, 0, 'targets', 'non-empty list'],
    [{ sniMappings: [{ fqdn: 'a.example', targets: ['10.0.0.1:1'] }] }, 0, 'targets[0]', 'a target is a mapping'],
    [{ sniMappings: [{ fqdn: 'a.example', targets: [{ ipv4: '10.0.0.1', port: 1, priority: 2 }] }] }, 0, 'targets[0].priority', 'unknown key'],
    [{ sniMappings: [{ fqdn: 'a.example', targets: [{ ipv4: '10.0.0.1' }] }] }, 0, 'targets[0].port', 'missing'],
    [
      { sniMappings: [{ fqdn: 'a.example', targets: [{ ipv4: '10.0.0.1', port: 1 }, { ipv4: '10.0.0.1', port: 1 }] }] },
      0,
      'targets[1]',
      'duplicate target 10.0.0.1:1',
    ],
    [{ sniMappings: ['a.example'] }, 0, undefined, 'an entry is a mapping'],
    [{ sniMappings: [null] }, 0, undefined, 'got null'],
  ])('%j: entry %i, key %s', (doc, index, key, reason) => {
    const err = issue(doc);
    expect(err.issues).toHaveLength(1);
    expect(err.file).toBe('m.yaml');
    expect(err.entry?.index).toBe(index);
    expect(err.key).toBe(key);
    expect(err.reason).toContain(reason);
    expect(err.message).toContain(reason);
  });

  it('names the entry by its fqdn when it has one', () => {
    const err = issue({ sniMappings: [{ fqdn: 'ok.example', ipv4: '10.0.0.1', port: 1 }, { fqdn: 'b.example', ipv4: 'x', port: 1 }] });
    expect(err.entry).toEqual({ index: 1, fqdn: 'b.example' });
  });

  it('refuses duplicates, after normalising, naming both entries', () => {
    const err = issue({
      sniMappings: [
        { fqdn: 'a.example', ipv4: '10.0.0.1', port: 1 },
        { fqdn: '*.a.example', ipv4: '10.0.0.1', port: 1 },
        { fqdn: 'A.Example.', ipv4: '10.0.0.2', port: 1 },
        { fqdn: '*.A.EXAMPLE', ipv4: '10.0.0.2', port: 1 },
      ],
    });
    expect(err.issues.map((i) => [i.entry?.index, i.key])).toEqual([
      [2, 'fqdn'],
      [3, 'fqdn'],
    ]);
    expect(err.issues[0]!.reason).toContain('duplicate of sniMappings[0]');
    expect(err.issues[1]!.reason).toContain('duplicate of sniMappings[1]');
  });

  it('refuses a document that is not a mapping, a missing list and unknown top-level keys', () => {
    expect(issue(null).reason).toContain('got null');
    expect(issue([]).reason).toContain('got a list');
    expect(issue({}).key).toBe('sniMappings');
    expect(issue({ sniMappings: {} }).reason).toContain('must be a list');
    const extra = issue({ sniMappings: [], defualt: 'drop' });
    expect(extra).toMatchObject({ key: 'defualt', entry: undefined });
  });

  it('refuses a bad default', () => {
    expect(issue({ sniMappings: [], default: 'dorp' })).toMatchObject({ key: 'default' });
    expect(issue({ sniMappings: [], default: null })).toMatchObject({ key: 'default' });
    expect(issue({ sniMappings: [], default: { ipv4: '10.0.0.1' } })).toMatchObject({ key: 'default.port' });
    expect(issue({ sniMappings: [], default: { fqdn: 'x', ipv4: '10.0.0.1', port: 1 } })).toMatchObject({ key: 'default.fqdn' });
  });

  it('reports every problem at once, and the first in the fields', () => {
    const err = issue({
      sniMappings: [
        { fqdn: 'a.example', ipv4: 'bad', port: 1 },
        { fqdn: 'b.example', ipv4: '10.0.0.1', port: -1 },
      ],
      default: 'nope',
    });
    expect(err.issues.map((i) => i.key)).toEqual(['ipv4', 'port', 'default']);
    expect(err).toMatchObject({ entry: { index: 0 }, key: 'ipv4' });
    expect(err.message.split('\n')).toHaveLength(4);
  });
});

describe('YAML sources', () => {
  it('reports syntax errors with their line', () => {
    const err = errorOf(() => mappingsFromYaml('sniMappings:\n  - fqdn: a\n   bad: [\n', { file: 'x.yaml' }));
    expect(err.file).toBe('x.yaml');
    expect(err.line).toBeGreaterThanOrEqual(2);
    expect(err.reason).toMatch(/^YAML: /);
  });

  it('refuses duplicate keys', () => {
    const err = errorOf(() => mappingsFromYaml('sniMappings: []\nsniMappings: []\n'));
    expect(err.reason).toContain('unique');
    expect(err.line).toBe(2);
  });

  it('explains an unquoted wildcard name', () => {
    const err = errorOf(() => mappingsFromYaml('sniMappings:\n  - fqdn: *.example.com\n    ipv4: 10.0.0.1\n    port: 1\n'));
    expect(err.reason).toContain('quote wildcard names');
    expect(err.line).toBe(2);
  });

  it('points at the line of the bad value, or of the entry when a key is missing', () => {
    const text = 'sniMappings:\n  - fqdn: a.example\n    ipv4: 10.0.0.1\n    port: 1\n  - fqdn: b.example\n    ipv4: 10.0.0.2\n';
    const err = errorOf(() => mappingsFromYaml(text));
    expect(err).toMatchObject({ line: 5, entry: { index: 1, fqdn: 'b.example' }, key: 'port', reason: 'missing' });
  });

  it('refuses an empty document', () => {
    expect(errorOf(() => mappingsFromYaml('')).reason).toContain('got null');
  });
});

describe('files', () => {
  it('loads a file, async and sync, and remembers its path', async () => {
    const file = tempFile('mappings.yaml', SEED_FORMAT);
    const a = await loadMappings(file);
    const b = loadMappingsSync(file);
    expect(a.file).toBe(file);
    expect(b.file).toBe(file);
    expect(a.rules).toEqual(b.rules);
  });

  it('names the file in errors, including when it cannot be read', async () => {
    const file = tempFile('bad.yaml', 'sniMappings:\n  - fqdn: a.example\n    ipv4: 10.0.0.1\n    port: nope\n');
    await expect(loadMappings(file)).rejects.toMatchObject({ file, line: 4, key: 'port' });
    expect(errorOf(() => loadMappingsSync(file))).toMatchObject({ file, line: 4 });
    const missing = join(tmpdir(), 'flowlb-no-such-file.yaml');
    await expect(loadMappings(missing)).rejects.toBeInstanceOf(MappingsError);
    expect(errorOf(() => loadMappingsSync(missing)).reason).toContain('cannot read');
  });
});

describe('helloVerify', () => {
  const text = `sniMappings:
  - fqdn: "guarded.example"
    ipv4: "10.0.0.1"
    port: 4433
    helloVerify: true
  - fqdn: "*.guarded.example"
    targets:
      - { ipv4: 10.0.0.2, port: 4433 }
    helloVerify: true
  - fqdn: "open.example"
    ipv4: "10.0.0.3"
    port: 4433
    helloVerify: false
  - fqdn: "plain.example"
    ipv4: "10.0.0.4"
    port: 4433
default: { ipv4: 10.0.9.9, port: 4433, helloVerify: true }
`;

  it('is carried on the rule and the resolution only where it is on', () => {
    const table = mappingsFromYaml(text);
    expect(table.rules.map((r) => r.helloVerify)).toEqual([true, true, undefined, undefined]);
    expect(table.resolve('guarded.example', 'c')).toMatchObject({ match: 'exact', helloVerify: true });
    expect(table.resolve('a.guarded.example', 'c')).toMatchObject({ match: 'wildcard', helloVerify: true });
    expect(table.resolve('open.example', 'c')).not.toHaveProperty('helloVerify');
    expect(table.resolve('plain.example', 'c')).not.toHaveProperty('helloVerify');
  });

  it('applies to the default in its object forms', () => {
    const table = mappingsFromYaml(text);
    expect(table.defaultHelloVerify).toBe(true);
    expect(table.resolve('elsewhere.example', 'c')).toMatchObject({ match: 'default', helloVerify: true });
    expect(table.resolve(undefined, 'c')).toMatchObject({ match: 'default', helloVerify: true });
    const withTargets = mappingsFromObject({ sniMappings: [], default: { targets: [{ ipv4: '10.0.0.1', port: 1 }], helloVerify: true } });
    expect(withTargets.resolve('x.example', 'c')).toMatchObject({ helloVerify: true });
    const without = mappingsFromObject({ sniMappings: [], default: { ipv4: '10.0.0.1', port: 1 } });
    expect(without.defaultHelloVerify).toBe(false);
    expect(without.resolve('x.example', 'c')).not.toHaveProperty('helloVerify');
  });

  it('leaves the original format and tables without the key as they were', () => {
    const table = mappingsFromYaml(SEED_FORMAT);
    expect(table.rules.every((r) => !('helloVerify' in r))).toBe(true);
    expect(table.defaultHelloVerify).toBe(false);
  });

  it.each([
    ['yes', 'got "yes"'],
    ['"true"', 'got "true"'],
    ['1', 'got 1'],
    ['null', 'got null'],
    ['[true]', 'got a list'],
  ])('refuses helloVerify: %s, with file, line, entry and key', (value, reason) => {
    const yaml = `sniMappings:\n  - fqdn: "a.example"\n    ipv4: "10.0.0.1"\n    port: 1\n    helloVerify: ${value}\n`;
    const err = errorOf(() => mappingsFromYaml(yaml, { file: 'm.yaml' }));
    expect(err.issues).toHaveLength(1);
    expect(err).toMatchObject({ file: 'm.yaml', line: 5, entry: { index: 0, fqdn: 'a.example' }, key: 'helloVerify' });
    expect(err.reason).toBe(`must be true or false, ${reason}`);
    expect(err.message).toBe(`m.yaml:5: sniMappings[0] (fqdn "a.example"): helloVerify: must be true or false, ${reason}`);
  });

  it('refuses a bad value on the default, and a misspelt key', () => {
    const bad = errorOf(() => mappingsFromYaml('sniMappings: []\ndefault: { ipv4: 10.0.0.1, port: 1, helloVerify: on }\n'));
    expect(bad).toMatchObject({ line: 2, key: 'default.helloVerify', entry: undefined });
    const misspelt = errorOf(() =>
      mappingsFromObject({ sniMappings: [{ fqdn: 'a.example', ipv4: '10.0.0.1', port: 1, helloVerfy: true }] }),
    );
    expect(misspelt).toMatchObject({ key: 'helloVerfy', entry: { index: 0 } });
    expect(misspelt.reason).toContain('helloVerify');
  });
});
