import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { describePrivileged, isCi, quicToolsCheck } from '@flowlb/testkit';
import { runCli } from '../test-support/cli.js';

/** The lines under the heading that starts with `heading`, up to the next blank line. */
function section(stdout: string, heading: string): string {
  const start = stdout.indexOf(`\n${heading}`);
  expect(start, `no "${heading}" in:\n${stdout}`).toBeGreaterThan(-1);
  return stdout.slice(start + 1).split('\n\n')[0]!;
}

function expectRouted(clients: string): void {
  expect(clients).toMatch(/^ {2}ok {4}alpha\.example +from \S+ {2}answered by backend-a$/m);
  expect(clients).toMatch(/^ {2}ok {4}beta\.example +from \S+ {2}answered by backend-b$/m);
  expect(clients).toMatch(/^ {2}ok {4}www\.gamma\.example +from \S+ {2}answered by backend-a$/m);
  expect(clients).toMatch(/^ {2}ok {4}delta\.example +from \S+ {2}no answer \(no mapping: dropped, as configured\)$/m);
  expect(clients).not.toMatch(/FAIL/);
}

function expectCleanEnd(stdout: string): void {
  expect(stdout).toContain('every client reached the backend its name maps to.\n');
  expect(stdout.trimEnd().split('\n').at(-1)).toBe('cleaned up: nothing of the demo is left.');
}

/** Each answered client of `clients` has its flow in `flows`, to the backend port `port` of the backend that answered. */
function expectFlowsOf(clients: string, flows: readonly string[], port: number): void {
  const backends: Record<string, string> = { 'backend-a': '10.90.2.10', 'backend-b': '10.90.2.11' };
  const answered = [...clients.matchAll(/from (\S+) {2}answered by (\S+)$/gm)];
  expect(answered).toHaveLength(4);
  for (const [, from, backend] of answered) {
    expect(flows.some((row) => row.startsWith(`  ${from} `) && row.includes(` ${backends[backend!]}:${port} `)), `${from} -> ${backend}`).toBe(true);
  }
}

describePrivileged('flowlb demo with network namespaces', () => {
  it('routes real DTLS and QUIC clients by SNI over XDP, shows the fast path and removes everything', async () => {
    const quic = quicToolsCheck();
    // CI installs ngtcp2: there, a demo without its QUIC part is a failure, not a skip.
    if (isCi()) expect(quic.ok, quic.reason).toBe(true);
    const r = await runCli(['demo'], { timeoutMs: 90_000 });
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const what = quic.ok ? 'DTLS and QUIC' : 'DTLS';
    expect(r.stdout.split('\n')[0]).toBe(`flowlb demo: ${what} clients routed by SNI through network namespaces, XDP datapath`);
    const dtls = section(r.stdout, 'DTLS clients: ');
    expectRouted(dtls);
    const quicClients = quic.ok ? section(r.stdout, 'QUIC clients: ') : undefined;
    if (quicClients) expectRouted(quicClients);
    else expect(r.stdout).toContain("QUIC clients skipped: ngtcp2's gtlsserver and gtlsclient are not installed (apt-get install ngtcp2-client ngtcp2-server)\n");
    expectCleanEnd(r.stdout);
    expect(r.stdout).toMatch(/^ {2}\d+ datagrams forwarded in the kernel \(\d+ client to backend, \d+ backend to client\)$/m);
    const pct = Number(new RegExp(`^ {2}(\\d+) % of the ${what} datagrams took the fast path$`, 'm').exec(r.stdout)?.[1]);
    expect(pct).toBeGreaterThan(50);
    // One flow in the map per answered client: DTLS ones to the backends' port 4433, QUIC ones to 4434.
    const flows = r.stdout.split('flows in the XDP map')[1]!.split('\n\n')[0]!.split('\n').filter((l) => /^ {2}10\.90\.1\.2:/.test(l));
    expect(flows).toHaveLength(quic.ok ? 8 : 4);
    expectFlowsOf(dtls, flows, 4433);
    if (quicClients) expectFlowsOf(quicClients, flows, 4434);
    const names = [...r.stdout.matchAll(/(flowlb-demo-\d+-\w+)/g)].map((m) => m[1]!);
    expect(names.length).toBeGreaterThan(0);
    const left = execFileSync('ip', ['netns', 'list'], { encoding: 'utf8' });
    for (const n of names) expect(left).not.toContain(n);
    // Nor the client's hosts file.
    expect(names.filter((n) => existsSync(`/etc/netns/${n}`))).toEqual([]);
  }, 120_000);
});

describe('flowlb demo on loopback', () => {
  it('falls back to the userspace datapath and routes the same, DTLS only', async () => {
    const r = await runCli(['demo', '--userspace'], { timeoutMs: 90_000 });
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout.split('\n')[0]).toBe('flowlb demo: DTLS clients routed by SNI on loopback, userspace datapath (asked for with --userspace)');
    expect(r.stdout.split('\n')[1]).toMatch(/^QUIC clients skipped on loopback: /);
    expectRouted(section(r.stdout, 'DTLS clients: '));
    expectCleanEnd(r.stdout);
    expect(r.stdout).toMatch(/^counters: \d+ datagrams to backends and \d+ back, all through the balancer process;$/m);
  }, 120_000);
});
