import { describe, expect, it } from 'vitest';
import { mappingsFromObject } from './mappings.js';

const t = (ipv4: string) => ({ ipv4, port: 4433 });

const table = mappingsFromObject({
  sniMappings: [
    { fqdn: 'foo.example', ...t('10.0.0.1') },
    { fqdn: '*.example.com', ...t('10.0.0.2') },
    { fqdn: '*.eu.example.com', ...t('10.0.0.3') },
    { fqdn: 'www.eu.example.com', ...t('10.0.0.4') },
    { fqdn: '*.com', ...t('10.0.0.5') },
  ],
});

const addressFor = (name: string | undefined): string | undefined => {
  const r = table.resolve(name, 'client');
  return r.kind === 'target' ? r.target.address : undefined;
};

describe('MappingTable', () => {
  it('matches names case-insensitively and ignores one trailing dot', () => {
    expect(addressFor('foo.example')).toBe('10.0.0.1');
    expect(addressFor('FOO.Example')).toBe('10.0.0.1');
    expect(addressFor('foo.example.')).toBe('10.0.0.1');
    expect(addressFor('foo.example..')).toBeUndefined();
    expect(addressFor('xfoo.example')).toBeUndefined();
  });

  it('picks the most specific entry: exact, then the longest wildcard suffix', () => {
    expect(addressFor('www.eu.example.com')).toBe('10.0.0.4');
    expect(addressFor('api.eu.example.com')).toBe('10.0.0.3');
    expect(addressFor('a.b.eu.example.com')).toBe('10.0.0.3');
    expect(addressFor('eu.example.com')).toBe('10.0.0.2');
    expect(addressFor('x.example.com')).toBe('10.0.0.2');
    expect(addressFor('deep.x.example.com')).toBe('10.0.0.2');
    expect(addressFor('other.com')).toBe('10.0.0.5');
    expect(addressFor('Other.COM.')).toBe('10.0.0.5');
  });

  it('does not let a wildcard match its bare suffix', () => {
    expect(addressFor('example.com')).toBe('10.0.0.5');
    expect(addressFor('com')).toBeUndefined();
  });

  it('says whether the match was exact or by wildcard, and which entry', () => {
    expect(table.resolve('foo.example', 'c')).toMatchObject({ match: 'exact', rule: { index: 0 } });
    expect(table.resolve('a.eu.example.com', 'c')).toMatchObject({ match: 'wildcard', rule: { index: 2, fqdn: '*.eu.example.com' } });
    expect(table.match('A.EU.example.com')).toMatchObject({ match: 'wildcard', rule: { index: 2 } });
    expect(table.match('nothing.example')).toBeUndefined();
  });

  it('without a default, tells no name from an unknown name', () => {
    expect(table.resolve(undefined, 'c')).toEqual({ kind: 'none', why: 'no-name' });
    expect(table.resolve('nothing.example', 'c')).toEqual({ kind: 'none', why: 'unknown-name' });
  });

  it('sends no name and unknown names to the default', () => {
    const withDefault = mappingsFromObject({ sniMappings: [{ fqdn: 'a.example', ...t('10.0.0.1') }], default: t('10.9.9.9') });
    expect(withDefault.resolve(undefined, 'c')).toEqual({ kind: 'target', target: { address: '10.9.9.9', port: 4433 }, match: 'default' });
    expect(withDefault.resolve('b.example', 'c')).toMatchObject({ kind: 'target', match: 'default' });
    expect(withDefault.resolve('a.example', 'c')).toMatchObject({ kind: 'target', match: 'exact' });
  });

  it('spreads clients of one name over its targets, each client stable', () => {
    const multi = mappingsFromObject({
      sniMappings: [{ fqdn: 'm.example', targets: [t('10.0.0.1'), t('10.0.0.2'), t('10.0.0.3')] }],
      default: { targets: [t('10.1.0.1'), t('10.1.0.2')] },
    });
    const seen = new Set<string>();
    const seenDefault = new Set<string>();
    for (let port = 1000; port < 1300; port++) {
      const key = `198.51.100.7:${port}`;
      const r = multi.resolve('m.example', key);
      const again = multi.resolve('M.example.', key);
      if (r.kind !== 'target' || again.kind !== 'target') throw new Error('expected targets');
      expect(again.target).toBe(r.target);
      seen.add(r.target.address);
      const d = multi.resolve(undefined, key);
      if (d.kind === 'target') seenDefault.add(d.target.address);
    }
    expect(seen.size).toBe(3);
    expect(seenDefault.size).toBe(2);
  });
});
