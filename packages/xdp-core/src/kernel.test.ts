import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { describePrivileged } from '@flowlb/testkit';
import { BpfObject, type Program } from './index.js';
import { INGRESS_IFINDEX_FLOOR, LIVE_FRAMES_FLOOR, explainKernelFloor, kernelFloorMessage, parseKernelRelease } from './kernel.js';
import { FIXTURE_MAPS_SOURCE, compileBpf, type CompiledObjects } from './testing/bpf-fixtures.js';

// The release the package sees; the real one unless a test below pretends otherwise.
const fake = vi.hoisted(() => ({ release: undefined as string | undefined }));
vi.mock('node:os', async (importOriginal) => {
  const os = await importOriginal<typeof import('node:os')>();
  return { ...os, release: () => fake.release ?? os.release() };
});

function nativeError(code: string, errno: number, message: string): NodeJS.ErrnoException & { detail: string } {
  return Object.assign(new Error(message), { code, errno, syscall: 'bpf_prog_test_run_opts', detail: 'prog' });
}

describe('kernel floors', () => {
  it('reads major and minor of a uname release', () => {
    expect(parseKernelRelease('5.10.0-21-amd64')).toEqual([5, 10]);
    expect(parseKernelRelease('6.18.44-fc-v1147')).toEqual([6, 18]);
    expect(parseKernelRelease('4.19.0')).toEqual([4, 19]);
    expect(parseKernelRelease('linux')).toBeUndefined();
  });

  it('names the floor only for a kernel older than it', () => {
    const feature = 'testRun with an ingress interface';
    expect(kernelFloorMessage(feature, INGRESS_IFINDEX_FLOOR, '5.10.0-21-amd64')).toBe(
      'testRun with an ingress interface needs Linux 5.15 or later; this kernel is 5.10.0-21-amd64',
    );
    expect(kernelFloorMessage(feature, INGRESS_IFINDEX_FLOOR, '4.19.0-25-amd64')).toMatch(/needs Linux 5\.15 or later; this kernel is 4\.19\.0-25-amd64$/);
    expect(kernelFloorMessage(feature, INGRESS_IFINDEX_FLOOR, '5.15.0-91-generic')).toBeUndefined();
    expect(kernelFloorMessage(feature, INGRESS_IFINDEX_FLOOR, '6.1.0')).toBeUndefined();
    // Compared as numbers: 5.9 is older than 5.18, 10.0 newer than 5.18.
    expect(kernelFloorMessage('live frames', LIVE_FRAMES_FLOOR, '5.9.16')).toBe('live frames needs Linux 5.18 or later; this kernel is 5.9.16');
    expect(kernelFloorMessage('live frames', LIVE_FRAMES_FLOOR, '5.17.15')).toMatch(/needs Linux 5\.18/);
    expect(kernelFloorMessage('live frames', LIVE_FRAMES_FLOOR, '10.0.0')).toBeUndefined();
    expect(kernelFloorMessage('live frames', LIVE_FRAMES_FLOOR, 'unknown')).toBeUndefined();
  });

  it('puts the floor in an EINVAL or EOPNOTSUPP from an older kernel, keeping code, errno and syscall', () => {
    const einval = nativeError('EINVAL', -22, "EINVAL: invalid argument, bpf_prog_test_run_opts 'prog'");
    const out = explainKernelFloor(einval, 'testRun with an ingress interface', INGRESS_IFINDEX_FLOOR, '5.10.0-21-amd64') as NodeJS.ErrnoException;
    expect(out).toBeInstanceOf(Error);
    expect(out.message).toBe(
      "EINVAL: invalid argument, bpf_prog_test_run_opts 'prog' (testRun with an ingress interface needs Linux 5.15 or later; this kernel is 5.10.0-21-amd64)",
    );
    expect(out).toMatchObject({ code: 'EINVAL', errno: -22, syscall: 'bpf_prog_test_run_opts', detail: 'prog', cause: einval });

    // The usual hint gives way: it would send the reader elsewhere.
    const eopnotsupp = nativeError(
      'EOPNOTSUPP',
      -95,
      "EOPNOTSUPP: operation not supported, bpf_prog_test_run_opts 'prog' (the driver or kernel does not support this; try generic XDP mode)",
    );
    expect((explainKernelFloor(eopnotsupp, 'runLive (live frames)', LIVE_FRAMES_FLOOR, '5.15.0') as Error).message).toBe(
      "EOPNOTSUPP: operation not supported, bpf_prog_test_run_opts 'prog' (runLive (live frames) needs Linux 5.18 or later; this kernel is 5.15.0)",
    );
  });

  it('leaves alone errors of a kernel new enough, and other errors', () => {
    const einval = nativeError('EINVAL', -22, "EINVAL: invalid argument, bpf_prog_test_run_opts 'prog'");
    expect(explainKernelFloor(einval, 'x', INGRESS_IFINDEX_FLOOR, '5.15.0')).toBe(einval);
    const eperm = nativeError('EPERM', -1, "EPERM: operation not permitted, bpf_prog_test_run_opts 'prog'");
    expect(explainKernelFloor(eperm, 'x', INGRESS_IFINDEX_FLOOR, '5.4.0')).toBe(eperm);
    expect(explainKernelFloor('not an error', 'x', INGRESS_IFINDEX_FLOOR, '5.4.0')).toBe('not an error');
  });
});

describePrivileged('kernel floors in the errors of Program.testRun and runLive', () => {
  let fixture: CompiledObjects;
  let prog: Program;

  beforeAll(async () => {
    fixture = compileBpf(FIXTURE_MAPS_SOURCE);
    const obj = BpfObject.open(fixture.objects[0]!);
    try {
      await obj.load();
      prog = obj.program('pass');
    } finally {
      obj.close();
    }
  });

  afterAll(() => {
    fake.release = undefined;
    prog?.close();
    fixture?.remove();
  });

  // A frame shorter than an Ethernet header is refused with EINVAL by every kernel: it stands in for the EINVAL an
  // older kernel gives for the context or flag it does not know.
  const tooShort = Buffer.alloc(8);

  it('with an ingress interface on a kernel that says it is 5.10', () => {
    fake.release = '5.10.0-21-amd64';
    expect(() => prog.testRun({ data: tooShort, ingressIfindex: 1 })).toThrow(
      expect.objectContaining({
        code: 'EINVAL',
        errno: -22,
        syscall: 'bpf_prog_test_run_opts',
        message: expect.stringMatching(/needs Linux 5\.15 or later; this kernel is 5\.10\.0-21-amd64\)$/),
      }),
    );
    // Without one, the floor is not the matter.
    expect(() => prog.testRun({ data: tooShort })).toThrow(expect.objectContaining({ code: 'EINVAL', message: expect.not.stringMatching(/needs Linux/) }));
  });

  it('live frames on a kernel that says it is 5.15', () => {
    fake.release = '5.15.0-91-generic';
    expect(() => prog.runLive({ data: tooShort, ingressIfindex: 1 })).toThrow(
      expect.objectContaining({ code: 'EINVAL', message: expect.stringMatching(/runLive \(live frames\) needs Linux 5\.18 or later; this kernel is 5\.15\.0-91-generic/) }),
    );
  });

  it('on the real kernel, names the floor only if the kernel is older', async () => {
    fake.release = undefined;
    const { release } = await import('node:os');
    const expected = kernelFloorMessage('testRun with an ingress interface', INGRESS_IFINDEX_FLOOR, release());
    expect(() => prog.testRun({ data: tooShort, ingressIfindex: 1 })).toThrow(
      expect.objectContaining({
        code: 'EINVAL',
        message: expected ? expect.stringContaining(expected) : expect.not.stringMatching(/needs Linux/),
      }),
    );
  });
});
