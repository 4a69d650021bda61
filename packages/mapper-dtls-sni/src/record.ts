/** Record content types (RFC 6347 §4.1, RFC 9147 §4, RFC 9146 for tls12_cid). */
export const ContentType = {
  ChangeCipherSpec: 20,
  Alert: 21,
  Handshake: 22,
  ApplicationData: 23,
  Heartbeat: 24,
  Tls12Cid: 25,
  Ack: 26,
} as const;

/** Protocol versions as they appear on the wire (one's complement of the "1.x" numbering). */
export const DtlsVersion = {
  Dtls1_0: 0xfeff,
  Dtls1_2: 0xfefd,
  Dtls1_3: 0xfefc,
} as const;

/** type(1) version(2) epoch(2) sequence_number(6) length(2). */
export const RECORD_HEADER_LENGTH = 13;

/**
 * Largest record body accepted. Plaintext is capped at 2^14 bytes; protected DTLS 1.2 records may add up to 2048
 * bytes of expansion, and those can share a datagram with the handshake records that matter here.
 */
export const MAX_RECORD_LENGTH = 16384 + 2048;

export interface DtlsRecord {
  contentType: number;
  /** Record-layer version, e.g. 0xfeff or 0xfefd. */
  version: number;
  epoch: number;
  /** The 48-bit sequence number; always a safe integer. */
  sequence: number;
  /** The record body, a view into the datagram. */
  fragment: Uint8Array;
}

/** Why the record layer of a datagram ended before its last byte. */
export type RecordStop =
  /** Every byte belonged to a record. */
  | 'end'
  /** Bytes left over that are too short for a header, or a header whose length runs past the datagram. */
  | 'truncated'
  /** Bytes that do not start with a known plaintext record header. */
  | 'unrecognised'
  /**
   * A DTLS 1.3 unified header or a tls12_cid record: protected data whose header length depends on a connection
   * ID negotiated earlier, so nothing after it can be delimited.
   */
  | 'protected';

export type RecordLayerResult =
  | { ok: true; records: DtlsRecord[]; stop: RecordStop; trailingBytes: number }
  | { ok: false; reason: 'empty-datagram' | 'not-dtls' | 'truncated-record'; detail: string };

function hex16(n: number): string {
  return `0x${n.toString(16).padStart(4, '0')}`;
}

function isRecordVersion(version: number): boolean {
  // RFC 9147 keeps the legacy record version of a DTLS 1.3 ClientHello at fe fd (or fe ff), so no fe fc here.
  return version === DtlsVersion.Dtls1_2 || version === DtlsVersion.Dtls1_0;
}

function isPlaintextContentType(type: number): boolean {
  return type >= ContentType.ChangeCipherSpec && type <= ContentType.Ack && type !== ContentType.Tls12Cid;
}

/** The first byte of a DTLS 1.3 unified header is 001CSLEE. */
function isUnifiedHeader(first: number): boolean {
  return (first & 0xe0) === 0x20;
}

/**
 * Splits a datagram into DTLS records. A datagram must open with a well-formed record, which is what tells a DTLS
 * datagram from anything else; after that, bytes that cannot be delimited end the scan and are reported as
 * trailing rather than making the whole datagram invalid, because the records before them are intact.
 */
export function parseRecords(datagram: Uint8Array): RecordLayerResult {
  const records: DtlsRecord[] = [];
  const end = datagram.length;
  if (end === 0) return { ok: false, reason: 'empty-datagram', detail: 'datagram has no bytes' };
  let pos = 0;
  let stop: RecordStop = 'end';
  while (pos < end) {
    const first = datagram[pos]!;
    if (first === ContentType.Tls12Cid || isUnifiedHeader(first)) {
      stop = 'protected';
      break;
    }
    // Type and version first, so that a short datagram of something else is called that rather than truncated.
    const version = end - pos >= 3 ? (datagram[pos + 1]! << 8) | datagram[pos + 2]! : -1;
    if (!isPlaintextContentType(first) || (version !== -1 && !isRecordVersion(version))) {
      if (pos === 0) {
        return {
          ok: false,
          reason: 'not-dtls',
          detail: `content type ${first}, version ${version === -1 ? 'missing' : hex16(version)}`,
        };
      }
      stop = 'unrecognised';
      break;
    }
    if (end - pos < RECORD_HEADER_LENGTH) {
      if (pos === 0) {
        return { ok: false, reason: 'truncated-record', detail: `datagram of ${end} bytes is shorter than a record header` };
      }
      stop = 'truncated';
      break;
    }
    const length = (datagram[pos + 11]! << 8) | datagram[pos + 12]!;
    if (length > MAX_RECORD_LENGTH || pos + RECORD_HEADER_LENGTH + length > end) {
      if (pos === 0) {
        return {
          ok: false,
          reason: 'truncated-record',
          detail: `record length ${length}, ${end - RECORD_HEADER_LENGTH} bytes available`,
        };
      }
      stop = 'truncated';
      break;
    }
    const epoch = (datagram[pos + 3]! << 8) | datagram[pos + 4]!;
    const sequence =
      ((datagram[pos + 5]! << 8) | datagram[pos + 6]!) * 0x1_0000_0000 +
      ((datagram[pos + 7]! << 24) >>> 0) +
      ((datagram[pos + 8]! << 16) | (datagram[pos + 9]! << 8) | datagram[pos + 10]!);
    const start = pos + RECORD_HEADER_LENGTH;
    records.push({ contentType: first, version, epoch, sequence, fragment: datagram.subarray(start, start + length) });
    pos = start + length;
  }
  return { ok: true, records, stop, trailingBytes: end - pos };
}
