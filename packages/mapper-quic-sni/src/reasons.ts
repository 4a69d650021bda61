/**
 * Every reason the mapper itself drops a client for. The set is closed, so that counters per reason stay few;
 * specifics go into the classification's `detail`. `no-sni` and `unknown-name` are what {@link staticRoutes} says;
 * other routes may give reasons of their own, which the mapper passes on as they are.
 */
export const QUIC_DROP_REASONS = [
  /** The first datagram does not start with a long-header Initial packet (a short header, another packet type, not QUIC). */
  'not-quic-initial',
  /** The first datagram is a long header of a version other than 1 and 2. No Version Negotiation is sent. */
  'unsupported-version',
  /** The first packet does not authenticate under the Initial keys of its DCID. */
  'decrypt-failed',
  /** A decrypted packet breaks QUIC's rules: a frame not allowed in Initial packets, a frame cut off, reserved bits set. */
  'protocol-violation',
  /** Two CRYPTO frames give different bytes for the same offset. */
  'crypto-conflict',
  /** The crypto stream starts with a TLS handshake message other than ClientHello. */
  'not-client-hello',
  /** The ClientHello is whole but @flowlb/tls-hello cannot read it (its reason is in the detail). */
  'client-hello-invalid',
  /** More CRYPTO bytes, datagrams or connection IDs than the limits allow. */
  'too-large',
  /** The ClientHello names no server, and the routes want one. */
  'no-sni',
  /** The ClientHello names a server the routes do not know. */
  'unknown-name',
] as const;

export type QuicDropReason = (typeof QUIC_DROP_REASONS)[number];
