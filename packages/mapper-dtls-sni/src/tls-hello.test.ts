import * as tlsHello from '@flowlb/tls-hello';
import { describe, expect, it } from 'vitest';
import * as api from './index.js';
import { parseClientHello } from './parser.js';
import { clientHelloBody, helloDatagram } from './test-support.js';

// The ClientHello body is parsed by @flowlb/tls-hello, whose own tests cover it; these check the wiring.
describe('the ClientHello body parser from @flowlb/tls-hello', () => {
  it('is what this package exports under the names it always had', () => {
    expect(api.parseClientHelloBody).toBe(tlsHello.parseClientHelloBody);
    expect(api.parseServerName).toBe(tlsHello.parseServerName);
    expect(api.parseAlpn).toBe(tlsHello.parseAlpn);
    expect(api.parseSupportedVersions).toBe(tlsHello.parseSupportedVersions);
    expect(api.ExtensionType).toBe(tlsHello.ExtensionType);
    expect(api.MAX_HOST_NAME_LENGTH).toBe(tlsHello.MAX_HOST_NAME_LENGTH);
    expect(api.HandshakeType).toBe(tlsHello.HandshakeType);
  });

  it('reads hello bodies as DTLS: a TLS client_version inside DTLS records is refused', () => {
    expect(parseClientHello([helloDatagram(clientHelloBody({ version: 0x0303 }))])).toEqual({
      kind: 'invalid',
      reason: 'client-hello-malformed',
      detail: 'client_version 0x0303 is not DTLS',
    });
    expect(parseClientHello([helloDatagram(clientHelloBody({ version: 0xfefd }))])).toMatchObject({ kind: 'hello' });
  });
});
