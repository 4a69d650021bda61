import { describe, expect, it } from 'vitest';
import { normalizeServerName, staticRoutes } from './routes.js';

const client = { address: '192.0.2.1', port: 50000 };
const A = { address: '10.0.0.1', port: 443 };
const B = { address: '10.0.0.2', port: 8443 };

describe('staticRoutes', () => {
  const routes = staticRoutes({ 'a.example': A, 'B.Example.': B });

  it.each([
    ['a.example', { kind: 'target', target: A }],
    ['A.EXAMPLE', { kind: 'target', target: A }],
    ['a.example.', { kind: 'target', target: A }],
    ['b.example', { kind: 'target', target: B }],
    ['b.example.', { kind: 'target', target: B }],
    ['c.example', { kind: 'none', reason: 'unknown-name' }],
    ['a.example..', { kind: 'none', reason: 'unknown-name' }],
    ['x.a.example', { kind: 'none', reason: 'unknown-name' }],
    ['', { kind: 'none', reason: 'unknown-name' }],
    [undefined, { kind: 'none', reason: 'no-sni' }],
  ])('%j -> %j', (serverName, route) => {
    expect(routes.resolve({ serverName, alpn: ['h3'] }, client)).toEqual(route);
  });

  it('copies the table', () => {
    const table = { 'a.example': { ...A } };
    const r = staticRoutes(table);
    table['a.example'].port = 1;
    (table as Record<string, typeof A>)['z.example'] = B;
    expect(r.resolve({ serverName: 'a.example', alpn: [] }, client)).toEqual({ kind: 'target', target: A });
    expect(r.resolve({ serverName: 'z.example', alpn: [] }, client)).toMatchObject({ kind: 'none' });
  });

  it('refuses two spellings of one name', () => {
    expect(() => staticRoutes({ 'a.example': A, 'A.example.': B })).toThrow(/"a.example" and "A.example." are the same name/);
  });

  it.each([
    [{ address: '10.0.0.1' }],
    [{ address: '10.0.0.1', port: 70000 }],
    [{ address: '10.0.0.1', port: 1.5 }],
    [{ host: '10.0.0.1', port: 1 }],
    [null],
  ])('refuses the target %j', (target) => {
    expect(() => staticRoutes({ 'a.example': target as never })).toThrow(TypeError);
  });
});

describe('normalizeServerName', () => {
  it.each([
    ['Example.COM', 'example.com'],
    ['example.com.', 'example.com'],
    ['example.com..', 'example.com.'],
    ['.', ''],
  ])('%s -> %s', (name, expected) => expect(normalizeServerName(name)).toBe(expected));
});
