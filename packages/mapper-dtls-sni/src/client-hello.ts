// The ClientHello body parser lives in @flowlb/tls-hello, shared with QUIC. This module keeps the path that code
// and tests in this package import it by.
export { parseClientHelloBody } from '@flowlb/tls-hello';
export type { ClientHello, Extension } from '@flowlb/tls-hello';
