import { describe, expect, it } from 'vitest';
import { dtlsCapture, dtlsCaptureNames } from './captures.js';

describe('DTLS captures', () => {
  it('lives inside the repository, one file per client, each a handshake record first', () => {
    const names = dtlsCaptureNames();
    expect(names).toEqual(
      expect.arrayContaining(['gnutls_bar', 'gnutls_mtu', 'ossl_cookie', 'ossl_foo', 'ossl_mtu', 'ossl_nosni']),
    );
    for (const name of names) {
      const datagrams = dtlsCapture(name);
      expect(datagrams.length, name).toBeGreaterThanOrEqual(2);
      // content type 22 (handshake), a DTLS record version 0xfeXX
      expect([datagrams[0]![0], datagrams[0]![1]], name).toEqual([22, 0xfe]);
    }
  });

  it('names the missing file when a capture does not exist', () => {
    expect(() => dtlsCapture('no_such_capture')).toThrow(/no_such_capture\.hex/);
  });
});
