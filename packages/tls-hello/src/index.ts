export { parseClientHelloBody } from './client-hello.js';
export type { ClientHello, Extension, HelloFlavor } from './client-hello.js';
export { ExtensionType, MAX_HOST_NAME_LENGTH, parseServerName, parseAlpn, parseSupportedVersions } from './extensions.js';
export { HandshakeType } from './handshake-type.js';
export type { HelloInvalid, HelloInvalidReason } from './result.js';
