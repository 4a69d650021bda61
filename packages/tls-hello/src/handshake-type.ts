/**
 * Handshake message types (IANA "TLS HandshakeType"; RFC 8446, RFC 6347, RFC 9147). One registry serves TLS, DTLS
 * and QUIC, so the DTLS-only types are listed too; callers use it to pick the ClientHello out of their handshake
 * stream, whether that comes in DTLS records or QUIC CRYPTO frames.
 */
export const HandshakeType = {
  HelloRequest: 0,
  ClientHello: 1,
  ServerHello: 2,
  HelloVerifyRequest: 3,
  NewSessionTicket: 4,
  EndOfEarlyData: 5,
  HelloRetryRequest: 6,
  EncryptedExtensions: 8,
  RequestConnectionId: 9,
  NewConnectionId: 10,
  Certificate: 11,
  ServerKeyExchange: 12,
  CertificateRequest: 13,
  ServerHelloDone: 14,
  CertificateVerify: 15,
  ClientKeyExchange: 16,
  Finished: 20,
  KeyUpdate: 24,
  MessageHash: 254,
} as const;
