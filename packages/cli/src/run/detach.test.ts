import { describe, expect, it } from 'vitest';
import { renderDetach } from './detach.js';

const dir = '/sys/fs/bpf/flowlb/lb1';
const link = (iface: string, ifindex: number) => ({ iface, path: `${dir}/link-${iface}`, linkId: 7, progId: 42, ifindex });

describe('flowlb detach output', () => {
  it('names each link it detached and what it removed', () => {
    const out = renderDetach({
      pinDir: dir,
      links: [link('eth0', 2), link('eth1.100', 0)],
      removed: [`${dir}/link-eth0`, `${dir}/link-eth1:100`, `${dir}/prog`, `${dir}/flows`, `${dir}/stats`],
      folderRemoved: false,
      leftover: ['notes'],
    });
    expect(out).toBe(
      'detached XDP program 42 from eth0 (link 7)\n' +
        'removed the pinned link of eth1.100 (its interface was already gone)\n' +
        `removed 5 pins from ${dir}\n` +
        `left in ${dir}, not flowlb's: notes\n`,
    );
  });

  it('says when there was nothing to do', () => {
    expect(renderDetach({ pinDir: dir, links: [], removed: [], folderRemoved: false, leftover: [] })).toBe(
      `nothing is pinned at ${dir}: nothing to detach\n`,
    );
    expect(renderDetach({ pinDir: dir, links: [], removed: [`${dir}/flows`], folderRemoved: true, leftover: [] })).toBe(
      `no XDP link was pinned: no interface had the program attached through this pin path\nremoved 1 pin and ${dir}\n`,
    );
  });
});
