import { describe, expect, it } from 'vitest';
import { chooseDatapath, XdpUnavailableError, type DatapathRequest } from './datapath-choice.js';

const ALL_CAPS = (1n << 12n) | (1n << 39n);
const loads = async () => ({ forwarder: 'fwd', detail: '@flowlb/xdp-core loads (libbpf 1.1.0)' });
const base: DatapathRequest<string> = { mode: 'auto', interfaces: ['eth0'], load: loads, platform: 'linux', capabilities: ALL_CAPS };

describe('chooseDatapath', () => {
  it('takes userspace as asked, without loading anything', async () => {
    let loaded = false;
    const d = await chooseDatapath({ ...base, mode: 'userspace', load: async () => ((loaded = true), loads()) });
    expect(d).toEqual({ kind: 'userspace', reason: "datapath 'userspace' was asked for" });
    expect(loaded).toBe(false);
  });

  it('says why XDP runs', async () => {
    expect(await chooseDatapath({ ...base, interfaces: ['a0', 'b0'] })).toEqual({
      kind: 'xdp',
      forwarder: 'fwd',
      reason: 'auto: the process has CAP_NET_ADMIN and CAP_BPF/CAP_SYS_ADMIN, @flowlb/xdp-core loads (libbpf 1.1.0), interfaces a0, b0',
    });
    expect(await chooseDatapath({ ...base, mode: 'xdp' })).toMatchObject({
      kind: 'xdp',
      reason: "datapath 'xdp' was asked for, @flowlb/xdp-core loads (libbpf 1.1.0), interfaces eth0",
    });
    expect(await chooseDatapath({ ...base, mode: 'xdp', interfaces: [], attachedElsewhere: true })).toMatchObject({
      kind: 'xdp',
      reason: "datapath 'xdp' was asked for, @flowlb/xdp-core loads (libbpf 1.1.0), attached by another worker",
    });
  });

  it.each<[string, Partial<DatapathRequest<string>>, string]>([
    ['no interfaces', { interfaces: [] }, 'no interfaces were given to attach XDP to'],
    ['another platform', { platform: 'darwin' }, 'XDP needs Linux, this is darwin'],
    ['missing capabilities', { capabilities: 1n << 39n }, 'the process lacks CAP_NET_ADMIN'],
    ['unknown capabilities', { capabilities: undefined }, 'cannot read the process capabilities (/proc/self/status)'],
    [
      'a program that does not load',
      { load: () => Promise.reject(Object.assign(new Error('bpf_object__load: Operation not permitted\nverifier log'), { code: 'EPERM' })) },
      'the XDP program cannot be loaded here: bpf_object__load: Operation not permitted',
    ],
  ])("with %s: 'auto' falls back with the reason, 'xdp' throws it", async (_name, patch, why) => {
    expect(await chooseDatapath({ ...base, ...patch })).toEqual({ kind: 'userspace', reason: `auto: ${why}` });
    const error = await chooseDatapath({ ...base, ...patch, mode: 'xdp' }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(XdpUnavailableError);
    expect(error).toMatchObject({ code: 'ERR_FLOWLB_XDP_UNAVAILABLE', reason: why, message: `datapath 'xdp' cannot run: ${why}` });
  });

  it("keeps the load error as the cause, and lets fatal ones through even in 'auto'", async () => {
    const denied = Object.assign(new Error('denied'), { code: 'EPERM' });
    const error = await chooseDatapath({ ...base, mode: 'xdp', load: () => Promise.reject(denied) }).catch((e: unknown) => e);
    expect((error as Error).cause).toBe(denied);
    const misfit = new Error('pinned maps do not fit');
    await expect(chooseDatapath({ ...base, load: () => Promise.reject(misfit), isFatal: (e) => e === misfit })).rejects.toBe(misfit);
  });
});
