import dgram from 'node:dgram';
import { existsSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { mappingsFromYaml } from '@flowlb/mapper-dtls-sni';
import { parseConfig } from '../config/index.js';
import { systemProbe, type SocketOwner, type SystemProbe } from './probe.js';
import { checkSnatPortUsers, mappingTargets } from './snat-port-users.js';

const HEADER = '   sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops\n';
const HEADER6 = '  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops\n';

/** A /proc/net/udp line as a little-endian kernel prints it. */
function line(local: string, port: number, inode: number, remote = '0.0.0.0:0', uid = 0): string {
  const hexAddr = (a: string) => a.split('.').reverse().map((b) => Number(b).toString(16).padStart(2, '0')).join('').toUpperCase();
  const hexPort = (p: number) => p.toString(16).padStart(4, '0').toUpperCase();
  const [ra, rp] = remote.split(':');
  const st = rp === '0' ? '07' : '01';
  return `  1: ${hexAddr(local)}:${hexPort(port)} ${hexAddr(ra!)}:${hexPort(Number(rp))} ${st} 00000000:00000000 00:00000000 00000000 ${uid} 0 ${inode} 2 0000000000000000 0\n`;
}

/** Only what this check reads: the two socket tables and who owns a socket. */
function probe(udp: string, udp6 = '', owners: Record<number, SocketOwner> = {}): SystemProbe {
  const files: Record<string, string> = { '/proc/net/udp': HEADER + udp, '/proc/net/udp6': HEADER6 + udp6 };
  return {
    readFile: (p: string) => files[p],
    socketOwners: (inodes: readonly number[]) => new Map(inodes.filter((i) => owners[i]).map((i) => [i, owners[i]!])),
  } as Partial<SystemProbe> as SystemProbe;
}

// The reported setup: VIP 127.0.0.1:17000, no SNAT range given, backends on 127.0.0.1:17001 and :17002.
const seed = parseConfig('port: 17000\naddr: 127.0.0.1\nmode: userspace\n', 'config.yaml');
const mappings = mappingsFromYaml(
  [
    'sniMappings:',
    '  - { fqdn: a.example, ipv4: 127.0.0.1, port: 17001 }',
    '  - { fqdn: b.example, ipv4: 127.0.0.2, port: 17002 }',
    '  - { fqdn: c.example, ipv4: 192.0.2.9, port: 17003 }',
    '  - { fqdn: d.example, ipv4: 127.0.0.1, port: 4433 }',
    'default: { ipv4: 127.0.0.1, port: 29999 }',
  ].join('\n'),
);

describe('checkSnatPortUsers', () => {
  it('the seed-style config takes the VIP port out of the default range, and the backends next to it stay in', () => {
    expect(seed.snatPorts).toEqual({ min: 17001, max: 29999 });
  });

  it('names each port inside the range that a socket on the SNAT address or 0.0.0.0 listens on, and who listens', () => {
    const udp =
      line('127.0.0.1', 17001, 501) +
      line('0.0.0.0', 17002, 502, '0.0.0.0:0', 1000) +
      // Not in the way: another address, outside the range, a connected socket (a client, or a flow of flowlb's own).
      line('127.0.0.2', 17004, 503) +
      line('127.0.0.1', 5353, 504) +
      line('127.0.0.1', 17005, 505, '127.0.0.1:17001');
    const r = checkSnatPortUsers(probe(udp, '', { 501: { pid: 4242, command: 'openssl' } }), seed);
    expect(r).toEqual({
      id: 'snat-ports-free',
      title: 'SNAT ports free',
      verdict: 'warn',
      detail:
        '2 ports inside the SNAT ports 17001-29999 on 127.0.0.1 are in use — ' +
        'port 17001: openssl (pid 4242) listens on 127.0.0.1:17001; ' +
        'port 17002: a socket of uid 1000 (inode 502; its process is not visible here) listens on 0.0.0.0:17002. ' +
        'flowlb sets a port that another socket holds aside when it meets it (with a warning in its log), but a backend ' +
        'that starts after flowlb can find its port taken by a flow',
      fix: 'move the SNAT range off them, e.g. snat_ports: "17003-29999" (or snat_port_min: 17003 and snat_port_max: 29999), or move those sockets and backends out of the range',
    });
  });

  it('counts IPv6 wildcard and IPv4-mapped sockets, which hold the IPv4 port too', () => {
    const udp6 =
      '  2: 00000000000000000000000000000000:4E21 00000000000000000000000000000000:0000 07 00000000:00000000 00:00000000 00000000 0 0 601 2 0 0\n' +
      '  3: 0000000000000000FFFF00000100007F:4E22 00000000000000000000000000000000:0000 07 00000000:00000000 00:00000000 00000000 0 0 602 2 0 0\n';
    const r = checkSnatPortUsers(probe('', udp6, { 601: { pid: 7, command: 'dnsd' }, 602: { pid: 8, command: 'node' } }), seed);
    expect(r.verdict).toBe('warn');
    expect(r.detail).toContain('port 20001: dnsd (pid 7) listens on [::]:20001 (IPv6 and, unless it set IPV6_V6ONLY, IPv4)');
    expect(r.detail).toContain('port 20002: node (pid 8) listens on [::ffff:127.0.0.1]:20002');
    expect(r.fix).toContain('snat_ports: "20003-29999"');
  });

  it('names mapping targets on the SNAT address (or both on loopback) whose ports lie in the range', () => {
    const r = checkSnatPortUsers(probe(line('127.0.0.1', 17001, 701)), seed, mappingTargets(mappings));
    expect(r.verdict).toBe('warn');
    expect(r.detail).toMatch(/^3 ports inside the SNAT ports 17001-29999 on 127\.0\.0\.1 are in use — /);
    expect(r.detail).toContain(
      'port 17001: a socket of uid 0 (inode 701; its process is not visible here) listens on 127.0.0.1:17001; sniMappings[0] (a.example) sends flows to 127.0.0.1:17001',
    );
    expect(r.detail).toContain('port 17002: sniMappings[1] (b.example) sends flows to 127.0.0.2:17002');
    expect(r.detail).toContain('port 29999: default sends flows to 127.0.0.1:29999');
    // On another host, or outside the range: none of the SNAT range's business.
    expect(r.detail).not.toContain('17003');
    expect(r.detail).not.toContain('4433');
    expect(r.fix).toContain('snat_ports: "17003-29998"');
  });

  it('is fine when nothing is in the way, and says what it could not look at', () => {
    const elsewhere = mappingsFromYaml('sniMappings:\n  - { fqdn: c.example, ipv4: 192.0.2.9, port: 17003 }\n');
    expect(checkSnatPortUsers(probe(''), seed, mappingTargets(elsewhere))).toMatchObject({
      verdict: 'ok',
      detail: 'no UDP socket listens on 127.0.0.1 or 0.0.0.0 inside 17001-29999, and no mapping target is there',
    });
    expect(checkSnatPortUsers(probe(''), seed).detail).toBe(
      'no UDP socket listens on 127.0.0.1 or 0.0.0.0 inside 17001-29999 (mapping targets not checked: no mappings given)',
    );
    // Without a config the SNAT address is unknown: only wildcard sockets count, against the default range.
    const none = checkSnatPortUsers(probe(line('127.0.0.1', 17001, 801)), undefined);
    expect(none).toMatchObject({ verdict: 'ok', detail: 'no UDP socket listens on 0.0.0.0 inside 10000-29999 (without a config the SNAT address is unknown)' });
    expect(checkSnatPortUsers(probe(line('0.0.0.0', 17001, 802)), undefined).detail).toMatch(/^1 port inside the SNAT ports 10000-29999 is in use — port 17001: /);
  });

  it('when every port is in use it says to choose another range', () => {
    const tiny = parseConfig('port: 4433\naddr: 127.0.0.1\nsnat_ports: "17001-17002"\n', 'c.yaml');
    const r = checkSnatPortUsers(probe(line('127.0.0.1', 17001, 1) + line('127.0.0.1', 17002, 2)), tiny);
    expect(r.fix).toBe(
      'choose SNAT ports (snat_ports, or snat_port_min and snat_port_max) that none of them is in, or move those sockets and backends out of the range',
    );
  });

  it.skipIf(!existsSync('/proc/net/udp'))('on this machine: finds a socket this process listens on, and names this process', async () => {
    const socket = dgram.createSocket('udp4');
    try {
      await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', resolve));
      const port = socket.address().port;
      const config = parseConfig(`port: 4433\naddr: 127.0.0.1\nsnat_ports: "${port}-${port}"\n`, 'c.yaml');
      const r = checkSnatPortUsers(systemProbe, config);
      expect(r.verdict).toBe('warn');
      expect(r.detail).toMatch(new RegExp(`port ${port}: \\S.* \\(pid ${process.pid}\\) listens on 127\\.0\\.0\\.1:${port}`));
    } finally {
      socket.close();
    }
  });
});
