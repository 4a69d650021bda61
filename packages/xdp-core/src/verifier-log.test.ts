import { expect, it } from 'vitest';
import { describePrivileged } from '@flowlb/testkit';
import { BpfObject } from './index.js';
import { LONG_VERIFIER_LOG_SOURCE, compileBpf } from './testing/bpf-fixtures.js';

describePrivileged('the verifier log of a rejected load', () => {
  it('is kept whole, down to the lines that say what the verifier refused', async () => {
    const fixture = compileBpf(LONG_VERIFIER_LOG_SOURCE);
    try {
      const obj = BpfObject.open(fixture.objects[0]!);
      try {
        const err = await obj.load().then(
          () => undefined,
          (e: NodeJS.ErrnoException & { log?: string }) => e,
        );
        expect(err?.code).toBe('EACCES');
        expect(err?.syscall).toBe('bpf_object__load');
        const log = err?.log ?? '';
        // libbpf prints the whole verifier log as one message, far longer than 4 KiB here.
        expect(log.length).toBeGreaterThan(16 * 1024);
        expect(log).toMatch(/-- BEGIN PROG LOAD LOG --/);
        const refusal = log.indexOf('invalid access to packet, off=100');
        expect(refusal).toBeGreaterThan(4096);
        expect(log.slice(refusal)).toMatch(/processed \d+ insns \(limit \d+\)/);
        expect(log.slice(refusal)).toMatch(/-- END PROG LOAD LOG --/);
        // The message carries the end of the log, where the refusal is.
        expect(err?.message).toMatch(/invalid access to packet, off=100/);
        expect(err?.message).toMatch(/processed \d+ insns/);
      } finally {
        obj.close();
      }
    } finally {
      fixture.remove();
    }
  });
});
