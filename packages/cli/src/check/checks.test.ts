import { existsSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { mappingsFromYaml } from '@flowlb/mapper-dtls-sni';
import { parseConfig } from '../config/index.js';
import { XDP_PASS_BPF_OBJECT } from '@flowlb/xdp-core';
import { runChecks } from './checks.js';
import { checkVethPeer, shellWord, type PeerInfo } from './network-checks.js';
import { BPF_FS_MAGIC, parseIpLinks, type LinkDetails, type SystemProbe } from './probe.js';
import { renderCheckReport } from './render.js';
import type { CheckResult } from './types.js';

const ALL_CAPS = (1n << 40n) - 1n;

/** A machine where everything is right, to be spoilt one thing at a time. */
function probe(over: Partial<Omit<SystemProbe, 'links'>> & { sysctls?: Record<string, string>; links?: LinkDetails[] } = {}): SystemProbe {
  const sysctls: Record<string, string> = {
    '/proc/sys/net/ipv4/conf/eth0/forwarding': '1',
    '/proc/sys/net/ipv4/conf/all/accept_local': '0',
    '/proc/sys/net/ipv4/conf/eth0/accept_local': '1',
    '/proc/sys/net/ipv4/conf/all/rp_filter': '0',
    '/proc/sys/net/ipv4/conf/eth0/rp_filter': '2',
    '/proc/sys/net/ipv4/ip_local_port_range': '32768\t60999\n',
    '/proc/sys/net/ipv4/ip_local_reserved_ports': '\n',
    ...over.sysctls,
  };
  const links = over.links ?? [{ ifindex: 2, ifname: 'eth0', kind: undefined }];
  const { sysctls: _s, links: _l, ...rest } = over;
  return {
    kernelRelease: () => '6.18.0',
    fileExists: () => true,
    readFile: (p) => sysctls[p],
    capEff: () => ALL_CAPS,
    uid: () => 0,
    fsType: (p) => ({ probed: p, type: BPF_FS_MAGIC }),
    links: async () => links,
    addresses: async () => ['192.0.2.1'],
    netnsNames: async () => new Map(),
    linksIn: async () => [],
    txChecksum: async () => false,
    vlanUppers: () => [],
    rxVlanOffload: () => 'off',
    loadProgram: async () => ({ ok: true, libbpf: '1.1' }),
    ...rest,
  };
}

const config = (extra = ''): ReturnType<typeof parseConfig> =>
  parseConfig(`port: 4433\naddr: 192.0.2.1\ninterface: eth0\npin_path: /sys/fs/bpf/flowlb/x\n${extra}`, 'c.yaml');

async function verdicts(p: SystemProbe, extra?: string): Promise<Record<string, string>> {
  const r = await runChecks(p, config(extra));
  return Object.fromEntries(r.checks.map((c) => [c.id, c.verdict]));
}

describe('runChecks', () => {
  it('all ok on a machine that has everything', async () => {
    const r = await runChecks(probe(), config());
    expect(r.ok).toBe(true);
    expect(r.checks.map((c) => [c.id, c.verdict])).toEqual([
      ['kernel', 'ok'],
      ['btf', 'ok'],
      ['privileges', 'ok'],
      ['xdp-program', 'ok'],
      ['bpffs', 'ok'],
      ['address:addr', 'ok'],
      ['interface:eth0', 'ok'],
      ['forwarding:eth0', 'ok'],
      ['accept_local:eth0', 'ok'],
      ['rp_filter:eth0', 'ok'],
      ['snat-ports', 'ok'],
      ['snat-ports-free', 'ok'],
    ]);
    expect(renderCheckReport(r).split('\n').at(-2)).toBe('12 ok, 0 warnings, 0 failures: this machine can run the XDP datapath');
  });

  it('an old kernel fails, a missing BTF warns', async () => {
    const r = await runChecks(probe({ kernelRelease: () => '5.4.0-150-generic', fileExists: () => false }), config());
    expect(r.checks[0]).toEqual({
      id: 'kernel',
      title: 'kernel',
      verdict: 'fail',
      detail: '5.4.0-150-generic is older than 5.11, which XDP links and the coarse clock helper need',
      fix: 'upgrade the kernel, or run with mode: userspace',
    });
    expect(r.checks[1]?.verdict).toBe('warn');
  });

  it('the kernel line draws at 5.11, where bpf_ktime_get_coarse_ns came in', async () => {
    const verdict = async (rel: string) => (await runChecks(probe({ kernelRelease: () => rel }), config())).checks[0]?.verdict;
    expect(await verdict('5.10.209-1-amd64')).toBe('fail');
    expect(await verdict('5.11.0')).toBe('ok');
    expect(await verdict('6.1.0-18-amd64')).toBe('ok');
  });

  it('an unprivileged user is told what is missing', async () => {
    const r = await runChecks(
      probe({
        uid: () => 1000,
        capEff: () => 1n << 12n,
        loadProgram: async () => ({ ok: false, stage: 'load', error: Object.assign(new Error('EPERM: operation not permitted, bpf_object__load'), { code: 'EPERM' }) }),
      }),
      config(),
    );
    expect(r.checks[2]).toMatchObject({
      id: 'privileges',
      verdict: 'fail',
      detail: 'uid 1000 lacks CAP_BPF: loading the program needs CAP_BPF, attaching it needs CAP_NET_ADMIN',
    });
    expect(r.checks[3]).toMatchObject({
      verdict: 'fail',
      detail: 'loading the program was refused: EPERM: operation not permitted, bpf_object__load',
      fix: 'see privileges above',
    });
    expect(r.ok).toBe(false);
  });

  it('CAP_SYS_ADMIN stands in for CAP_BPF', async () => {
    const r = await runChecks(probe({ uid: () => 1000, capEff: () => (1n << 12n) | (1n << 21n) }), config());
    expect(r.checks[2]?.detail).toBe('uid 1000 with CAP_BPF (as CAP_SYS_ADMIN) and CAP_NET_ADMIN');
  });

  it('a missing native addon fails the program check', async () => {
    const error = Object.assign(new Error('the @flowlb/xdp-core native addon is not built'), { code: 'ERR_FLOWLB_NATIVE_NOT_BUILT' });
    const r = await runChecks(probe({ loadProgram: async () => ({ ok: false, stage: 'addon', error }) }), config());
    expect(r.checks[3]).toMatchObject({ verdict: 'fail', detail: '@flowlb/xdp-core cannot be used: the @flowlb/xdp-core native addon is not built' });
  });

  it('bpffs: `flowlb run` mounts it with CAP_SYS_ADMIN; without, a configured pin_path fails and the default warns', async () => {
    const sysfs = { fsType: (p: string) => ({ probed: p.startsWith('/sys/fs/bpf') ? '/sys/fs/bpf' : '/run', type: 0x62656572 }) };
    const mountable = await runChecks(probe(sysfs), config());
    expect(mountable.checks.find((c) => c.id === 'bpffs')).toMatchObject({
      verdict: 'warn',
      detail: expect.stringMatching(/^\/sys\/fs\/bpf is not on bpffs \(filesystem type 0x62656572\): `flowlb run` mounts a bpffs on \/sys\/fs\/bpf for its pins, /),
      fix: expect.stringContaining('mkdir -p /run/flowlb/bpffs && mount -t bpf bpf /run/flowlb/bpffs'),
    });
    const noSysAdmin = probe({ ...sysfs, capEff: () => (1n << 39n) | (1n << 12n) });
    expect((await verdicts(noSysAdmin)).bpffs).toBe('fail');
    const r = await runChecks(noSysAdmin, parseConfig('port: 4433\naddr: 192.0.2.1\n', 'c.yaml'));
    expect(r.checks.find((c) => c.id === 'bpffs')).toMatchObject({
      verdict: 'warn',
      fix: 'mount bpffs: mount -t bpf bpf /sys/fs/bpf (inside `ip netns exec` /sys/fs/bpf is not mounted); `flowlb run` mounts it itself with CAP_SYS_ADMIN',
    });
    // Elsewhere the folder that would be mounted on is a new one, never one that holds files already.
    const elsewhere = await runChecks(noSysAdmin, parseConfig('port: 4433\naddr: 192.0.2.1\npin_path: /run/flowlb-bpf/lb1\n', 'c.yaml'));
    expect(elsewhere.checks.find((c) => c.id === 'bpffs')?.fix).toMatch(/^mount bpffs: mkdir \/run\/flowlb-bpf && mount -t bpf bpf \/run\/flowlb-bpf /);
  });

  it('the VIP and the SNAT address must be on this host', async () => {
    const r = await runChecks(probe({ addresses: async () => ['192.0.2.1'] }), config('snat_addr: 198.51.100.7\n'));
    expect(r.checks.find((c) => c.id === 'address:snat_addr')).toEqual({
      id: 'address:snat_addr',
      title: 'snat_addr',
      verdict: 'fail',
      detail: '198.51.100.7 is not configured on any interface in this network namespace, so the balancer cannot bind it',
      fix: 'add it (ip addr add 198.51.100.7/32 dev <interface>) or correct snat_addr',
    });
  });

  it("accept_local counts through conf/all; the interface's own forwarding 0 warns, whatever ip_forward says", async () => {
    const p = probe({
      sysctls: {
        '/proc/sys/net/ipv4/ip_forward': '1',
        '/proc/sys/net/ipv4/conf/eth0/forwarding': '0',
        '/proc/sys/net/ipv4/conf/all/accept_local': '1',
        '/proc/sys/net/ipv4/conf/eth0/accept_local': '0',
      },
    });
    const r = await runChecks(p, config());
    expect(r.checks.find((c) => c.id === 'forwarding:eth0')).toEqual({
      id: 'forwarding:eth0',
      title: 'forwarding eth0',
      verdict: 'warn',
      detail:
        'net.ipv4.conf.eth0.forwarding is 0: packets of known flows that arrive on eth0 and that the XDP program hands to the kernel (next hop not resolved yet) are not forwarded',
      fix: '`flowlb run` sets it when it attaches (and puts it back when it detaches); or: sysctl -w net.ipv4.conf.eth0.forwarding=1',
    });
    expect(r.checks.find((c) => c.id === 'accept_local:eth0')).toMatchObject({ verdict: 'ok', detail: 'accept_local is on for eth0 (through conf/all)' });
    expect(r.checks.some((c) => c.id === 'ip_forward')).toBe(false);
  });

  it('rp_filter: the larger of conf/all and the interface counts, and only strict (1) warns', async () => {
    const rp = async (all: string, own: string): Promise<CheckResult | undefined> =>
      (
        await runChecks(
          probe({ sysctls: { '/proc/sys/net/ipv4/conf/all/rp_filter': all, '/proc/sys/net/ipv4/conf/eth0/rp_filter': own } }),
          config(),
        )
      ).checks.find((c) => c.id === 'rp_filter:eth0');
    expect(await rp('0', '0')).toMatchObject({ verdict: 'ok', detail: 'reverse path filtering is off for eth0 (net.ipv4.conf.eth0.rp_filter is 0, net.ipv4.conf.all.rp_filter 0)' });
    expect(await rp('1', '2')).toMatchObject({ verdict: 'ok', detail: 'reverse path filtering is loose for eth0 (net.ipv4.conf.eth0.rp_filter is 2, net.ipv4.conf.all.rp_filter 1)' });
    expect(await rp('2', '1')).toMatchObject({ verdict: 'ok' });
    expect(await rp('0', '1')).toMatchObject({ verdict: 'warn' });
    expect(await rp('1', '0')).toEqual({
      id: 'rp_filter:eth0',
      title: 'rp_filter eth0',
      verdict: 'warn',
      detail:
        "net.ipv4.conf.eth0.rp_filter is 0, net.ipv4.conf.all.rp_filter 1, so reverse path filtering is strict for eth0 (the larger of the two counts): a rewritten packet that the XDP program passes to the kernel has one of this host's addresses as source, which is not routed through eth0, and is dropped as a martian; loose mode (2) lets it through",
      fix: '`flowlb run` sets it when it attaches (and puts it back when it detaches); or: sysctl -w net.ipv4.conf.eth0.rp_filter=2',
    });
  });

  it('with sysctls: false, the fixes say that `flowlb run` leaves them alone', async () => {
    const p = probe({
      sysctls: {
        '/proc/sys/net/ipv4/conf/eth0/forwarding': '0',
        '/proc/sys/net/ipv4/conf/eth0/accept_local': '0',
        '/proc/sys/net/ipv4/conf/eth0/rp_filter': '1',
      },
    });
    const r = await runChecks(p, config('sysctls: false\n'));
    const fixes = Object.fromEntries(r.checks.filter((c) => c.fix).map((c) => [c.id, c.fix]));
    expect(fixes).toEqual({
      'forwarding:eth0': 'sysctls: false, so `flowlb run` leaves it alone: sysctl -w net.ipv4.conf.eth0.forwarding=1, or remove sysctls: false',
      'accept_local:eth0': 'sysctls: false, so `flowlb run` leaves it alone: sysctl -w net.ipv4.conf.eth0.accept_local=1, or remove sysctls: false',
      'rp_filter:eth0': 'sysctls: false, so `flowlb run` leaves it alone: sysctl -w net.ipv4.conf.eth0.rp_filter=2, or remove sysctls: false',
    });
    expect(r.checks.filter((c) => c.verdict === 'warn').map((c) => c.id)).toEqual(['forwarding:eth0', 'accept_local:eth0', 'rp_filter:eth0']);
  });

  it('VLAN devices on top: hardware tag stripping on warns with what to do; off is fine; unknown says how to look', async () => {
    const uppers = [{ name: 'eth0.10', id: 10, lower: 'eth0' }, { name: 'eth0.20', id: 20, lower: 'eth0' }];
    const vlan = async (rxvlan: 'on' | 'off' | 'unknown') =>
      (await runChecks(probe({ vlanUppers: (i) => (i === 'eth0' ? uppers : []), rxVlanOffload: () => rxvlan }), config())).checks.find((c) => c.id === 'vlan:eth0');
    expect(await vlan('on')).toEqual({
      id: 'vlan:eth0',
      title: 'VLAN eth0',
      verdict: 'warn',
      detail:
        'eth0 has VLAN devices on top (eth0.10, id 10; eth0.20, id 20) and hardware VLAN stripping (rx-vlan-offload) is on: frames tagged for them reach the XDP program looking untagged, and those of known flows are forwarded without their tag',
      fix: 'turn stripping off: ethtool -K eth0 rxvlan off; or attach to the VLAN devices instead of eth0 (interface/interfaces; generic mode, as VLAN devices have no native XDP)',
      command: 'ethtool -K eth0 rxvlan off',
    });
    expect(await vlan('off')).toMatchObject({ verdict: 'ok', detail: expect.stringMatching(/rx-vlan-offload\) is off, so their frames reach the XDP program tagged/) });
    expect(await vlan('unknown')).toMatchObject({ verdict: 'warn', fix: expect.stringMatching(/^install ethtool and look: ethtool -k eth0 \| grep rx-vlan-offload; /) });
    // Without VLAN devices there is nothing to say, and the offload is not even read.
    const r = await runChecks(probe({ rxVlanOffload: () => { throw new Error('not read'); } }), config());
    expect(r.checks.some((c) => c.id.startsWith('vlan:'))).toBe(false);
  });

  it('veth peers: same namespace, unnamed namespace, generic mode (not enough)', async () => {
    const veth = (peer: LinkDetails['peer']): LinkDetails[] => [{ ifindex: 2, ifname: 'eth0', kind: 'veth', peer }];
    const sameNs = probe({
      links: [...veth({ ifname: 'peer0' }), { ifindex: 3, ifname: 'peer0', kind: 'veth', xdp: { mode: 'native', progId: 7 } }],
    });
    const r1 = await runChecks(sameNs, config());
    expect(r1.checks.find((c) => c.id === 'veth-peer:eth0')?.detail).toBe('its peer peer0 (same namespace) has an XDP program (id 7, native)');
    expect(r1.checks.find((c) => c.id === 'tx-checksum:eth0')?.verdict).toBe('ok');

    const unnamed = probe({ links: veth({ ifindex: 9, netnsid: 4 }) });
    const r2 = await runChecks(unnamed, config());
    expect(r2.checks.find((c) => c.id === 'veth-peer:eth0')).toMatchObject({
      verdict: 'warn',
      detail:
        'eth0 is a veth and its peer is in a namespace without a name (id 4), so whether it has an XDP program is unknown; without one frames the XDP program sends out of eth0 (XDP_TX or redirect) are lost',
    });
    expect(r2.checks.find((c) => c.id === 'tx-checksum:eth0')?.verdict).toBe('skip');

    const generic = probe({
      links: veth({ ifindex: 9, netnsid: 1 }),
      netnsNames: async () => new Map([[1, 'other']]),
      linksIn: async () => [{ ifindex: 9, ifname: 'veth9', kind: 'veth', xdp: { mode: 'generic', progId: 3 } }],
      txChecksum: async (ifname, ns) => (ifname === 'veth9' && ns === 'other' ? true : undefined),
    });
    const r3 = await runChecks(generic, config());
    // Measured: with generic-mode programs on the peers, frames sent out of the balancer's veths are lost.
    expect(r3.checks.find((c) => c.id === 'veth-peer:eth0')?.verdict).toBe('fail');
    expect(r3.checks.find((c) => c.id === 'tx-checksum:eth0')).toMatchObject({ verdict: 'warn', fix: 'ip netns exec other ethtool -K veth9 tx off (on every veth of the senders)' });
  });

  it('SNAT ports: reserved ones pass, reserve_snat_ports turns the failure into a warning', async () => {
    const overlapping = 'snat_ports: 40000-40010\n';
    expect((await verdicts(probe(), overlapping))['snat-ports']).toBe('fail');
    expect((await verdicts(probe(), `${overlapping}reserve_snat_ports: true\n`))['snat-ports']).toBe('warn');
    const reserved = probe({ sysctls: { '/proc/sys/net/ipv4/ip_local_reserved_ports': '8080,39000-41000\n' } });
    const r = await runChecks(reserved, config(overlapping));
    expect(r.checks.find((c) => c.id === 'snat-ports')?.detail).toBe(
      'SNAT ports 40000-40010 overlap the ephemeral range 32768-60999 but are all in ip_local_reserved_ports',
    );
  });

  it('SNAT ports that the mappings send flows to on the SNAT address warn, naming the port and what to set', async () => {
    const seed = parseConfig('port: 17000\naddr: 192.0.2.1\ninterface: eth0\npin_path: /sys/fs/bpf/flowlb/x\n', 'c.yaml');
    const mappings = mappingsFromYaml('sniMappings:\n  - { fqdn: a.example, ipv4: 192.0.2.1, port: 17001 }\n');
    const r = await runChecks(probe(), seed, { mappings });
    expect(r.ok).toBe(true);
    expect(r.checks.at(-1)).toEqual({
      id: 'snat-ports-free',
      title: 'SNAT ports free',
      verdict: 'warn',
      detail:
        '1 port inside the SNAT ports 17001-29999 on 192.0.2.1 is in use — port 17001: sniMappings[0] (a.example) sends flows to 192.0.2.1:17001. ' +
        'flowlb sets a port that another socket holds aside when it meets it (with a warning in its log), but a backend that starts after flowlb can find its port taken by a flow',
      fix: 'move the SNAT range off them, e.g. snat_ports: "17002-29999" (or snat_port_min: 17002 and snat_port_max: 29999), or move those sockets and backends out of the range',
    });
    const text = renderCheckReport(r).split('\n');
    expect(text.at(-3)).toMatch(/^ {8}\s+fix: move the SNAT range off them, e\.g\. snat_ports: "17002-29999"/);
    expect(text.at(-2)).toBe('11 ok, 1 warning, 0 failures: this machine can run the XDP datapath (see the warnings)');
  });

  it('without a config the interface checks are skipped', async () => {
    const r = await runChecks(probe());
    expect(r.checks.map((c) => [c.id, c.verdict])).toEqual([
      ['kernel', 'ok'],
      ['btf', 'ok'],
      ['privileges', 'ok'],
      ['xdp-program', 'ok'],
      ['bpffs', 'ok'],
      ['config', 'skip'],
      ['snat-ports', 'ok'],
      ['snat-ports-free', 'ok'],
    ]);
  });
});

describe('parseIpLinks', () => {
  it('reads veth peers and XDP attachments from `ip -j -d link show`', () => {
    const json = JSON.stringify([
      { ifindex: 1, ifname: 'lo', linkinfo: undefined },
      { ifindex: 4, ifname: 'v1', link: 'v2', linkinfo: { info_kind: 'veth' } },
      { ifindex: 2, ifname: 'front', link_index: 2, link_netnsid: 0, linkinfo: { info_kind: 'veth' }, xdp: { mode: 1, prog: { id: 42 } } },
      { ifindex: 5, ifname: 'g', xdp: { mode: 2, prog: { id: 43 } } },
    ]);
    expect(parseIpLinks(json)).toEqual([
      { ifindex: 1, ifname: 'lo', kind: undefined },
      { ifindex: 4, ifname: 'v1', kind: 'veth', peer: { ifname: 'v2' } },
      { ifindex: 2, ifname: 'front', kind: 'veth', peer: { ifindex: 2, netnsid: 0 }, xdp: { mode: 'native', progId: 42 } },
      { ifindex: 5, ifname: 'g', kind: undefined, xdp: { mode: 'generic', progId: 43 } },
    ]);
  });
});

describe('mode: userspace', () => {
  // Everything the XDP datapath needs is missing here: an old kernel, no capabilities, no bpffs, a veth peer without a
  // program. The userspace datapath needs none of it.
  const broken = (): SystemProbe =>
    probe({
      kernelRelease: () => '4.19.0',
      fileExists: () => false,
      capEff: () => 0n,
      uid: () => 1000,
      fsType: (p) => ({ probed: p, type: 0x62656572 }),
      sysctls: { '/proc/sys/net/ipv4/conf/eth0/forwarding': '0', '/proc/sys/net/ipv4/conf/eth0/accept_local': '0', '/proc/sys/net/ipv4/conf/all/rp_filter': '1' },
      links: [{ ifindex: 2, ifname: 'eth0', kind: 'veth', peer: { ifindex: 9, netnsid: 1 } }],
      netnsNames: async () => new Map([[1, 'other']]),
      linksIn: async () => [{ ifindex: 9, ifname: 'veth9', kind: 'veth' }],
      loadProgram: async () => {
        throw new Error('the XDP program must not be loaded for mode: userspace');
      },
    });

  it('reports what only the XDP datapath needs as not needed, and passes', async () => {
    const r = await runChecks(broken(), config('mode: userspace\n'));
    expect(r.ok).toBe(true);
    expect(r.datapath).toBe('userspace');
    const byId = new Map(r.checks.map((c) => [c.id, c]));
    for (const id of ['kernel', 'btf', 'privileges', 'xdp-program', 'bpffs', 'interface:eth0']) {
      expect(byId.get(id)?.verdict, id).toBe('skip');
      expect(byId.get(id)?.detail, id).toMatch(/^not needed with mode: userspace: /);
    }
    expect(byId.get('privileges')?.detail).toBe('not needed with mode: userspace: the userspace datapath needs neither CAP_BPF nor CAP_NET_ADMIN');
    for (const id of ['forwarding:eth0', 'accept_local:eth0', 'rp_filter:eth0', 'vlan:eth0', 'veth-peer:eth0', 'tx-checksum:eth0', 'ip_forward']) {
      expect(byId.has(id), id).toBe(false);
    }
    // What the userspace datapath does need is still checked.
    expect(byId.get('address:addr')?.verdict).toBe('ok');
    expect(byId.get('snat-ports')?.verdict).toBe('ok');
    expect(renderCheckReport(r).split('\n').at(-2)).toMatch(/ 0 failures: this machine can run the userspace datapath$/);
  });

  it('still fails when the VIP is not an address of this host', async () => {
    const r = await runChecks({ ...broken(), addresses: async () => ['10.9.9.9'] }, config('mode: userspace\n'));
    expect(r.ok).toBe(false);
    expect(r.checks.find((c) => c.id === 'address:addr')?.verdict).toBe('fail');
    expect(renderCheckReport(r).split('\n').at(-2)).toMatch(/ 1 failure: this machine cannot run the userspace datapath as configured$/);
  });

  it('mode: auto and xdp check everything', async () => {
    for (const mode of ['auto', 'xdp']) {
      const r = await runChecks({ ...broken(), loadProgram: async () => ({ ok: true, libbpf: '1.1' }) }, config(`mode: ${mode}\n`));
      expect(r.datapath).toBe('xdp');
      expect(r.checks.find((c) => c.id === 'kernel')?.verdict).toBe('fail');
      expect(r.checks.find((c) => c.id === 'veth-peer:eth0')?.verdict).toBe('fail');
    }
  });
});

describe('the veth peer fix', () => {
  const peer = (xdp?: LinkDetails['xdp']): PeerInfo => ({
    where: 'veth9 in namespace other',
    ns: 'other',
    link: { ifindex: 9, ifname: 'veth9', kind: 'veth', ...(xdp ? { xdp } : {}) },
  });

  it('names the XDP_PASS object @flowlb/xdp-core ships, in a command that can be pasted', () => {
    expect(existsSync(XDP_PASS_BPF_OBJECT)).toBe(true);
    const none = checkVethPeer('eth0', peer());
    expect(none.fix).toBe(`attach the XDP_PASS program that @flowlb/xdp-core ships (${XDP_PASS_BPF_OBJECT}) to veth9 in native mode; or run with mode: userspace`);
    expect(none.command).toBe(`ip -n other link set dev veth9 xdpdrv obj ${XDP_PASS_BPF_OBJECT} sec xdp`);
    // The kernel refuses a native program next to a generic one: that one goes first.
    const generic = checkVethPeer('eth0', peer({ mode: 'generic', progId: 3 }));
    expect(generic.command).toBe(`ip -n other link set dev veth9 xdpgeneric off && ip -n other link set dev veth9 xdpdrv obj ${XDP_PASS_BPF_OBJECT} sec xdp`);
    expect(checkVethPeer('eth0', peer({ mode: 'native', progId: 3 })).command).toBeUndefined();
    const text = renderCheckReport({ ok: false, datapath: 'xdp', config: 'c.yaml', checks: [none] });
    // Under the fix, in the column of the details.
    const column = ' '.repeat('  FAIL  veth peer eth0  '.length);
    expect(text.split('\n').slice(2, 4)).toEqual([`${column}fix: ${none.fix}`, `${column}run: ${none.command}`]);
  });

  it('quotes what a shell would split or expand', () => {
    expect(shellWord('/opt/flow lb/it\'s/xdp_pass.bpf.o')).toBe(`'/opt/flow lb/it'\\''s/xdp_pass.bpf.o'`);
    expect(shellWord('/usr/lib/node_modules/@flowlb/xdp-core/dist/xdp_pass.bpf.o')).toBe('/usr/lib/node_modules/@flowlb/xdp-core/dist/xdp_pass.bpf.o');
    const odd = checkVethPeer('eth0', peer(), '/opt/flow lb/xdp_pass.bpf.o');
    expect(odd.command).toBe(`ip -n other link set dev veth9 xdpdrv obj '/opt/flow lb/xdp_pass.bpf.o' sec xdp`);
  });
});
