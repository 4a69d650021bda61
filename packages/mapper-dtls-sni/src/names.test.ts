import { describe, expect, it } from 'vitest';
import { normalizeHostName, parseNamePattern } from './names.js';

describe('normalizeHostName', () => {
  it('lower-cases and drops one trailing dot', () => {
    expect(normalizeHostName('Foo.EXAMPLE.')).toBe('foo.example');
    expect(normalizeHostName('foo.example')).toBe('foo.example');
    expect(normalizeHostName('foo.example..')).toBe('foo.example.');
  });
});

describe('parseNamePattern', () => {
  it('reads exact names in normal form', () => {
    expect(parseNamePattern('Foo.Example.')).toEqual({ wildcard: false, name: 'foo.example' });
    expect(parseNamePattern('_svc.xn--bcher-kva.example')).toEqual({ wildcard: false, name: '_svc.xn--bcher-kva.example' });
    expect(parseNamePattern('localhost')).toEqual({ wildcard: false, name: 'localhost' });
  });

  it('reads wildcards as the suffix they cover', () => {
    expect(parseNamePattern('*.Example.COM')).toEqual({ wildcard: true, suffix: 'example.com' });
    expect(parseNamePattern('*.com.')).toEqual({ wildcard: true, suffix: 'com' });
  });

  it.each([
    ['', 'is empty'],
    [' foo.example', 'white space'],
    ['foo.example ', 'white space'],
    ['bücher.example', 'A-labels'],
    ['*', 'default'],
    ['*.', 'default'],
    ['a.*.example', '"*" is only allowed'],
    ['*foo.example', '"*" is only allowed'],
    ['**.example', '"*" is only allowed'],
    ['foo..example', 'empty label'],
    ['.foo.example', 'empty label'],
    ['foo example', 'only letters'],
    ['foo/example', 'only letters'],
    [`${'a'.repeat(64)}.example`, 'longer than 63'],
    [Array.from({ length: 52 }, () => 'abcd').join('.'), 'longer than 253'],
  ])('refuses %j', (fqdn, message) => {
    const r = parseNamePattern(fqdn);
    expect('error' in r).toBe(true);
    if ('error' in r) expect(r.error).toContain(message);
  });

  it('accepts a name of exactly 253 characters', () => {
    const name = `${Array.from({ length: 50 }, () => 'abcd').join('.')}.abc`;
    expect(name.length).toBe(253);
    expect(parseNamePattern(name)).toEqual({ wildcard: false, name });
  });
});
