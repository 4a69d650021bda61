/** QUIC version 1 (RFC 9000). */
export const QUIC_V1 = 0x0000_0001;
/** QUIC version 2 (RFC 9369 §3.1): the first four bytes of sha256("QUICv2 version number"), not 2. */
export const QUIC_V2 = 0x6b33_43cf;

export type QuicVersion = typeof QUIC_V1 | typeof QUIC_V2;

/** What differs between the versions this package reads, as far as a client's Initial packets are concerned. */
export interface VersionParams {
  version: QuicVersion;
  /** HKDF-Extract salt of the Initial secrets (RFC 9001 §5.2, RFC 9369 §3.3.1). */
  initialSalt: Uint8Array;
  /** HKDF-Expand-Label labels of the packet key, IV and header protection key (RFC 9369 §3.3.2). */
  keyLabel: string;
  ivLabel: string;
  hpLabel: string;
  /**
   * The two Long Packet Type bits (0x30 of the first byte, shifted down) of an Initial packet: 0b00 in v1
   * (RFC 9000 §17.2), 0b01 in v2 (RFC 9369 §3.2), where 0b00 is Retry.
   */
  initialType: number;
}

function hex(s: string): Uint8Array {
  return new Uint8Array(Buffer.from(s, 'hex'));
}

const V1: VersionParams = Object.freeze({
  version: QUIC_V1,
  initialSalt: hex('38762cf7f55934b34d179ae6a4c80cadccbb7f0a'),
  keyLabel: 'quic key',
  ivLabel: 'quic iv',
  hpLabel: 'quic hp',
  initialType: 0b00,
});

const V2: VersionParams = Object.freeze({
  version: QUIC_V2,
  initialSalt: hex('0dede3def700a6db819381be6e269dcbf9bd2ed9'),
  keyLabel: 'quicv2 key',
  ivLabel: 'quicv2 iv',
  hpLabel: 'quicv2 hp',
  initialType: 0b01,
});

/** The versions whose Initial packets this package can open, oldest first. */
export const SUPPORTED_VERSIONS: readonly QuicVersion[] = Object.freeze([QUIC_V1, QUIC_V2]);

/** The parameters of `version`, or undefined for a version this package does not know. */
export function versionParams(version: number): VersionParams | undefined {
  if (version === QUIC_V1) return V1;
  if (version === QUIC_V2) return V2;
  return undefined;
}
