import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { describePrivileged, Topology } from '@flowlb/testkit';
import { XdpForwarder, withNetns } from './index.js';
import { parseRxVlanOffload, parseVlanConfig, rxVlanOffload, vlanStripping, vlanUppers, vlanWarnings, type VlanDevice } from './vlan.js';

/** As the kernel writes /proc/net/vlan/config. */
const VLAN_CONFIG_TEXT = `VLAN Dev name\t | VLAN ID
Name-Type: VLAN_NAME_TYPE_RAW_PLUS_VID_NO_PAD
eth0.10        | 10  | eth0
voice          | 20  | eth0
eth1.30        | 30  | eth1
`;

describe('reading VLAN devices and the offload', () => {
  it('parses /proc/net/vlan/config and keeps the devices on top of the interface asked about', () => {
    expect(parseVlanConfig(VLAN_CONFIG_TEXT)).toEqual([
      { name: 'eth0.10', id: 10, lower: 'eth0' },
      { name: 'voice', id: 20, lower: 'eth0' },
      { name: 'eth1.30', id: 30, lower: 'eth1' },
    ]);
    const dir = mkdtempSync(join(tmpdir(), 'flowlb-vlan-'));
    try {
      const file = join(dir, 'config');
      writeFileSync(file, VLAN_CONFIG_TEXT);
      expect(vlanUppers('eth1', file)).toEqual([{ name: 'eth1.30', id: 30, lower: 'eth1' }]);
      expect(vlanUppers('eth2', file)).toEqual([]);
      // No file: no 802.1Q support loaded, so no VLAN device.
      expect(vlanUppers('eth0', join(dir, 'missing'))).toEqual([]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('reads rx-vlan-offload from `ethtool -k`, fixed or not', () => {
    const out = (v: string): string => `Features for eth0:\nrx-checksumming: on\nrx-vlan-offload: ${v}\ntx-vlan-offload: on\n`;
    expect(parseRxVlanOffload(out('on'))).toBe('on');
    expect(parseRxVlanOffload(out('off [fixed]'))).toBe('off');
    expect(parseRxVlanOffload(out('on [requested off]'))).toBe('on');
    expect(parseRxVlanOffload('Features for eth0:\nrx-checksumming: on\n')).toBe('unknown');
  });

  it('warns only with VLAN devices on top and stripping on or unknown, saying what to do', () => {
    const uppers: VlanDevice[] = [{ name: 'eth0.10', id: 10, lower: 'eth0' }];
    const read = (rxvlan: 'on' | 'off' | 'unknown', found = uppers) => ({
      uppers: () => found,
      rxvlan: () => {
        if (found.length === 0) throw new Error('the offload is read only with VLAN devices on top');
        return rxvlan;
      },
    });
    expect(vlanStripping('eth0', read('on', []))).toEqual({ iface: 'eth0', uppers: [], rxvlan: undefined });
    expect(vlanStripping('eth0', read('off'))).toEqual({ iface: 'eth0', uppers, rxvlan: 'off' });
    expect(vlanWarnings('eth0', read('on'))).toEqual([
      'eth0 has VLAN devices on top (eth0.10, id 10) and hardware VLAN stripping (rx-vlan-offload) is on: frames tagged for them reach the XDP program looking untagged, and those of known flows are forwarded without their tag; turn stripping off (ethtool -K eth0 rxvlan off), or attach to the VLAN devices instead of eth0 (generic mode)',
    ]);
    expect(vlanWarnings('eth0', read('unknown'))[0]).toMatch(/cannot be read \(is ethtool installed\?\): if it is, .*; look with ethtool -k eth0, and if it is on, turn stripping off/);
    // Looking never fails an attach.
    expect(vlanWarnings('eth0', { uppers: () => { throw new Error('EACCES'); }, rxvlan: () => 'on' })).toEqual([]);
  });
});

// The real ethtool and /proc in a namespace of their own, entered as attach() enters one (setns of this thread).
describePrivileged('VLAN stripping on a veth in a network namespace', () => {
  let topo: Topology;
  let ns: string;
  let veth: string;

  beforeAll(async () => {
    topo = new Topology({ prefix: 'xvlan' });
    ns = await topo.addNamespace('vlan');
    // A name no other namespace has: ethtool finding it proves it ran in this one.
    veth = topo.uniqueIfname('v');
    await topo.addVethPair(ns, veth, ns, `${veth}p`.slice(0, 15));
  }, 60_000);

  afterAll(async () => {
    await topo?.destroy();
  });

  it('reads the offload with ethtool in the namespace the thread is in, as ethtool -K sets it', async () => {
    await topo.exec(ns, 'ethtool', ['-K', veth, 'rxvlan', 'off']);
    expect(withNetns(ns, () => rxVlanOffload(veth))).toBe('off');
    await topo.exec(ns, 'ethtool', ['-K', veth, 'rxvlan', 'on']);
    expect(withNetns(ns, () => rxVlanOffload(veth))).toBe('on');
    // Outside the namespace there is no such interface.
    expect(rxVlanOffload(veth)).toBe('unknown');
  });

  it('attach() says nothing about an interface without VLAN devices on top, stripping on or off', async () => {
    // The warning itself, with devices on top, is checked above with the readers given: this kernel may be built
    // without 802.1Q support (CONFIG_VLAN_8021Q), and then no VLAN device can be made, nor can one need the warning.
    expect(withNetns(ns, () => vlanUppers(veth))).toEqual([]);
    const fwd = await XdpForwarder.load({ netns: ns, flowsMaxEntries: 64 });
    try {
      for (const state of ['on', 'off'] as const) {
        await topo.exec(ns, 'ethtool', ['-K', veth, 'rxvlan', state]);
        const [a] = fwd.attach([veth], { mode: 'generic', sysctls: false });
        expect(a!.warnings, `rxvlan ${state}`).toBeUndefined();
        fwd.detach();
      }
    } finally {
      fwd.close();
    }
  });
});
