import { execFileSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { describePrivileged } from '@flowlb/testkit';
import { runCli } from '../test-support/cli.js';

function expectRouted(stdout: string): void {
  expect(stdout).toMatch(/^ {2}ok {4}alpha\.example +from \S+ {2}answered by backend-a$/m);
  expect(stdout).toMatch(/^ {2}ok {4}beta\.example +from \S+ {2}answered by backend-b$/m);
  expect(stdout).toMatch(/^ {2}ok {4}www\.gamma\.example +from \S+ {2}answered by backend-a$/m);
  expect(stdout).toMatch(/^ {2}ok {4}delta\.example +from \S+ {2}no answer \(no mapping: dropped, as configured\)$/m);
  expect(stdout).not.toMatch(/FAIL/);
  expect(stdout).toContain('every client reached the backend its name maps to.\n');
  expect(stdout.trimEnd().split('\n').at(-1)).toBe('cleaned up: nothing of the demo is left.');
}

describePrivileged('flowlb demo with network namespaces', () => {
  it('routes real DTLS clients by SNI over XDP, shows the fast path and removes everything', async () => {
    const r = await runCli(['demo'], { timeoutMs: 90_000 });
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout.split('\n')[0]).toBe('flowlb demo: DTLS clients routed by SNI through network namespaces, XDP datapath');
    expectRouted(r.stdout);
    expect(r.stdout).toMatch(/^ {2}\d+ datagrams forwarded in the kernel \(\d+ client to backend, \d+ backend to client\)$/m);
    const pct = Number(/^ {2}(\d+) % of the DTLS datagrams took the fast path$/m.exec(r.stdout)?.[1]);
    expect(pct).toBeGreaterThan(50);
    // Four flows in the map, one per answered client.
    const flows = r.stdout.split('flows in the XDP map')[1]!.split('\n\n')[0]!.split('\n').filter((l) => /^ {2}10\.90\.1\.2:/.test(l));
    expect(flows).toHaveLength(4);
    const names = [...r.stdout.matchAll(/(flowlb-demo-\d+-\w+)/g)].map((m) => m[1]!);
    expect(names.length).toBeGreaterThan(0);
    const left = execFileSync('ip', ['netns', 'list'], { encoding: 'utf8' });
    for (const n of names) expect(left).not.toContain(n);
  }, 120_000);
});

describe('flowlb demo on loopback', () => {
  it('falls back to the userspace datapath and routes the same', async () => {
    const r = await runCli(['demo', '--userspace'], { timeoutMs: 90_000 });
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout.split('\n')[0]).toBe('flowlb demo: DTLS clients routed by SNI on loopback, userspace datapath (asked for with --userspace)');
    expectRouted(r.stdout);
    expect(r.stdout).toMatch(/^counters: \d+ datagrams to backends and \d+ back, all through the balancer process;$/m);
  }, 120_000);
});
