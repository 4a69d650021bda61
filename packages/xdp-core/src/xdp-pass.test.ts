import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { buildArpFrame, buildUdpFrame, describePrivileged } from '@flowlb/testkit';
import { BpfObject, XDP_PASS, XDP_PASS_BPF_OBJECT, XDP_PASS_PROGRAM } from './index.js';
import { packageRoot } from './native.js';

describe('the XDP_PASS object the package ships', () => {
  it('lies in dist/, which the package publishes', () => {
    expect(XDP_PASS_BPF_OBJECT).toBe(join(packageRoot, 'dist', 'xdp_pass.bpf.o'));
    const pkg = JSON.parse(readFileSync(join(packageRoot, 'package.json'), 'utf8')) as { files: string[] };
    expect(pkg.files).toContain('dist');
  });
});

describePrivileged('the shipped XDP_PASS program', () => {
  it('loads, and hands every frame on to the kernel untouched', async () => {
    const obj = BpfObject.open(XDP_PASS_BPF_OBJECT);
    try {
      await obj.load();
      const prog = obj.program(XDP_PASS_PROGRAM);
      try {
        expect(prog.name).toBe('xdp_pass');
        const frames = [
          buildUdpFrame({ ip: { src: '203.0.113.9', dst: '192.0.2.1' }, udp: { srcPort: 5555, dstPort: 4433 }, payload: 'x' }),
          buildArpFrame({ senderMac: '02:00:00:00:00:01', senderIp: '203.0.113.9', targetIp: '192.0.2.1' }),
          new Uint8Array(14),
        ];
        for (const data of frames) {
          const r = prog.testRun({ data });
          expect(r.retval).toBe(XDP_PASS);
          expect(Buffer.from(r.data).equals(Buffer.from(data))).toBe(true);
        }
      } finally {
        prog.close();
      }
    } finally {
      obj.close();
    }
  });
});
