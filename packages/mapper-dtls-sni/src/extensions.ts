// The extension parsers live in @flowlb/tls-hello, shared with QUIC. This module keeps the path that code and
// tests in this package import them by.
export { ExtensionType, MAX_HOST_NAME_LENGTH, parseServerName, parseAlpn, parseSupportedVersions } from '@flowlb/tls-hello';
